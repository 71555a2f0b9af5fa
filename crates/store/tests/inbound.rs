//! `record_inbound`: idempotent, committed before it returns, one bad row fails alone.

use std::collections::HashSet;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use store::{InboundState, Recorded, StoreOptions};

use crate::on_both_backends;
use crate::support::{TestDb, TestDbExt, inbound, record_all, sid};

async fn exactly_one_of_64_concurrent_duplicates_is_new(db: &TestDb) {
    let store = db.default_store().await;
    for round in 0..3 {
        let the_sid = sid(&format!("SM{round}"));
        let mut new = 0;
        for r in record_all(&store, (0..64).map(|_| inbound(&the_sid))).await {
            if r.unwrap() == Recorded::New {
                new += 1;
            }
        }
        assert_eq!(new, 1, "round {round}: exactly one caller must see New");
        assert!(store.get_inbound(&the_sid).await.unwrap().is_some());
    }
}
on_both_backends!(
    concurrent_duplicates,
    exactly_one_of_64_concurrent_duplicates_is_new
);

async fn a_recorded_message_reads_back_as_written(db: &TestDb) {
    let store = db.default_store().await;
    let s = sid("SM");
    let mut msg = inbound(&s);
    msg.body = "Olá 👋 \"quoted\" 'single' \\ back".to_owned();
    msg.wa_id = Some(String::new()); // empty: stored as NULL
    msg.idempotency_token = None;
    assert_eq!(
        store.record_inbound(msg.clone()).await.unwrap(),
        Recorded::New
    );

    let row = store.get_inbound(&s).await.unwrap().expect("row");
    assert_eq!(row.message_sid, s);
    assert_eq!(row.account_sid, msg.account_sid);
    assert_eq!(row.from, msg.from);
    assert_eq!(row.to, msg.to);
    assert_eq!(row.body, msg.body);
    assert_eq!(row.profile_name.as_deref(), Some("Ana Souza"));
    assert_eq!(row.wa_id, None);
    assert_eq!(row.idempotency_token, None);
    assert_eq!(row.params_json, msg.params_json);
    assert_eq!(row.state, InboundState::Received);
    assert_eq!(row.attempts, 0);
    assert!(row.claimed_by.is_none());

    // A redelivery with other content changes nothing.
    let mut again = inbound(&s);
    again.body = "changed".to_owned();
    assert_eq!(
        store.record_inbound(again).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(store.get_inbound(&s).await.unwrap().unwrap().body, msg.body);
}
on_both_backends!(round_trip, a_recorded_message_reads_back_as_written);

async fn many_distinct_concurrent_messages_are_all_new_and_stored(db: &TestDb) {
    let store = db
        .store(StoreOptions {
            batch_max: 32,
            ..Default::default()
        })
        .await;
    let sids: Vec<String> = (0..300).map(|i| sid(&format!("SM{i}x"))).collect();
    for r in record_all(&store, sids.iter().map(|s| inbound(s))).await {
        assert_eq!(r.unwrap(), Recorded::New);
    }
    for s in &sids {
        assert!(store.get_inbound(s).await.unwrap().is_some(), "{s} missing");
    }
    let stats = store.stats();
    assert_eq!(stats.rows, 300);
    assert_eq!(stats.fallbacks, 0);
}
on_both_backends!(
    distinct_messages,
    many_distinct_concurrent_messages_are_all_new_and_stored
);

async fn same_sid_twice_in_one_batch_is_one_new_one_duplicate(db: &TestDb) {
    // A long linger makes the writer wait for the whole group, so the copies share a batch.
    let store = db
        .store(StoreOptions {
            batch_max: 6,
            batch_linger: Duration::from_secs(2),
            ..Default::default()
        })
        .await;
    let a = sid("SMa");
    let b = sid("SMb");
    let sids = [&a, &a, &b, &a, &b, &a];
    let mut new = 0;
    for r in record_all(&store, sids.map(|s| inbound(s))).await {
        if r.unwrap() == Recorded::New {
            new += 1;
        }
    }
    assert_eq!(new, 2);
}
on_both_backends!(
    duplicate_within_batch,
    same_sid_twice_in_one_batch_is_one_new_one_duplicate
);

async fn one_row_per_insert_mode_is_idempotent_too(db: &TestDb) {
    let store = db
        .store(StoreOptions {
            group_commit: false,
            ..Default::default()
        })
        .await;
    let s = sid("SM");
    assert_eq!(
        store.record_inbound(inbound(&s)).await.unwrap(),
        Recorded::New
    );
    assert_eq!(
        store.record_inbound(inbound(&s)).await.unwrap(),
        Recorded::Duplicate
    );
    assert_eq!(store.stats().batches, 0);
}
on_both_backends!(per_call_mode, one_row_per_insert_mode_is_idempotent_too);

/// A row PostgreSQL refuses (its text cannot hold NUL; the columns are cleaned of it, so a raw
/// one is put into params, which the webhook path always escapes): the batch fails, is retried
/// row by row, and only the bad row's caller gets an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_fails_only_itself_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    for statement in [
        store::BatchStatement::Unnest,
        store::BatchStatement::MultiRowValues,
    ] {
        let store = db
            .store(StoreOptions {
                batch_max: 20,
                batch_linger: Duration::from_secs(2),
                batch_statement: statement,
                ..Default::default()
            })
            .await;
        let sids: Vec<String> = (0..20).map(|i| sid(&format!("SM{i}n"))).collect();
        let bad = 7;
        let msgs = sids.iter().enumerate().map(|(i, s)| {
            let mut msg = inbound(s);
            if i == bad {
                msg.params_json = "{\"Body\":\"raw nul \0\"}".to_owned();
            }
            msg
        });
        for (i, res) in record_all(&store, msgs).await.into_iter().enumerate() {
            if i == bad {
                let err = res.expect_err("the NUL row must fail");
                assert!(err.is_invalid_input(), "{statement:?}: {err}");
                assert!(!err.is_unavailable());
            } else {
                assert_eq!(res.unwrap(), Recorded::New, "{statement:?}: row {i}");
            }
        }
        assert!(
            store.stats().fallbacks >= 1,
            "{statement:?}: {:?}",
            store.stats()
        );
        let stored: HashSet<bool> = {
            let mut s = HashSet::new();
            for (i, sid) in sids.iter().enumerate() {
                if i != bad {
                    s.insert(store.get_inbound(sid).await.unwrap().is_some());
                }
            }
            s
        };
        assert_eq!(stored, HashSet::from([true]));
        assert!(store.get_inbound(&sids[bad]).await.unwrap().is_none());
    }
}

