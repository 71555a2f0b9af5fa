//! Harness: a real server on 127.0.0.1:0 (the same `serve_app` the binary runs), a raw HTTP/1.1
//! client that can send anything (oversized, malformed, slow), signed Twilio requests, and a
//! poll helper for the asynchronous reply step.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{InboundState, Store, StoreOptions, WorkQueue};
use test_support::{AUTH_TOKEN, FakeTwilio, STATUS_URL, TestDb, WEBHOOK_URL, sign_form};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use webhook_core::{App, AutoReply, Handler};

/// The sender replies come from when a sender is configured.
pub(crate) const FROM: &str = "whatsapp:+14155238886";

/// How a test server is configured.
pub(crate) struct Opts<'a> {
    /// Send replies through this fake Twilio (else dry run).
    pub(crate) twilio: Option<&'a FakeTwilio>,
    /// Use this queue instead of the in-process one.
    pub(crate) queue: Option<Arc<dyn WorkQueue>>,
    /// `TWILIO_AUTH_TOKEN` (None = unset).
    pub(crate) token: Option<&'a str>,
    /// Extra environment.
    pub(crate) env: Vec<(&'a str, String)>,
    /// Worker id (two instances need distinct ones).
    pub(crate) worker_id: &'a str,
    /// Decide replies with this handler instead of the default `AutoReply`.
    pub(crate) handler: Option<Arc<dyn Handler>>,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            twilio: None,
            queue: None,
            token: Some(AUTH_TOKEN),
            env: Vec::new(),
            worker_id: "test-worker",
            handler: None,
        }
    }
}

/// A running server; `stop` shuts it down gracefully.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

pub(crate) fn settings(db: &TestDb, opts: &Opts<'_>) -> config::Settings {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db.url()),
        ("WEBHOOK_URL".into(), WEBHOOK_URL.into()),
        (
            "TWILIO_ACCOUNT_SID".into(),
            test_support::ACCOUNT_SID.into(),
        ),
        ("SWEEP_INTERVAL_SECS".into(), "1".into()),
    ];
    if let Some(t) = opts.token {
        vars.push(("TWILIO_AUTH_TOKEN".into(), t.into()));
    }
    if let Some(tw) = opts.twilio {
        vars.push(("TWILIO_API_BASE_URL".into(), tw.base_url()));
        vars.push(("TWILIO_WHATSAPP_FROM".into(), FROM.into()));
    }
    for (k, v) in &opts.env {
        vars.push(((*k).into(), v.clone()));
    }
    config::Settings::from_vars(vars).expect("valid test settings")
}

impl Server {
    pub(crate) async fn start(db: &TestDb, opts: Opts<'_>) -> Server {
        let settings = settings(db, &opts);
        let handler = opts
            .handler
            .clone()
            .unwrap_or_else(|| Arc::new(AutoReply::new(settings.auto_reply.clone())));
        let app = match opts.queue.clone() {
            None => App::with_handler(settings, handler)
                .await
                .expect("app starts"),
            Some(queue) => {
                let store = Store::connect(
                    settings.database_url.expose(),
                    StoreOptions {
                        migrate: true,
                        ..StoreOptions::default()
                    },
                )
                .await
                .expect("store");
                let client = opts.twilio.map(|_| {
                    Arc::new(
                        twilio_client::Client::new(
                            &settings.api_base_url,
                            webhook_core::app::twilio_auth(&settings).expect("auth"),
                            Duration::from_secs(5),
                        )
                        .expect("client"),
                    )
                });
                App::assemble(
                    settings,
                    store,
                    queue,
                    client,
                    handler,
                    opts.worker_id.into(),
                )
            }
        };
        Self::serve(Arc::new(app)).await
    }

    /// A server on `db` sending its replies through `twilio`.
    pub(crate) async fn with_twilio(db: &TestDb, twilio: &FakeTwilio) -> Server {
        Self::start(
            db,
            Opts {
                twilio: Some(twilio),
                ..Opts::default()
            },
        )
        .await
    }

