//! Test harness: a fresh PostgreSQL database or SQLite file per test, a random Redis key
//! prefix, and skip-or-fail when a service is missing (fail when `CI=true`).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, Database};
use store::{NewInbound, Store, StoreOptions};

pub(crate) const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub(crate) const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";
pub(crate) const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A name no other test (or test run) uses.
pub(crate) fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn reachable(addr: &str) -> bool {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return false;
    };
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// True when the service is up. Otherwise panics under `CI=true`, or prints why the test is
/// skipped and returns false.
pub(crate) fn require(service: &str, addr: &str) -> bool {
    if reachable(addr) {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{service} at {addr} is required when CI=true but is not reachable");
    }
    eprintln!(
        "skipping: {service} at {addr} is not reachable (set CI=true to make this a failure)"
    );
    false
}

/// A database that lives as long as this value.
pub(crate) enum TestDb {
    Postgres { name: String },
    Sqlite { dir: tempfile::TempDir },
}

impl TestDb {
    /// A fresh PostgreSQL database, or `None` when PostgreSQL is missing (local runs only).
    pub(crate) async fn postgres() -> Option<TestDb> {
        if !require("PostgreSQL", "127.0.0.1:5432") {
            return None;
        }
        let name = unique("store_test_");
        let admin = Database::connect(PG_ADMIN_URL)
            .await
            .expect("connect admin");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        Some(TestDb::Postgres { name })
    }

    /// A fresh SQLite file in a temporary directory.
    pub(crate) fn sqlite() -> TestDb {
        TestDb::Sqlite {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn url(&self) -> String {
        match self {
            TestDb::Postgres { name } => format!("{PG_BASE}/{name}"),
            TestDb::Sqlite { dir } => {
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("webhook.db").display()
                )
            }
        }
    }

    pub(crate) async fn store(&self, opts: StoreOptions) -> Store {
        Store::connect(
            &self.url(),
            StoreOptions {
                migrate: true,
                ..opts
            },
        )
        .await
        .expect("connect store")
    }

    pub(crate) async fn default_store(&self) -> Store {
        self.store(StoreOptions::default()).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let TestDb::Postgres { name } = self else {
            return;
        };
        let name = name.clone();
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(PG_ADMIN_URL).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A realistic inbound message with this SID.
pub(crate) fn inbound(sid: &str) -> NewInbound {
    NewInbound {
        message_sid: sid.to_owned(),
        account_sid: "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e".to_owned(),
        from: "whatsapp:+15551234567".to_owned(),
        to: "whatsapp:+14155238886".to_owned(),
        body: "Hello, I need help with my order #1234".to_owned(),
        num_media: 0,
        profile_name: Some("Ana Souza".to_owned()),
        wa_id: Some("15551234567".to_owned()),
        params_json: format!(
            r#"{{"MessageSid":"{sid}","Body":"Hello, I need help with my order #1234","ProfileName":"Ana Souza"}}"#
        ),
        idempotency_token: Some(format!("token-{sid}")),
    }
}

/// A random SID-shaped string.
pub(crate) fn sid(prefix: &str) -> String {
    let u = unique("");
    format!("{prefix}{:0>32}", u.replace('_', ""))
        .chars()
        .take(34)
        .collect()
}

/// Runs a test body on SQLite and on PostgreSQL (when available).
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::support::TestDb::sqlite();
                $body(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::support::TestDb::postgres().await {
                    $body(&db).await;
                }
            }
        }
    };
}