/// A signed message whose text holds a NUL character is kept on both backends (PostgreSQL text
/// cannot hold one: it used to refuse the row, and the webhook got 400 and was lost): U+FFFD in
/// the columns and in params, whose documented query (`params::jsonb ->> 'Body'` on PostgreSQL)
/// then still works for every row.
async fn a_nul_character_is_kept_as_a_replacement_character(db: &TestDb) {
    let store = db.default_store().await;
    // Alone, and in a batch with other rows.
    for batch in [1, 8] {
        let sids: Vec<String> = (0..batch).map(|_| sid("SM")).collect();
        let msgs = sids.iter().map(|s| {
            let mut msg = inbound(s);
            msg.body = "nul \0 byte".to_owned();
            msg.profile_name = Some("Ann\0".to_owned());
            msg.params_json = serde_json::json!({ "Body": "nul \0 byte" }).to_string();
            msg
        });
        for r in record_all(&store, msgs).await {
            assert_eq!(r.unwrap(), Recorded::New);
        }
        for s in &sids {
            let row = store.get_inbound(s).await.unwrap().unwrap();
            assert_eq!(row.body, "nul \u{FFFD} byte");
            assert_eq!(row.profile_name.as_deref(), Some("Ann\u{FFFD}"));
            let params: serde_json::Value = serde_json::from_str(&row.params_json).unwrap();
            assert_eq!(params["Body"], "nul \u{FFFD} byte");
            let conn = store.connection();
            let backend = conn.get_database_backend();
            let sql = match backend {
                sea_orm::DbBackend::Postgres => {
                    "SELECT params::jsonb ->> 'Body' AS body FROM inbound_messages WHERE message_sid = $1"
                }
                _ => {
                    "SELECT json_extract(params, '$.Body') AS body FROM inbound_messages WHERE message_sid = ?"
                }
            };
            let queried = conn
                .query_one_raw(sea_orm::Statement::from_sql_and_values(
                    backend,
                    sql,
                    [s.as_str().into()],
                ))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                queried.try_get::<String>("", "body").unwrap(),
                "nul \u{FFFD} byte"
            );
        }
    }
    // A status callback's parameters alike.
    let ev = store::NewStatusEvent {
        message_sid: sid("SM"),
        status: "failed".to_owned(),
        error_code: Some(63016),
        error_message: Some("nul \0".to_owned()),
        params_json: serde_json::json!({ "ErrorMessage": "nul \0", "Raw": "\\u0000" }).to_string(),
        idempotency_token: None,
        callback_marker: None,
    };
    let sid = ev.message_sid.clone();
    store.record_status(ev).await.unwrap();
    let stored = store.status_events(&sid).await.unwrap();
    let params: serde_json::Value = serde_json::from_str(&stored[0].params_json).unwrap();
    assert_eq!(params["ErrorMessage"], "nul \u{FFFD}");
    assert_eq!(
        params["Raw"], "\\u0000",
        "six characters, not an escape: kept"
    );
}
on_both_backends!(
    nul_character,
    a_nul_character_is_kept_as_a_replacement_character
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_sid_is_refused() {
    let db = TestDb::sqlite();
    let store = db.default_store().await;
    let err = store.record_inbound(inbound("")).await.unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
}

/// A batch holding redeliveries of stored messages: the stored rows are left as they are, the
/// new ones are written whole, and each caller hears which it was.
async fn a_batch_mixing_known_and_new_sids_tells_each_caller_apart(db: &TestDb) {
    let sids: Vec<String> = (0..8).map(|i| sid(&format!("SM{i}m"))).collect();
    let known = [&sids[1], &sids[4], &sids[6]];
    // Three of them arrive early (a first delivery each), the rest only in the batch below.
    let first = db.default_store().await;
    for s in known {
        assert_eq!(
            first.record_inbound(inbound(s)).await.unwrap(),
            Recorded::New
        );
    }
    // A long linger makes the writer wait for all eight, so they share one batch.
    let store = db
        .store(StoreOptions {
            batch_max: 8,
            batch_linger: Duration::from_secs(2),
            ..Default::default()
        })
        .await;
    let msgs = sids.iter().map(|s| {
        let mut msg = inbound(s);
        msg.body = "this delivery's text".to_owned();
        msg.wa_id = None;
        msg
    });
    for (s, recorded) in sids.iter().zip(record_all(&store, msgs).await) {
        let recorded = recorded.unwrap();
        let row = store.get_inbound(s).await.unwrap().expect("stored");
        if known.contains(&s) {
            assert_eq!(recorded, Recorded::Duplicate, "{s}");
            assert_eq!(row.body, inbound(s).body, "a stored row is left as it was");
            assert_eq!(row.wa_id, inbound(s).wa_id);
        } else {
            assert_eq!(recorded, Recorded::New, "{s}");
            assert_eq!(row.body, "this delivery's text");
            assert_eq!(row.wa_id, None);
            assert_eq!(row.profile_name.as_deref(), Some("Ana Souza"));
            assert_eq!(row.idempotency_token, Some(format!("token-{s}")));
            assert_eq!(row.state, InboundState::Received);
        }
    }
    let stats = store.stats();
    assert_eq!(
        (stats.batches, stats.fallbacks),
        (1, 0),
        "one batch: {stats:?}"
    );
}
on_both_backends!(
    mixed_batch,
    a_batch_mixing_known_and_new_sids_tells_each_caller_apart
);

/// Both PostgreSQL batch statements (UNNEST, the default, and the padded multi-row VALUES) tell
/// new from duplicate rows, with two writers committing batches side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_batch_statement_records_new_and_duplicate_rows_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    for (tag, statement) in [
        ("u", store::BatchStatement::Unnest),
        ("v", store::BatchStatement::MultiRowValues),
    ] {
        let store = db
            .store(StoreOptions {
                batch_statement: statement,
                writers: Some(2),
                ..Default::default()
            })
            .await;
        let known = sid(&format!("SMk{tag}"));
        assert_eq!(
            store.record_inbound(inbound(&known)).await.unwrap(),
            Recorded::New
        );
        let mut sids: Vec<String> = (0..100).map(|i| sid(&format!("SM{i}{tag}"))).collect();
        sids.push(known.clone());
        let results = record_all(&store, sids.iter().map(|s| inbound(s))).await;
        for (s, recorded) in sids.iter().zip(results) {
            let expected = if *s == known {
                Recorded::Duplicate
            } else {
                Recorded::New
            };
            assert_eq!(recorded.unwrap(), expected, "{statement:?}: {s}");
        }
        let row = store.get_inbound(&sids[0]).await.unwrap().unwrap();
        assert_eq!(
            row.profile_name.as_deref(),
            Some("Ana Souza"),
            "{statement:?}"
        );
        assert_eq!(row.params_json, inbound(&sids[0]).params_json);
    }
}
