//! Harness for the reliability tests: the real `webhook-server` binary as a child process,
//! a raw HTTP/1.1 client, signed Twilio messages, a TCP proxy that can cut a backing service,
//! and read-only views of the database the server writes.
//!
//! Only the child's environment is set; the test process's own environment is never touched.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use store::{Store, StoreOptions};
use test_support::{ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, WEBHOOK_URL, sign_form};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The WhatsApp sender replies come from.
pub(crate) const FROM: &str = "whatsapp:+14155238886";
/// Path of the inbound webhook.
pub(crate) const WEBHOOK_PATH: &str = "/api/v1/whatsapp/webhook";

/// The environment every test server gets: the fixtures' token and public URL (so
/// `sign_form` signs what the server checks), a one-second sweep, loopback only.
pub(crate) fn base_env(database_url: &str, twilio: Option<&FakeTwilio>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), database_url.into()),
        ("WEBHOOK_URL".into(), WEBHOOK_URL.into()),
        ("TWILIO_AUTH_TOKEN".into(), AUTH_TOKEN.into()),
        ("TWILIO_ACCOUNT_SID".into(), ACCOUNT_SID.into()),
        ("SWEEP_INTERVAL_SECS".into(), "1".into()),
        ("APP_ENV".into(), "development".into()),
        ("HOST".into(), "127.0.0.1".into()),
        ("RUST_LOG".into(), "info".into()),
        ("NO_COLOR".into(), "1".into()),
    ];
    if let Some(fake) = twilio {
        env.push(("TWILIO_API_BASE_URL".into(), fake.base_url()));
        env.push(("TWILIO_WHATSAPP_FROM".into(), FROM.into()));
    }
    env
}

/// Replaces or adds `key` in `env`.
pub(crate) fn set(env: &mut Vec<(String, String)>, key: &str, value: impl Into<String>) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.into()));
}

/// A port that was free a moment ago (config refuses `PORT=0`).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// One `webhook-server` process. Dropping it kills the process (SIGKILL).
pub(crate) struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    log: PathBuf,
    env: Vec<(String, String)>,
    dir: Arc<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts the binary with exactly `env` (nothing inherited) in an empty working directory,
    /// stdout and stderr going to one log file, and waits until it has started: `/healthz`
    /// answers and `/readyz` comes from the running app, not the starting phase.
    pub(crate) async fn start(env: &[(String, String)]) -> ServerProcess {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_in(env, dir, "server", true).await
    }

    /// Like [`start`](Self::start) but returns as soon as `/healthz` answers, while the server
    /// may still be waiting for its database.
    pub(crate) async fn start_alive(env: &[(String, String)]) -> ServerProcess {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_in(env, dir, "server", false).await
    }

    async fn start_in(
        env: &[(String, String)],
        dir: Arc<tempfile::TempDir>,
        name: &str,
        started: bool,
    ) -> ServerProcess {
        let mut last_log = String::new();
        for attempt in 0..3 {
            let port = free_port();
            let log = dir.path().join(format!("{name}-{attempt}-{port}.log"));
            let out = File::create(&log).expect("create log file");
            let err = out.try_clone().expect("clone log handle");
            let child = Command::new(env!("CARGO_BIN_EXE_webhook-server"))
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("PORT", port.to_string())
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn()
                .expect("spawn webhook-server");
            let mut server = ServerProcess {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log,
                env: env.to_vec(),
                dir: dir.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if !server.is_alive() {
                    break;
                }
                // Alive, and past the starting phase (its /readyz says "not started").
                if get(server.addr, "/healthz").await.status == 200
                    && (!started
                        || !get(server.addr, "/readyz")
                            .await
                            .body
                            .contains("not started"))
                {
                    return server;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            last_log = server.logs();
            // Someone else took the port between our probe and the bind: try another one.
            if !last_log.contains("could not listen") {
                break;
            }
        }
        panic!("webhook-server did not become healthy; its log:\n{last_log}");
    }

    /// Starts another process with the same environment, database and log directory
    /// (a restart after a crash).
    pub(crate) async fn restart(&self) -> ServerProcess {
        Self::start_in(&self.env, self.dir.clone(), "restarted", true).await
    }

    /// A process with its own log directory whose log files are named after `name`.
    pub(crate) async fn start_named(env: &[(String, String)], name: &str) -> ServerProcess {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_in(env, dir, name, true).await
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The worker id the server claims messages with (`hostname-pid-random`), from its
    /// "worker started" log line.
    pub(crate) fn worker_id(&self) -> String {
        let logs = self.logs();
        let line = logs
            .lines()
            .find(|l| l.contains("worker started"))
            .unwrap_or_else(|| panic!("no 'worker started' line in:\n{logs}"));
        let id = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("worker="))
            .unwrap_or_else(|| panic!("no worker= field in {line}"));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        assert!(
            id.starts_with(&format!("{host}-{}-", self.pid())),
            "{id} names this process"
        );
        id.to_owned()
    }

    /// `kill -9` and reap.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `timeout` for the exit; its status, or `None` while still
    /// running.
    pub(crate) async fn terminate(
        &mut self,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {}", self.pid());
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// True while the process has not exited.
    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Everything this process wrote to stdout and stderr so far.
    pub(crate) fn logs(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Every log file written in this process's directory (all restarts included).
    pub(crate) fn all_logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    out.push_str(&String::from_utf8_lossy(
                        &std::fs::read(e.path()).unwrap_or_default(),
                    ));
                }
            }
        }
        out
    }

    /// Fails when the Auth Token, the REST Basic credentials or any of `extra` appear in any
    /// log this process (or its restarts) wrote.
    pub(crate) fn assert_no_secrets(&self, extra: &[&str]) {
        assert_no_secrets_in(&self.all_logs(), extra);
    }

    /// Signed webhook for `msg`; returns the HTTP status (0 when the connection failed).
    pub(crate) async fn post(&self, msg: &Msg) -> u16 {
        post_webhook(self.addr, &msg.form()).await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The secrets the server knows: the Auth Token and the Basic credentials it sends to Twilio.
pub(crate) fn assert_no_secrets_in(text: &str, extra: &[&str]) {
    use base64::Engine as _;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    assert!(!text.is_empty(), "no log output was captured");
    for secret in [AUTH_TOKEN, basic.as_str()].iter().chain(extra) {
        assert!(
            !text.contains(secret),
            "a secret ({}…) appears in the server's log output",
            &secret[..4.min(secret.len())]
        );
    }
}

/// One inbound WhatsApp text message with a unique SID and sender.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    /// `MessageSid`.
    pub(crate) sid: String,
    /// `From` of the inbound message = `To` of its reply.
    pub(crate) from: String,
    /// `Body`.
    pub(crate) text: String,
}