    pub(crate) async fn serve(app: Arc<App>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(webhook_core::serve_app(listener, app.clone(), async {
            let _ = rx.await;
        }));
        Server {
            addr,
            app,
            stop: Some(tx),
            task,
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("server stops within 30 s")
            .expect("server task did not panic");
    }

    pub(crate) async fn post_webhook(&self, body: &str) -> Response {
        let sig = sign_form(AUTH_TOKEN, WEBHOOK_URL, body);
        self.post("/api/v1/whatsapp/webhook", body, &sig).await
    }

    /// Posts `n` messages with new SIDs, one after the other, each acknowledged with 200; returns
    /// their SIDs in order.
    pub(crate) async fn post_new_messages(&self, n: usize) -> Vec<String> {
        let mut sids = Vec::with_capacity(n);
        for _ in 0..n {
            let sid = test_support::services::sid("SM");
            let r = self.post_webhook(&inbound_body(&sid)).await;
            assert_eq!(r.status, 200, "{sid}: {}", r.body);
            sids.push(sid);
        }
        sids
    }

    pub(crate) async fn post_status(&self, body: &str, query: &str) -> Response {
        let url = if query.is_empty() {
            STATUS_URL.to_owned()
        } else {
            format!("{STATUS_URL}?{query}")
        };
        let sig = sign_form(AUTH_TOKEN, &url, body);
        let path = if query.is_empty() {
            "/api/v1/whatsapp/status".to_owned()
        } else {
            format!("/api/v1/whatsapp/status?{query}")
        };
        self.post(&path, body, &sig).await
    }

    pub(crate) async fn post(&self, path: &str, body: &str, signature: &str) -> Response {
        request(
            self.addr,
            "POST",
            path,
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Twilio-Signature", signature),
                (
                    "I-Twilio-Idempotency-Token",
                    "3f1c0e2a-0000-4000-8000-000000000001",
                ),
            ],
            body.as_bytes(),
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"").await
    }

    /// The reply row of inbound message `sid`, which must exist.
    pub(crate) async fn reply_row(&self, sid: &str) -> store::OutboundMessage {
        self.app
            .store
            .outbound_for_inbound(sid)
            .await
            .expect("read the reply row")
            .unwrap_or_else(|| panic!("{sid} has a reply row"))
    }

    /// Waits until the inbound message leaves `received`/`processing`.
    pub(crate) async fn wait_processed(&self, sid: &str) -> InboundState {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(row) = self.app.store.get_inbound(sid).await.expect("read inbound")
                && !matches!(row.state, InboundState::Received | InboundState::Processing)
            {
                return row.state;
            }
            assert!(
                Instant::now() < deadline,
                "{sid} was not processed within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

pub(crate) use test_support::raw_http::{Response, request, send_raw};

/// The text fixture with its MessageSid replaced, so every test message is unique.
pub(crate) fn inbound_body(sid: &str) -> String {
    test_support::fixture("inbound-whatsapp-text.form")
        .replace("SM1a2b3c4d5e6f708192a3b4c5d6e7f809", sid)
}

/// Posts the same signed webhook `n` times at once (Twilio's duplicate deliveries).
pub(crate) async fn post_concurrently(addrs: &[SocketAddr], body: &str, n: usize) -> Vec<u16> {
    let sig = sign_form(AUTH_TOKEN, WEBHOOK_URL, body);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            let body = body.to_owned();
            let sig = sig.clone();
            tokio::spawn(async move {
                request(
                    addr,
                    "POST",
                    "/api/v1/whatsapp/webhook",
                    &[
                        ("Content-Type", "application/x-www-form-urlencoded"),
                        ("X-Twilio-Signature", &sig),
                    ],
                    body.as_bytes(),
                )
                .await
                .status
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("request task"));
    }
    out
}
