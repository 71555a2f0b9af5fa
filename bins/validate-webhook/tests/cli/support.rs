//! Helpers: a temp project with a `.env`, running the binary, tiny local servers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;

pub(crate) const TOKEN: &str = test_support::AUTH_TOKEN;
pub(crate) const ACCOUNT: &str = test_support::ACCOUNT_SID;
pub(crate) const NGROK_URL: &str = "https://3f2a-203-0-113-7.ngrok-free.app";
pub(crate) const NGROK_WEBHOOK: &str =
    "https://3f2a-203-0-113-7.ngrok-free.app/api/v1/whatsapp/webhook";

/// A port nothing listens on (bound, then released).
pub(crate) fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// What one run printed.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) code: i32,
}

impl Run {
    pub(crate) fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts `line` is printed exactly, and returns the line after it.
    #[track_caller]
    pub(crate) fn line(&self, line: &str) -> &str {
        let lines = self.lines();
        match lines.iter().position(|l| *l == line) {
            Some(i) => lines.get(i + 1).copied().unwrap_or_default(),
            None => panic!(
                "missing line\n  {line:?}\nin output:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            ),
        }
    }

    /// Asserts `line` is printed and followed by `next` (the Fix/Note line).
    #[track_caller]
    pub(crate) fn lines_pair(&self, line: &str, next: &str) {
        assert_eq!(self.line(line), next, "after {line:?} in:\n{}", self.stdout);
    }

    /// Asserts a printed line starts with `prefix`, and returns the first such line.
    #[track_caller]
    pub(crate) fn line_starting(&self, prefix: &str) -> String {
        match self.lines().into_iter().find(|l| l.starts_with(prefix)) {
            Some(l) => l.to_owned(),
            None => panic!(
                "no line starting {prefix:?} in output:\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            ),
        }
    }

    /// Asserts no printed line starts with `prefix`.
    #[track_caller]
    pub(crate) fn no_line_starting(&self, prefix: &str) {
        assert!(
            !self.lines().iter().any(|l| l.starts_with(prefix)),
            "unexpected line starting {prefix:?} in:\n{}",
            self.stdout
        );
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// A temporary project directory with a `.env` and the environment the binary runs with.
pub(crate) struct Project {
    pub(crate) dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Project {
    /// A project whose `.env` holds `dotenv`; `data/` exists so the default SQLite path is fine.
    /// ngrok's API and PORT point at closed ports unless a test says otherwise.
    pub(crate) fn new(dotenv: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".env"), dotenv).expect("write .env");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir data");
        let env = vec![
            (
                "NGROK_API_URL".to_owned(),
                format!("http://127.0.0.1:{}", closed_port()),
            ),
            ("PORT".to_owned(), closed_port().to_string()),
        ];
        Project { dir, env }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets (or replaces) an environment variable for the run.
    pub(crate) fn env(mut self, key: &str, value: impl Into<String>) -> Project {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.into()));
        self
    }

    pub(crate) fn port(&self) -> u16 {
        self.env
            .iter()
            .find(|(k, _)| k == "PORT")
            .and_then(|(_, v)| v.parse().ok())
            .expect("PORT")
    }

    /// The value the binary will see for `key`: the environment wins over `.env`.
    fn value(&self, key: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == key) {
            return Some(v.clone());
        }
        let dotenv = std::fs::read_to_string(self.dir.path().join(".env")).unwrap_or_default();
        dotenv
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
    }

    /// Refuses runs that would reach the network: `--online` and `send-test` must talk to a
    /// local fake Twilio, and the online probe must post to 127.0.0.1.
    #[track_caller]
    fn assert_stays_local(&self, args: &[&str]) {
        if !args.iter().any(|a| *a == "--online" || *a == "send-test") {
            return;
        }
        let local = |v: &str| {
            // With or without user:password@ in front of the host.
            let host = v
                .strip_prefix("http://")
                .map(|rest| rest.split_once('@').map_or(rest, |(_, host)| host));
            host.is_some_and(|h| h.starts_with("127.0.0.1:"))
        };
        if self.value("TWILIO_ACCOUNT_SID").is_some() {
            let base = self.value("TWILIO_API_BASE_URL").unwrap_or_default();
            assert!(
                local(&base),
                "test would call the real Twilio API ({base:?})"
            );
        }
        if let Some(url) = self.value("WEBHOOK_URL") {
            assert!(
                args.contains(&"send-test") || local(&url),
                "the probe would POST to {url}"
            );
        }
    }

    /// Runs the binary in the project directory with only this environment.
    #[track_caller]
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.assert_stays_local(args);
        let out = Command::new(env!("CARGO_BIN_EXE_validate-webhook"))
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run validate-webhook");
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }
}