impl Msg {
    /// Message number `i` of a test; `tag` keeps bodies of different tests apart.
    pub(crate) fn new(tag: &str, i: usize) -> Msg {
        Msg {
            sid: test_support::services::sid("SM"),
            from: format!("whatsapp:+1555{i:07}"),
            text: format!("{tag} message {i}"),
        }
    }

    /// `n` messages numbered from `start`.
    pub(crate) fn batch(tag: &str, start: usize, n: usize) -> Vec<Msg> {
        (start..start + n).map(|i| Msg::new(tag, i)).collect()
    }

    /// The form body Twilio would post.
    pub(crate) fn form(&self) -> String {
        let wa_id = self.from.trim_start_matches("whatsapp:+");
        form_urlencoded::Serializer::new(String::new())
            .append_pair("SmsMessageSid", &self.sid)
            .append_pair("NumMedia", "0")
            .append_pair("ProfileName", "Tester")
            .append_pair("MessageType", "text")
            .append_pair("SmsSid", &self.sid)
            .append_pair("WaId", wa_id)
            .append_pair("SmsStatus", "received")
            .append_pair("Body", &self.text)
            .append_pair("To", FROM)
            .append_pair("NumSegments", "1")
            .append_pair("MessageSid", &self.sid)
            .append_pair("AccountSid", ACCOUNT_SID)
            .append_pair("From", &self.from)
            .append_pair("ApiVersion", "2010-04-01")
            .finish()
    }
}

pub(crate) use test_support::raw_http::{Response, parse_response, request, send_raw};

/// `GET path`.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"").await
}

/// Posts a form body to the webhook with a valid signature; returns the status.
pub(crate) async fn post_webhook(addr: SocketAddr, body: &str) -> u16 {
    let sig = sign_form(AUTH_TOKEN, WEBHOOK_URL, body);
    request(
        addr,
        "POST",
        WEBHOOK_PATH,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", &sig),
        ],
        body.as_bytes(),
    )
    .await
    .status
}

/// Posts every message (signed) with at most `concurrency` requests in flight, spreading them
/// over `addrs`; returns the statuses in message order.
pub(crate) async fn post_all(addrs: &[SocketAddr], msgs: &[Msg], concurrency: usize) -> Vec<u16> {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let addr = addrs[i % addrs.len()];
        let body = m.form();
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore");
            post_webhook(addr, &body).await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("request task"));
    }
    out
}

/// Polls `check` every 100 ms until it returns true; panics with `what` after `timeout`.
pub(crate) async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Read access to the database a server writes (direct, never through a test proxy).
pub(crate) struct DbView {
    pub(crate) store: Store,
}

