//! [`FakeTwilio`]: the Twilio REST endpoints this workspace calls, served from `fixtures/`.
//!
//! Routes (any Account SID in the path is echoed back):
//!
//! | request | answer |
//! |---|---|
//! | `POST /2010-04-01/Accounts/{AC}/Messages.json` | 201 `message-created.json` with a fresh `SM…` (`MM…` with media) echoing `To`, `From`, `Body`, `MessagingServiceSid` |
//! | `GET  /2010-04-01/Accounts/{AC}/Messages.json` | 200 page of the messages created so far, newest first, filtered by `To`/`From`, `PageSize` (50) a page, `next_page_uri` to the next |
//! | `GET  /2010-04-01/Accounts/{AC}/Messages/{SID}.json` | 200 a created message; `error-63016.json` for its SID; else 404 `error-20404.json` |
//! | `GET  /2010-04-01/Accounts/{AC}.json` | 200 `account.json`; 401 `error-20003.json` for an API key (`SK…` user), as Twilio does |
//! | `GET  /2010-04-01/Accounts/{AC}/IncomingPhoneNumbers.json` | 200 `incoming-phone-numbers.json`, filtered by `PhoneNumber` |
//! | `GET  /v1/Services/{MG}` | 200 `messaging-service.json` |
//! | `GET  /v2/Channels/Senders/{XE}` | 200 `whatsapp-sender.json` |
//! | `GET  /v2/Channels/Senders` | 200 `whatsapp-senders.json` (one page, one sender: `whatsapp:+14155550123`) |
//! | anything else | 404 in Twilio's error shape (405 for a known path with the wrong method) |
//!
//! Scripted behaviour, consumed in order: [`FakeTwilio::fail_next`], [`FakeTwilio::delay_next`],
//! [`FakeTwilio::rate_limit_next`] (and `_sends` variants that only count message creates),
//! [`FakeTwilio::require_basic_auth`], [`FakeTwilio::set_fixture`], [`FakeTwilio::respond`].
//! A delayed send still creates its message before the delay, like a Twilio whose response
//! was lost on the way back; [`FakeTwilio::delay_next_sends_creating_late`] creates it after.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::fixtures::try_fixture;
use crate::server::{BoxReply, Handler, RecordedRequest, Reply, Server};

/// Which requests a scripted rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Any,
    Sends,
}

impl Scope {
    fn matches(self, req: &RecordedRequest) -> bool {
        match self {
            Scope::Any => true,
            Scope::Sends => is_send(req),
        }
    }
}

#[derive(Debug)]
struct Rule<T> {
    scope: Scope,
    remaining: usize,
    action: T,
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<RecordedRequest>,
    failures: VecDeque<Rule<Reply>>,
    delays: VecDeque<Rule<Duration>>,
    /// Delays before the request is handled at all (see `delay_next_sends_creating_late`).
    late: VecDeque<Rule<Duration>>,
    required_auth: Option<String>,
    fixtures: HashMap<String, String>,
    routes: HashMap<(String, String), Reply>,
    /// Created messages, oldest first.
    messages: Vec<Value>,
    created: u64,
}

