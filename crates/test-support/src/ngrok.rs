//! [`FakeNgrok`]: ngrok's local agent API (`GET /api/tunnels`) for the CLI's tunnel checks.
//!
//! Answers in the ngrok v3 shape of `fixtures/ngrok-tunnels.json`, one tunnel per
//! `(public_url, addr)` pair; `proto` follows the public URL's scheme.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::fixtures::try_fixture;
use crate::server::{BoxReply, Handler, RecordedRequest, Reply, Server};

#[derive(Debug, Default)]
struct State {
    tunnels: Vec<(String, String)>,
    requests: Vec<RecordedRequest>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fake ngrok agent API on `127.0.0.1:<random port>`.
pub struct FakeNgrok {
    server: Server,
    state: Shared,
}

impl std::fmt::Debug for FakeNgrok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNgrok")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl FakeNgrok {
    /// Starts on the current tokio runtime with one tunnel `public_url` → `addr`
    /// (e.g. `https://abc.ngrok-free.app` → `http://localhost:5000`).
    ///
    /// # Panics
    ///
    /// When 127.0.0.1 cannot be bound.
    pub async fn start(public_url: &str, addr: &str) -> FakeNgrok {
        let state = initial(public_url, addr);
        match Server::start(handler(state.clone())).await {
            Ok(server) => FakeNgrok { server, state },
            Err(e) => panic!("fake ngrok cannot bind 127.0.0.1: {e}"),
        }
    }

    /// Starts on its own thread and runtime, for synchronous tests.
    ///
    /// # Panics
    ///
    /// When 127.0.0.1 cannot be bound.
    pub fn start_blocking(public_url: &str, addr: &str) -> FakeNgrok {
        let state = initial(public_url, addr);
        match Server::start_blocking(handler(state.clone())) {
            Ok(server) => FakeNgrok { server, state },
            Err(e) => panic!("fake ngrok cannot start: {e}"),
        }
    }

    /// `http://127.0.0.1:<port>` — what the real agent serves at `http://127.0.0.1:4040`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `<base_url>/api/tunnels`.
    pub fn tunnels_url(&self) -> String {
        format!("{}/api/tunnels", self.base_url())
    }

    /// Replaces the tunnels: `(public_url, addr)` pairs; empty means "agent up, no tunnel".
    pub fn set_tunnels(&self, tunnels: &[(&str, &str)]) {
        lock(&self.state).tunnels = tunnels
            .iter()
            .map(|(u, a)| ((*u).to_owned(), (*a).to_owned()))
            .collect();
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }
}

fn initial(public_url: &str, addr: &str) -> Shared {
    Arc::new(Mutex::new(State {
        tunnels: vec![(public_url.to_owned(), addr.to_owned())],
        requests: Vec::new(),
    }))
}

fn handler(state: Shared) -> Handler {
    Arc::new(move |req: RecordedRequest| -> BoxReply {
        let state = state.clone();
        Box::pin(async move {
            let mut guard = lock(&state);
            guard.requests.push(req.clone());
            if req.method != "GET" || req.path != "/api/tunnels" {
                return Reply::json(
                    404,
                    json!({"error_code": 100, "status_code": 404, "msg": "Not Found"}).to_string(),
                );
            }
            Reply::json(200, tunnels_json(&guard.tunnels).to_string())
        })
    })
}

/// The `/api/tunnels` document for `tunnels`, shaped like the fixture.
pub(crate) fn tunnels_json(tunnels: &[(String, String)]) -> Value {
    let template = try_fixture("ngrok-tunnels.json")
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|doc| doc["tunnels"].get(0).cloned())
        .unwrap_or_else(|| json!({"config": {"inspect": true}}));
    let list: Vec<Value> = tunnels
        .iter()
        .enumerate()
        .map(|(i, (public_url, addr))| {
            let mut tunnel = template.clone();
            let name = if i == 0 {
                "command_line".to_owned()
            } else {
                format!("tunnel-{i}")
            };
            let proto = public_url.split("://").next().unwrap_or("https");
            tunnel["name"] = json!(name);
            tunnel["uri"] = json!(format!("/api/tunnels/{name}"));
            tunnel["public_url"] = json!(public_url);
            tunnel["proto"] = json!(proto);
            tunnel["config"]["addr"] = json!(addr);
            tunnel
        })
        .collect();
    json!({"tunnels": list, "uri": "/api/tunnels"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnels_follow_the_fixture_shape() {
        let doc = tunnels_json(&[(
            "https://abc.ngrok-free.app".to_owned(),
            "http://localhost:5000".to_owned(),
        )]);
        let tunnel = &doc["tunnels"][0];
        assert_eq!(tunnel["public_url"], "https://abc.ngrok-free.app");
        assert_eq!(tunnel["proto"], "https");
        assert_eq!(tunnel["config"]["addr"], "http://localhost:5000");
        assert!(tunnel["metrics"].is_object(), "kept from the fixture");
        assert_eq!(tunnels_json(&[])["tunnels"], json!([]));
    }
}
