//! Connecting, migrations, and behaviour while the database is away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement};
use store::{Recorded, Store, StoreOptions};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::support::{PG_BASE, TestDb, TestDbExt, inbound, require, sid, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_durable_wal_and_creates_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data/nested/webhook.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let store = Store::connect(
        &url,
        StoreOptions {
            migrate: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(file.exists());
    let db = store.connection();
    let mode = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mode.try_get_by_index::<String>(0).unwrap(), "wal");
    let sync = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA synchronous",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sync.try_get_by_index::<i32>(0).unwrap(),
        2,
        "synchronous=FULL"
    );
}

async fn migrations_are_reported_then_applied(db: &TestDb) {
    let store = Store::connect(&db.url(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        migrations::migration_names()
    );
    assert!(!store.pending_migrations().await.unwrap().is_empty());
    store.run_migrations().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    store.run_migrations().await.unwrap(); // idempotent
    store.ping().await.unwrap();
}
crate::on_both_backends!(migrations_status, migrations_are_reported_then_applied);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_migrating_at_once_both_start() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url();
    let opts = StoreOptions {
        migrate: true,
        ..Default::default()
    };
    let (a, b) = tokio::join!(
        Store::connect(&url, opts.clone()),
        Store::connect(&url, opts.clone())
    );
    a.unwrap();
    assert!(b.unwrap().pending_migrations().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_is_unavailable_not_a_hang() {
    // Port 1 on loopback: connection refused.
    let err = Store::connect(
        "postgres://postgres@127.0.0.1:1/none",
        StoreOptions {
            acquire_timeout: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_url_is_invalid_input() {
    let err = Store::connect("mysql://x", StoreOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    let err = Store::connect(
        "sqlite::memory:",
        StoreOptions {
            batch_statement: store::BatchStatement::Unnest,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_does_not_exist_is_a_configuration_error_naming_database_url() {
    if !require("PostgreSQL", "127.0.0.1:5432") {
        return;
    }
    let url = format!("{PG_BASE}/{}", unique("no_such_db_"));
    let err = Store::connect(&url, StoreOptions::default())
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "not retried as an outage: {err}");
    let text = err.to_string();
    assert!(text.contains("does not exist"), "{text}");
    assert!(text.contains("DATABASE_URL"), "says what to fix: {text}");
}

/// A database that turns the running server away (dropped, or its password rotated) is an
/// outage while running (503, Twilio may retry, `/readyz` fails), not a bad request: only at
/// start is it a configuration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dropped_while_running_is_unavailable_not_invalid_input() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = db.default_store().await;
    assert_eq!(
        store.record_inbound(inbound(&sid("SMa"))).await.unwrap(),
        Recorded::New
    );
    let TestDb::Postgres { name } = &db else {
        unreachable!("a PostgreSQL test database")
    };
    let admin = sea_orm::Database::connect(format!("{PG_BASE}/postgres"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.ok();
    let mut said_why = false;
    for _ in 0..3 {
        let err = store
            .record_inbound(inbound(&sid("SMb")))
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        said_why |= err.to_string().contains("does not exist");
        let err = store.ping().await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
    }
    assert!(said_why, "the error names the missing database");
}

/// `sqlite::memory:` lives in the pool's one connection: that connection is never retired (sqlx
/// closes idle connections after 10 min and replaces each after 30 min by default, which would
/// swap the database for an empty one without tables).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_database_keeps_its_one_connection() {
    let store = Store::connect(
        "sqlite::memory:",
        StoreOptions {
            migrate: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let options = store.connection().get_sqlite_connection_pool().options();
    assert_eq!(options.get_max_connections(), 1);
    assert_eq!(options.get_min_connections(), 1);
    assert_eq!(options.get_max_lifetime(), None);
    assert_eq!(options.get_idle_timeout(), None);
    let file = TestDb::sqlite();
    let store = file.default_store().await;
    let options = store.connection().get_sqlite_connection_pool().options();
    assert!(
        options.get_max_lifetime().is_some(),
        "files keep the defaults"
    );
}

async fn a_closed_store_answers_unavailable(db: &TestDb) {
    let store = db.default_store().await;
    store.close().await;
    let err = store.record_inbound(inbound(&sid("SM"))).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(store.ping().await.unwrap_err().is_unavailable());
}
crate::on_both_backends!(closed_store, a_closed_store_answers_unavailable);

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let up = up.clone();
            let conns = conns.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(client); // the database is "down"
                        continue;
                    }
                    let h = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns.lock().await.push(h);
                }
            })
        };
        Proxy {
            port,
            up,
            conns,
            accept,
        }
    }

    async fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for h in self.conns.lock().await.drain(..) {
            h.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The database goes away and comes back: callers get Unavailable (never a hang), and the
/// same Store works again afterwards without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_recovers_by_itself_when_postgres_returns() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    db.default_store().await; // migrate through the direct URL
    let proxy = Proxy::start().await;
    let TestDb::Postgres { name } = &db else {
        unreachable!()
    };
    let url = PG_BASE.replace("5432", &proxy.port.to_string()) + "/" + name;
    let store = Store::connect(
        &url,
        StoreOptions {
            acquire_timeout: Duration::from_millis(800),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        store.record_inbound(inbound(&sid("SM"))).await.unwrap(),
        Recorded::New
    );

    proxy.down().await;
    for _ in 0..3 {
        let err = tokio::time::timeout(
            Duration::from_secs(20),
            store.record_inbound(inbound(&sid("SM"))),
        )
        .await
        .expect("must not hang")
        .unwrap_err();
        assert!(err.is_unavailable(), "{err}");
    }
    assert!(store.ping().await.unwrap_err().is_unavailable());

    proxy.up();
    let mut recovered = false;
    for _ in 0..50 {
        match store.record_inbound(inbound(&sid("SM"))).await {
            Ok(r) => {
                assert_eq!(r, Recorded::New);
                recovered = true;
                break;
            }
            Err(e) => {
                assert!(e.is_unavailable(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(
        recovered,
        "the store did not recover after the database came back"
    );
    store.ping().await.unwrap();
}

/// Names of the indexes on `table` (PostgreSQL's catalog or SQLite's schema table).
async fn index_names(store: &Store, table: &str) -> Vec<String> {
    let db = store.connection();
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            format!("SELECT indexname AS name FROM pg_indexes WHERE tablename = '{table}'")
        }
        _ => format!(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}' \
             AND sql IS NOT NULL"
        ),
    };
    let rows = db
        .query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap();
    let mut names: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    names.sort();
    names
}

/// A database made by the first migration, with replies in it, upgraded by the second: rows
/// survive (SQLite rebuilds `outbound_messages`), the marker still finds its reply, SIDs stay
/// unique where set, and the sweep still finds unanswered messages through the partial index.
async fn upgrading_to_lean_indexes_keeps_replies(db: &TestDb) {
    use migrations::{Migrator, MigratorTrait};
    use store::{InboundState, NewStatusEvent, OutboundUpdate, StatusApplied};

    let store = Store::connect(&db.url(), StoreOptions::default())
        .await
        .unwrap();
    Migrator::up(store.connection(), Some(1)).await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap().len(), 1);
    let (a, b, c) = (sid("SMa"), sid("SMb"), sid("SMc"));
    for s in [&a, &b, &c] {
        store.record_inbound(inbound(s)).await.unwrap();
    }
    let sent = store
        .create_outbound(crate::outbound::reply_to(&a))
        .await
        .unwrap();
    let twilio_sid = sid("SMo");
    store
        .update_outbound(sent.id, OutboundUpdate::sent(&twilio_sid, "queued", 1))
        .await
        .unwrap();
    let lost = store
        .create_outbound(crate::outbound::reply_to(&b))
        .await
        .unwrap();
    store
        .update_outbound(lost.id, OutboundUpdate::sending())
        .await
        .unwrap();
    store
        .finish_inbound(&a, InboundState::Answered)
        .await
        .unwrap();

    store.run_migrations().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    let outbound_indexes = index_names(&store, "outbound_messages").await;
    assert!(
        outbound_indexes.contains(&"ux_outbound_messages_message_sid".to_owned()),
        "{outbound_indexes:?}"
    );
    assert!(
        !outbound_indexes
            .iter()
            .any(|n| n.contains("callback_marker")),
        "{outbound_indexes:?}"
    );
    let inbound_indexes = index_names(&store, "inbound_messages").await;
    assert!(inbound_indexes.contains(&"ix_inbound_messages_unanswered".to_owned()));
    assert!(!inbound_indexes.contains(&"ix_inbound_messages_state_received_at".to_owned()));

    // Both replies survived with their ids, SIDs and states.
    let kept = store.get_outbound(sent.id).await.unwrap().unwrap();
    assert_eq!(kept.message_sid.as_deref(), Some(twilio_sid.as_str()));
    assert_eq!(kept.inbound_message_sid, a);
    let in_doubt = store.get_outbound(lost.id).await.unwrap().unwrap();
    assert!(in_doubt.is_in_doubt());

    // The lost send response: the callback marker still finds the row.
    let late_sid = sid("SMo");
    let applied = store
        .record_status(NewStatusEvent {
            message_sid: late_sid.clone(),
            status: "delivered".to_owned(),
            error_code: None,
            error_message: None,
            params_json: "{}".to_owned(),
            idempotency_token: None,
            callback_marker: Some(in_doubt.callback_marker.clone()),
        })
        .await
        .unwrap();
    assert_eq!(applied, StatusApplied::Advanced);
    let found = store.get_outbound(lost.id).await.unwrap().unwrap();
    assert_eq!(found.message_sid.as_deref(), Some(late_sid.as_str()));

    // A Twilio SID can still belong to one reply only; rows without one do not collide.
    let third = store
        .create_outbound(crate::outbound::reply_to(&c))
        .await
        .unwrap();
    assert!(third.message_sid.is_none());
    assert!(
        store
            .update_outbound(third.id, OutboundUpdate::sent(&twilio_sid, "queued", 1))
            .await
            .is_err(),
        "a second reply took a Twilio SID that is already recorded"
    );

    // The sweep still sees the two unanswered messages (b and c), not the answered one.
    let mut unanswered = store.unanswered_inbound(Duration::ZERO, 10).await.unwrap();
    unanswered.sort();
    let mut expected = vec![b.clone(), c.clone()];
    expected.sort();
    assert_eq!(unanswered, expected);

    // Rolling the migration back restores the first schema with the rows, and it applies again.
    Migrator::down(store.connection(), Some(1)).await.unwrap();
    let outbound_indexes = index_names(&store, "outbound_messages").await;
    assert!(!outbound_indexes.contains(&"ux_outbound_messages_message_sid".to_owned()));
    let inbound_indexes = index_names(&store, "inbound_messages").await;
    assert!(inbound_indexes.contains(&"ix_inbound_messages_state_received_at".to_owned()));
    assert_eq!(
        store
            .get_outbound(third.id)
            .await
            .unwrap()
            .unwrap()
            .inbound_message_sid,
        c
    );
    store.run_migrations().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    assert_eq!(
        store
            .get_outbound(sent.id)
            .await
            .unwrap()
            .unwrap()
            .message_sid,
        Some(twilio_sid)
    );
}
crate::on_both_backends!(
    lean_indexes_upgrade,
    upgrading_to_lean_indexes_keeps_replies
);