fn take<T: Clone>(rules: &mut VecDeque<Rule<T>>, req: &RecordedRequest) -> Option<T> {
    let index = rules.iter().position(|r| r.scope.matches(req))?;
    let rule = rules.get_mut(index)?;
    rule.remaining -= 1;
    let action = rule.action.clone();
    if rule.remaining == 0 {
        rules.remove(index);
    }
    Some(action)
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // A panicking test thread must not hide the recorded requests from the others.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fake Twilio REST API on `127.0.0.1:<random port>`.
///
/// Point the code under test at [`FakeTwilio::base_url`] (it serves both the `api` and the
/// `messaging` paths). Dropping it stops the server.
pub struct FakeTwilio {
    server: Server,
    state: Shared,
}

impl std::fmt::Debug for FakeTwilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTwilio")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl FakeTwilio {
    /// Starts on the current tokio runtime. Blocking clients must then run on another thread
    /// (`spawn_blocking`); for plain `#[test]`s use [`FakeTwilio::start_blocking`].
    ///
    /// # Panics
    ///
    /// When 127.0.0.1 cannot be bound.
    pub async fn start() -> FakeTwilio {
        let state = Shared::default();
        match Server::start(handler(state.clone())).await {
            Ok(server) => FakeTwilio { server, state },
            Err(e) => panic!("fake twilio cannot bind 127.0.0.1: {e}"),
        }
    }

    /// Starts on its own thread and runtime, for synchronous tests.
    ///
    /// # Panics
    ///
    /// When 127.0.0.1 cannot be bound.
    pub fn start_blocking() -> FakeTwilio {
        let state = Shared::default();
        match Server::start_blocking(handler(state.clone())) {
            Ok(server) => FakeTwilio { server, state },
            Err(e) => panic!("fake twilio cannot start: {e}"),
        }
    }

    /// `http://127.0.0.1:<port>`, for `TWILIO_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// The `POST …/Messages.json` requests received so far (failed ones included).
    pub fn sent_messages(&self) -> Vec<RecordedRequest> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| is_send(r))
            .cloned()
            .collect()
    }

    /// Forgets the recorded requests (created messages stay).
    pub fn clear_requests(&self) {
        lock(&self.state).requests.clear();
    }

    /// Messages the fake created (the JSON it answered), oldest first.
    pub fn created_messages(&self) -> Vec<Value> {
        lock(&self.state).messages.clone()
    }

    /// Sets a created message's `status` and `error_code`, as later fetches will show them.
    pub fn set_message_status(&self, sid: &str, status: &str, error_code: Option<i64>) {
        let mut state = lock(&self.state);
        if let Some(message) = state.messages.iter_mut().find(|m| m["sid"] == sid) {
            message["status"] = json!(status);
            message["error_code"] = json!(error_code);
        }
    }

    /// Answers the next `n` requests (of any kind) with `status` and the body of `fixture`.
    pub fn fail_next(&self, n: usize, status: u16, fixture: &str) {
        self.push_failure(Scope::Any, n, Reply::json(status, fixture_or_note(fixture)));
    }

    /// Like [`FakeTwilio::fail_next`] with an inline body.
    pub fn fail_next_with_body(&self, n: usize, status: u16, body: &str) {
        self.push_failure(Scope::Any, n, Reply::json(status, body));
    }

    /// Answers the next `n` message creates with `status` and `fixture`; other requests
    /// (look-ups between retries) are served normally.
    pub fn fail_next_sends(&self, n: usize, status: u16, fixture: &str) {
        self.push_failure(
            Scope::Sends,
            n,
            Reply::json(status, fixture_or_note(fixture)),
        );
    }

    /// Like [`FakeTwilio::fail_next_sends`] with an inline body (a gateway's HTML page, say).
    pub fn fail_next_sends_with_body(&self, n: usize, status: u16, body: &str) {
        self.push_failure(Scope::Sends, n, Reply::json(status, body));
    }

    /// Answers the next `n` requests with 429 `error-429.json` and `Retry-After: <secs>`.
    pub fn rate_limit_next(&self, n: usize, retry_after_secs: u64) {
        let mut reply = Reply::json(429, fixture_or_note("error-429.json"));
        reply
            .headers
            .push(("retry-after".to_owned(), retry_after_secs.to_string()));
        self.push_failure(Scope::Any, n, reply);
    }

    /// Holds the response to the next `n` requests for `delay` (the request is processed
    /// first, so a delayed send has created its message).
    pub fn delay_next(&self, n: usize, delay: Duration) {
        self.push_delay(Scope::Any, n, delay);
    }

    /// Like [`FakeTwilio::delay_next`], counting only message creates.
    pub fn delay_next_sends(&self, n: usize, delay: Duration) {
        self.push_delay(Scope::Sends, n, delay);
    }

    /// Holds the next `n` message creates for `delay` *before* handling them: the message
    /// appears only when the delay ends, like a Twilio still working on the create when the
    /// client stopped waiting for its answer.
    pub fn delay_next_sends_creating_late(&self, n: usize, delay: Duration) {
        if n > 0 {
            lock(&self.state).late.push_back(Rule {
                scope: Scope::Sends,
                remaining: n,
                action: delay,
            });
        }
    }

    /// From now on, answer 401 `error-20003.json` unless the request carries exactly this
    /// Basic auth user and password.
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        lock(&self.state).required_auth = Some(format!("Basic {encoded}"));
    }

    /// Serves `body` wherever the fixture `name` would be served (e.g. an
    /// `incoming-phone-numbers.json` whose `sms_url` is the test's WEBHOOK_URL).
    pub fn set_fixture(&self, name: &str, body: &str) {
        lock(&self.state)
            .fixtures
            .insert(name.to_owned(), body.to_owned());
    }

    /// Answers `method path` (exact path, query ignored) with `status` and JSON `body`,
    /// before any built-in route.
    pub fn respond(&self, method: &str, path: &str, status: u16, body: &str) {
        lock(&self.state).routes.insert(
            (method.to_ascii_uppercase(), path.to_owned()),
            Reply::json(status, body),
        );
    }

    /// Answers `method path` with exactly these headers and bytes (no JSON content type):
    /// a proxy's page, a redirect, a body that is not UTF-8.
    pub fn respond_raw(
        &self,
        method: &str,
        path: &str,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        lock(&self.state).routes.insert(
            (method.to_ascii_uppercase(), path.to_owned()),
            Reply {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                body: body.to_vec(),
            },
        );
    }

    fn push_failure(&self, scope: Scope, n: usize, reply: Reply) {
        if n > 0 {
            lock(&self.state).failures.push_back(Rule {
                scope,
                remaining: n,
                action: reply,
            });
        }
    }

    fn push_delay(&self, scope: Scope, n: usize, delay: Duration) {
        if n > 0 {
            lock(&self.state).delays.push_back(Rule {
                scope,
                remaining: n,
                action: delay,
            });
        }
    }
}