impl DbView {
    /// Opens `url` without migrating (the server did that).
    pub(crate) async fn open(url: &str) -> DbView {
        let store = Store::connect(url, StoreOptions::default())
            .await
            .expect("open the test database");
        DbView { store }
    }

    fn backend(&self) -> DbBackend {
        self.store.connection().get_database_backend()
    }

    /// `SELECT COUNT(*) FROM <from_where>`.
    pub(crate) async fn count(&self, from_where: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) AS n FROM {from_where}");
        let row = self
            .store
            .connection()
            .query_one_raw(Statement::from_string(self.backend(), sql.clone()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .expect("a count row");
        row.try_get_by_index::<i64>(0).expect("count value")
    }

    /// Rows per inbound state.
    pub(crate) async fn states(&self) -> HashMap<String, i64> {
        let rows = self
            .store
            .connection()
            .query_all_raw(Statement::from_string(
                self.backend(),
                "SELECT state, COUNT(*) AS n FROM inbound_messages GROUP BY state",
            ))
            .await
            .expect("count states");
        rows.iter()
            .map(|r| {
                (
                    r.try_get_by_index::<String>(0).expect("state"),
                    r.try_get_by_index::<i64>(1).expect("n"),
                )
            })
            .collect()
    }

    /// Rows per outbound status.
    pub(crate) async fn outbound_statuses(&self) -> HashMap<String, i64> {
        let rows = self
            .store
            .connection()
            .query_all_raw(Statement::from_string(
                self.backend(),
                "SELECT status, COUNT(*) AS n FROM outbound_messages GROUP BY status",
            ))
            .await
            .expect("count outbound statuses");
        rows.iter()
            .map(|r| {
                (
                    r.try_get_by_index::<String>(0).expect("status"),
                    r.try_get_by_index::<i64>(1).expect("n"),
                )
            })
            .collect()
    }

    /// Ends the leases held by `worker` (claims are named `<worker>#<n>`) as if their 120 s
    /// had passed (the worker is dead). Returns how many claims were released.
    pub(crate) async fn expire_leases_of(&self, worker: &str) -> u64 {
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        let sql = match self.backend() {
            DbBackend::Sqlite => {
                "UPDATE inbound_messages SET lease_until = ?1 WHERE state = 'processing' AND claimed_by LIKE ?2"
            }
            _ => {
                "UPDATE inbound_messages SET lease_until = $1 WHERE state = 'processing' AND claimed_by LIKE $2"
            }
        };
        self.store
            .connection()
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                sql,
                vec![
                    Value::ChronoDateTimeUtc(Some(past)),
                    Value::String(Some(format!("{worker}#%"))),
                ],
            ))
            .await
            .expect("expire leases")
            .rows_affected()
    }
}

