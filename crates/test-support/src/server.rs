//! A tiny hyper 1 server on `127.0.0.1:0` shared by the fakes: it records nothing itself,
//! decodes each request into a [`RecordedRequest`] and hands it to a handler.
//!
//! Two ways to run it: on the caller's tokio runtime ([`Server::start`]) or on its own thread
//! with its own runtime ([`Server::start_blocking`]) so blocking code — ureq, the CLI — can call
//! it from a plain `#[test]`. Dropping the [`Server`] stops accepting and aborts open
//! connections, including handlers still sleeping on a delay.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Largest request body the fakes read.
const MAX_BODY: usize = 1024 * 1024;

/// One request as a fake received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path without the query, e.g. `/2010-04-01/Accounts/AC…/Messages.json`.
    pub path: String,
    /// The raw query string, if any.
    pub raw_query: Option<String>,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// Raw body as text (lossy UTF-8).
    pub body: String,
    /// Decoded `application/x-www-form-urlencoded` body pairs, repeated keys kept in order.
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First form value for `key`.
    pub fn form_value(&self, key: &str) -> Option<&str> {
        first(&self.form, key)
    }

    /// Every form value for `key`, in order (`MediaUrl` is repeated).
    pub fn form_values(&self, key: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// First query value for `key`.
    pub fn query_value(&self, key: &str) -> Option<&str> {
        first(&self.query, key)
    }

    /// The decoded `Authorization: Basic` credentials as `(user, password)`.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let encoded = self.header("authorization")?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "application/json; charset=utf-8".to_owned(),
            )],
            body: body.into().into_bytes(),
        }
    }
}

pub(crate) type BoxReply = Pin<Box<dyn Future<Output = Reply> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(RecordedRequest) -> BoxReply + Send + Sync>;

/// A running server; dropping it shuts it down.
pub(crate) struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub(crate) async fn start(handler: Handler) -> std::io::Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel();
        tokio::spawn(serve(listener, handler, rx));
        Ok(Server {
            addr,
            shutdown: Some(tx),
            thread: None,
        })
    }

    /// Binds `127.0.0.1:0` and serves from a new thread with its own runtime.
    pub(crate) fn start_blocking(handler: Handler) -> std::io::Result<Server> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("fake-http".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let bound = TcpListener::bind(("127.0.0.1", 0)).await.and_then(|l| {
                        let addr = l.local_addr()?;
                        Ok((l, addr))
                    });
                    match bound {
                        Ok((listener, addr)) => {
                            let _ = addr_tx.send(Ok(addr));
                            serve(listener, handler, rx).await;
                        }
                        Err(e) => {
                            let _ = addr_tx.send(Err(e));
                        }
                    }
                });
            })?;
        let addr = addr_rx
            .recv()
            .map_err(|_| std::io::Error::other("fake server thread exited before binding"))??;
        Ok(Server {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener, handler: Handler, mut shutdown: oneshot::Receiver<()>) {
    // Owning the connection tasks here means they are aborted when the loop ends.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handler = handler.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(respond(handler, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow for the whole test.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn respond(handler: Handler, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let reply = match record(req).await {
        Ok(recorded) => handler(recorded).await,
        Err(why) => Reply::json(400, format!(r#"{{"message":"fake server: {why}"}}"#)),
    };
    let mut builder = hyper::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| {
            let mut fallback = hyper::Response::new(Full::new(Bytes::from_static(
                b"fake server built an invalid response",
            )));
            *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

async fn record(req: hyper::Request<Incoming>) -> Result<RecordedRequest, String> {
    let (parts, body) = req.into_parts();
    let bytes = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("cannot read body: {e}"))?
        .to_bytes();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let is_form = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let form = if is_form {
        decode_pairs(&bytes)
    } else {
        Vec::new()
    };
    let raw_query = parts.uri.query().map(str::to_owned);
    Ok(RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: raw_query
            .as_deref()
            .map(|q| decode_pairs(q.as_bytes()))
            .unwrap_or_default(),
        raw_query,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        form,
    })
}

/// Decodes `a=1&b=2` (`+` is a space), keeping repeated keys in order.
pub(crate) fn decode_pairs(input: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(input)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