fn is_send(req: &RecordedRequest) -> bool {
    req.method == "POST" && req.path.ends_with("/Messages.json")
}

/// A fixture's text, or a JSON note naming the missing file (so the test failure says why).
fn fixture_or_note(name: &str) -> String {
    try_fixture(name).unwrap_or_else(|| {
        json!({"code": null, "message": format!("fake twilio: fixture {name} not found"), "status": 500})
            .to_string()
    })
}

fn handler(state: Shared) -> Handler {
    Arc::new(move |req: RecordedRequest| -> BoxReply {
        let state = state.clone();
        Box::pin(async move {
            let late = {
                let mut guard = lock(&state);
                guard.requests.push(req.clone());
                take(&mut guard.late, &req)
            };
            if let Some(late) = late {
                // In a task of its own, so the create completes even when the client has
                // hung up (which drops this future), as at Twilio.
                let (state, req) = (state.clone(), req.clone());
                let created = tokio::spawn(async move {
                    tokio::time::sleep(late).await;
                    decide(&mut lock(&state), &req)
                });
                return created.await.unwrap_or_else(|e| {
                    Reply::json(
                        500,
                        json!({"message": format!("fake twilio: {e}")}).to_string(),
                    )
                });
            }
            let (reply, delay) = {
                let mut guard = lock(&state);
                let reply = decide(&mut guard, &req);
                let delay = take(&mut guard.delays, &req);
                (reply, delay)
            };
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            reply
        })
    })
}

fn decide(state: &mut State, req: &RecordedRequest) -> Reply {
    if let Some(expected) = &state.required_auth
        && req.header("authorization") != Some(expected.as_str())
    {
        return Reply::json(401, fixture_text(state, "error-20003.json"));
    }
    if let Some(failure) = take(&mut state.failures, req) {
        return failure;
    }
    if let Some(reply) = state.routes.get(&(req.method.clone(), req.path.clone())) {
        return reply.clone();
    }
    route(state, req)
}