/// Waits until every message in `msgs` is answered and then checks that each got exactly one
/// reply: one message created at the fake for its sender, exactly `posts` POSTs to it (1 when
/// nothing failed), and the reply's Twilio SID recorded on its outbound row.
pub(crate) async fn assert_answered_once(
    db: &DbView,
    fake: &FakeTwilio,
    msgs: &[Msg],
    timeout: Duration,
) {
    let total = msgs.len() as i64;
    let deadline = Instant::now() + timeout;
    while db.count("inbound_messages WHERE state = 'answered'").await < total {
        if Instant::now() > deadline {
            panic!(
                "not every message was answered within {timeout:?}: inbound states {:?}, outbound statuses {:?}",
                db.states().await,
                db.outbound_statuses().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        db.count("inbound_messages").await,
        total,
        "one row per MessageSid"
    );
    let created = per_to(
        fake.created_messages()
            .iter()
            .map(|m| m["to"].as_str().unwrap_or_default().to_owned()),
    );
    let posts = per_to(
        fake.sent_messages()
            .iter()
            .map(|r| r.form_value("To").unwrap_or_default().to_owned()),
    );
    for m in msgs {
        assert_eq!(
            created.get(&m.from).copied().unwrap_or(0),
            1,
            "replies created for {} ({})",
            m.from,
            m.sid
        );
        assert_eq!(
            posts.get(&m.from).copied().unwrap_or(0),
            1,
            "send requests for {} ({})",
            m.from,
            m.sid
        );
        let out = db
            .store
            .outbound_for_inbound(&m.sid)
            .await
            .expect("read outbound")
            .unwrap_or_else(|| panic!("no outbound row for {}", m.sid));
        assert!(out.message_sid.is_some(), "reply SID recorded: {out:?}");
    }
    assert_eq!(
        fake.created_messages().len(),
        msgs.len(),
        "no stray replies"
    );
}

/// Counts occurrences of each string.
pub(crate) fn per_to(items: impl Iterator<Item = String>) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for i in items {
        *out.entry(i).or_insert(0) += 1;
    }
    out
}

/// A TCP proxy on 127.0.0.1 in front of a real service, which a test can cut (every open
/// connection dropped, new ones refused because nothing listens) and restore (same port), or
/// freeze (connections stay open and new ones are accepted, but nothing is forwarded: a service
/// that hangs) and thaw.
pub(crate) struct Proxy {
    /// The proxy's address, to put in the server's URL.
    pub(crate) addr: SocketAddr,
    target: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    frozen: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct ProxyState {
    accept: Option<tokio::task::JoinHandle<()>>,
    conns: Vec<tokio::task::JoinHandle<()>>,
    /// Client sockets kept open without an answer while frozen.
    held: Vec<TcpStream>,
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:<random> to `target`.
    pub(crate) async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let proxy = Proxy {
            addr: listener.local_addr().expect("proxy addr"),
            target: target.parse().expect("target address"),
            state: Arc::default(),
            frozen: tokio::sync::watch::channel(false).0,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let target = self.target;
        let frozen = self.frozen.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if *frozen.borrow() {
                    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                    st.held.push(client);
                    continue;
                }
                let mut freeze = frozen.subscribe();
                let held = state.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            _ = freeze.wait_for(|f| *f) => {
                                let mut st = held.lock().unwrap_or_else(|p| p.into_inner());
                                st.held.push(client);
                            }
                        }
                    }
                });
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                st.conns.retain(|c| !c.is_finished());
                st.conns.push(task);
            }
        });
        self.state.lock().unwrap_or_else(|p| p.into_inner()).accept = Some(accept);
    }

    /// Drops every connection and stops listening (new connections are refused).
    pub(crate) async fn cut(&self) {
        let (accept, conns) = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            (st.accept.take(), std::mem::take(&mut st.conns))
        };
        // Abort only asks; awaiting makes sure no byte is forwarded after `cut` returns.
        if let Some(accept) = accept {
            accept.abort();
            let _ = accept.await; // the listener is closed once the task is gone
        }
        for c in &conns {
            c.abort();
        }
        for c in conns {
            let _ = c.await;
        }
    }

    /// Stops forwarding without closing anything: open connections and new ones get no answer.
    pub(crate) fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Forwards new connections again; the ones held while frozen are closed.
    pub(crate) fn thaw(&self) {
        self.frozen.send_replace(false);
        let held = std::mem::take(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()).held);
        drop(held);
    }

    /// Listens on the same port again.
    pub(crate) async fn restore(&self) {
        for _ in 0..50 {
            if let Ok(listener) = TcpListener::bind(self.addr).await {
                self.serve(listener);
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not listen on {} again", self.addr);
    }
}

/// Runs one Redis command on database `db` of the local Redis (RESP over a plain socket).
pub(crate) async fn redis_cmd(db: u8, args: &[&str]) -> String {
    let mut stream = TcpStream::connect(test_support::services::REDIS_ADDR)
        .await
        .expect("connect to Redis");
    let mut raw = Vec::new();
    // QUIT makes Redis answer everything and then close, so reading to the end is enough.
    let commands = [
        vec!["SELECT".to_owned(), db.to_string()],
        args.iter().map(|s| (*s).to_owned()).collect(),
        vec!["QUIT".to_owned()],
    ];
    for cmd in commands {
        raw.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
        for a in cmd {
            raw.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }
    stream.write_all(&raw).await.expect("write to Redis");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One webhook delivery made by a [`Load`].
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) msg: Msg,
    pub(crate) status: u16,
    /// When the request was sent.
    pub(crate) sent_at: Instant,
    /// When its answer arrived.
    pub(crate) answered_at: Instant,
}

/// Steady webhook traffic from `workers` concurrent senders until [`Load::stop`].
pub(crate) struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Delivery>>>,
}

impl Load {
    /// Starts sending unique messages tagged `tag` to `addr`, each sender pausing `pause`
    /// between requests.
    pub(crate) fn start(addr: SocketAddr, tag: &str, workers: usize, pause: Duration) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..workers)
            .map(|w| {
                let stop = stop.clone();
                let tag = tag.to_owned();
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    let mut i = w;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let msg = Msg::new(&tag, i);
                        i += workers;
                        let sent_at = Instant::now();
                        let status = post_webhook(addr, &msg.form()).await;
                        out.push(Delivery {
                            msg,
                            status,
                            sent_at,
                            answered_at: Instant::now(),
                        });
                        tokio::time::sleep(pause).await;
                    }
                    out
                })
            })
            .collect();
        Load { stop, tasks }
    }

    /// Stops the senders and returns every delivery, in no particular order.
    pub(crate) async fn stop(self) -> Vec<Delivery> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut out = Vec::new();
        for t in self.tasks {
            out.extend(t.await.expect("load task"));
        }
        out
    }
}
