//! Test harness: a fresh PostgreSQL database or SQLite file per test, a random Redis key
//! prefix, and skip-or-fail when a service is missing (fail when `CI=true`).

use store::{NewInbound, Recorded, Store, StoreError, StoreOptions};

pub(crate) use test_support::TestDb;
pub(crate) use test_support::services::{PG_BASE, REDIS_URL, require, unique};

/// Opening a [`Store`] on a test database.
pub(crate) trait TestDbExt {
    /// The store on this database with `opts`, migrations applied.
    async fn store(&self, opts: StoreOptions) -> Store;
    /// The store with default options.
    async fn default_store(&self) -> Store;
}

impl TestDbExt for TestDb {
    async fn store(&self, opts: StoreOptions) -> Store {
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

    async fn default_store(&self) -> Store {
        self.store(StoreOptions::default()).await
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

/// Records every message at once, one task each (so that they share group commits), and
/// returns each call's result in the messages' order.
pub(crate) async fn record_all(
    store: &Store,
    msgs: impl IntoIterator<Item = NewInbound>,
) -> Vec<Result<Recorded, StoreError>> {
    let tasks: Vec<_> = msgs
        .into_iter()
        .map(|msg| {
            let store = store.clone();
            tokio::spawn(async move { store.record_inbound(msg).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.expect("record_inbound task"));
    }
    results
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