fn fixture_text(state: &State, name: &str) -> String {
    state
        .fixtures
        .get(name)
        .cloned()
        .unwrap_or_else(|| fixture_or_note(name))
}

fn fixture_json(state: &State, name: &str) -> Value {
    serde_json::from_str(&fixture_text(state, name)).unwrap_or(Value::Null)
}

fn route(state: &mut State, req: &RecordedRequest) -> Reply {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let method = req.method.as_str();
    match segments.as_slice() {
        ["2010-04-01", "Accounts", account] if account.ends_with(".json") => {
            let sid = account.trim_end_matches(".json");
            only(method, "GET", || {
                let is_api_key = req
                    .basic_auth()
                    .is_some_and(|(user, _)| user.starts_with("SK"));
                if is_api_key {
                    return Reply::json(401, fixture_text(state, "error-20003.json"));
                }
                let mut account = fixture_json(state, "account.json");
                account["sid"] = json!(sid);
                account["owner_account_sid"] = json!(sid);
                Reply::json(200, account.to_string())
            })
        }
        ["2010-04-01", "Accounts", account, "Messages.json"] => match method {
            "POST" => create_message(state, account, req),
            "GET" => list_messages(state, account, req),
            _ => not_allowed(),
        },
        ["2010-04-01", "Accounts", _, "Messages", file] if file.ends_with(".json") => {
            let sid = file.trim_end_matches(".json");
            only(method, "GET", || fetch_message(state, sid, req))
        }
        ["2010-04-01", "Accounts", _, "IncomingPhoneNumbers.json"] => {
            only(method, "GET", || incoming_numbers(state, req))
        }
        ["v1", "Services", sid] => only(method, "GET", || {
            let mut service = fixture_json(state, "messaging-service.json");
            service["sid"] = json!(sid);
            Reply::json(200, service.to_string())
        }),
        ["v2", "Channels", "Senders"] => only(method, "GET", || {
            Reply::json(200, fixture_text(state, "whatsapp-senders.json"))
        }),
        ["v2", "Channels", "Senders", sid] => only(method, "GET", || {
            let mut sender = fixture_json(state, "whatsapp-sender.json");
            sender["sid"] = json!(sid);
            Reply::json(200, sender.to_string())
        }),
        _ => not_found(&req.path),
    }
}

fn only(method: &str, allowed: &str, answer: impl FnOnce() -> Reply) -> Reply {
    if method == allowed {
        answer()
    } else {
        not_allowed()
    }
}

fn not_allowed() -> Reply {
    Reply::json(
        405,
        json!({"code": 20004, "message": "Method not allowed", "more_info": "https://www.twilio.com/docs/errors/20004", "status": 405}).to_string(),
    )
}

fn not_found(path: &str) -> Reply {
    Reply::json(
        404,
        json!({
            "code": 20404,
            "message": format!("The requested resource {path} was not found"),
            "more_info": "https://www.twilio.com/docs/errors/20404",
            "status": 404
        })
        .to_string(),
    )
}