/// `.env` text with a real-looking account and token plus `extra` lines.
pub(crate) fn dotenv(extra: &str) -> String {
    format!("TWILIO_ACCOUNT_SID={ACCOUNT}\nTWILIO_AUTH_TOKEN={TOKEN}\n{extra}")
}

/// One request a tiny server received.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn form(&self, key: &str) -> Option<String> {
        form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// An answer: status, extra headers, body.
pub(crate) type Answer = (u16, Vec<(&'static str, String)>, String);

/// A minimal HTTP/1.1 server on 127.0.0.1 (one request per connection) for tests.
pub(crate) struct TinyServer {
    pub(crate) port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl TinyServer {
    pub(crate) fn start(
        handler: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> TinyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let seen = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (handler, seen) = (handler.clone(), seen.clone());
                thread::spawn(move || serve(stream, &*handler, &seen));
            }
        });
        TinyServer { port, requests }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

fn serve(stream: TcpStream, handler: &dyn Fn(&Request) -> Answer, seen: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let req = Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (status, extra, body) = handler(&req);
    seen.lock().expect("lock").push(req);
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
}

/// A stand-in for webhook-server: `/healthz` → 200, `POST /api/v1/whatsapp/webhook` → 200
/// empty TwiML when `X-Twilio-Signature` is valid for `signed_url` with `token`, else 403.
pub(crate) fn webhook_server(
    token: &'static str,
    signed_url: impl Fn(u16) -> String + Send + Sync + 'static,
) -> TinyServer {
    let port_cell: Arc<Mutex<u16>> = Arc::new(Mutex::new(0));
    let cell = port_cell.clone();
    let server = TinyServer::start(move |req| {
        let port = *cell.lock().expect("lock");
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/healthz") => (200, vec![], "ok".to_owned()),
            ("POST", "/api/v1/whatsapp/webhook") => {
                let sig = req.header("x-twilio-signature").unwrap_or_default();
                let ok = twilio_signature::Validator::new(token)
                    .validate_form_body(&signed_url(port), req.body.as_bytes(), sig)
                    .is_ok();
                if ok {
                    (
                        200,
                        vec![("Content-Type", "text/xml".to_owned())],
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>".to_owned(),
                    )
                } else {
                    (403, vec![], "invalid signature".to_owned())
                }
            }
            _ => (404, vec![], "not found".to_owned()),
        }
    });
    *port_cell.lock().expect("lock") = server.port;
    server
}

/// A fake Redis: answers `PING` with `+PONG`; `AUTH` succeeds only with `password`.
pub(crate) fn fake_redis(password: Option<&'static str>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                let mut authed = password.is_none();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    let n: usize = header.trim().trim_start_matches('*').parse().unwrap_or(0);
                    let mut args = Vec::new();
                    for _ in 0..n {
                        let (mut len, mut arg) = (String::new(), String::new());
                        let _ = reader.read_line(&mut len);
                        let _ = reader.read_line(&mut arg);
                        args.push(arg.trim_end().to_owned());
                    }
                    let reply = match args.first().map(String::as_str) {
                        Some("AUTH") if args.last().map(String::as_str) == password => {
                            authed = true;
                            "+OK"
                        }
                        Some("AUTH") => {
                            "-WRONGPASS invalid username-password pair or user is disabled."
                        }
                        Some("PING") if authed => "+PONG",
                        Some("PING") => "-NOAUTH Authentication required.",
                        _ => "-ERR unknown command",
                    };
                    if writer.write_all(format!("{reply}\r\n").as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}