fn create_message(state: &mut State, account: &str, req: &RecordedRequest) -> Reply {
    let Some(to) = req.form_value("To").filter(|t| !t.is_empty()) else {
        return Reply::json(
            400,
            json!({"code": 21604, "message": "A 'To' phone number is required.", "more_info": "https://www.twilio.com/docs/errors/21604", "status": 400}).to_string(),
        );
    };
    let media = req.form_values("MediaUrl").len();
    let mg = req.form_value("MessagingServiceSid");
    let from = req.form_value("From");
    state.created += 1;
    let prefix = if media > 0 { "MM" } else { "SM" };
    let sid = format!("{prefix}{}", fresh_hex(state.created));
    let now = chrono::Utc::now().to_rfc2822();
    let uri = format!("/2010-04-01/Accounts/{account}/Messages/{sid}");

    let mut message = fixture_json(state, "message-created.json");
    message["sid"] = json!(sid);
    message["account_sid"] = json!(account);
    message["to"] = json!(to);
    message["from"] = json!(from);
    message["body"] = json!(req.form_value("Body").unwrap_or_default());
    message["messaging_service_sid"] = json!(mg);
    message["num_media"] = json!(media.to_string());
    message["status"] = json!(if mg.is_some() && from.is_none() {
        "accepted"
    } else {
        "queued"
    });
    message["date_created"] = json!(now);
    message["date_updated"] = json!(now);
    message["date_sent"] = Value::Null;
    message["uri"] = json!(format!("{uri}.json"));
    message["subresource_uris"] = json!({"media": format!("{uri}/Media.json")});
    state.messages.push(message.clone());
    Reply::json(201, message.to_string())
}

/// Newest first, `PageSize` (default 50) per page, `Page` from 0; `next_page_uri` names the
/// next page while there is one, as Twilio's does.
fn list_messages(state: &State, account: &str, req: &RecordedRequest) -> Reply {
    let to = req.query_value("To");
    let from = req.query_value("From");
    let size = req
        .query_value("PageSize")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 1000);
    let page = req
        .query_value("Page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let matching: Vec<&Value> = state
        .messages
        .iter()
        .rev()
        .filter(|m| to.is_none_or(|t| m["to"] == t))
        .filter(|m| from.is_none_or(|f| m["from"] == f))
        .collect();
    let start = (page * size).min(matching.len());
    let end = (start + size).min(matching.len());
    let page_uri = |page: usize| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(to) = to {
            query.append_pair("To", to);
        }
        if let Some(from) = from {
            query.append_pair("From", from);
        }
        query.append_pair("PageSize", &size.to_string());
        query.append_pair("Page", &page.to_string());
        if page > 0 {
            query.append_pair("PageToken", &format!("PA{page}"));
        }
        format!(
            "/2010-04-01/Accounts/{account}/Messages.json?{}",
            query.finish()
        )
    };
    let next = (end < matching.len()).then(|| page_uri(page + 1));
    Reply::json(
        200,
        json!({
            "end": end.saturating_sub(1),
            "first_page_uri": page_uri(0),
            "messages": &matching[start..end],
            "next_page_uri": next,
            "page": page,
            "page_size": size,
            "previous_page_uri": page.checked_sub(1).map(page_uri),
            "start": start,
            "uri": page_uri(page),
        })
        .to_string(),
    )
}

fn fetch_message(state: &State, sid: &str, req: &RecordedRequest) -> Reply {
    if let Some(message) = state.messages.iter().find(|m| m["sid"] == sid) {
        return Reply::json(200, message.to_string());
    }
    let failed = fixture_json(state, "error-63016.json");
    if failed["sid"] == sid {
        return Reply::json(200, failed.to_string());
    }
    not_found(&req.path)
}

fn incoming_numbers(state: &State, req: &RecordedRequest) -> Reply {
    let mut page = fixture_json(state, "incoming-phone-numbers.json");
    if let Some(wanted) = req.query_value("PhoneNumber")
        && let Some(numbers) = page["incoming_phone_numbers"].as_array_mut()
    {
        numbers.retain(|n| n["phone_number"] == wanted);
    }
    if let Some(size) = req.query_value("PageSize").and_then(|s| s.parse().ok())
        && let Some(numbers) = page["incoming_phone_numbers"].as_array_mut()
    {
        numbers.truncate(size);
        page["page_size"] = json!(size);
    }
    Reply::json(200, page.to_string())
}

/// 32 hex digits, distinct per `n`, that look random.
fn fresh_hex(n: u64) -> String {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    // The first half is a bijection of n, so SIDs never repeat within one fake.
    format!("{:016x}{:016x}", mix(n), mix(!n))
}
