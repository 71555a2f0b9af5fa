//! The HTTP surface: one function per endpoint, and the router that picks it.
//!
//! | route | method | what it does |
//! |---|---|---|
//! | `/api/v1/whatsapp/webhook` | POST | verify → parse → record → 200 empty TwiML |
//! | `/api/v1/whatsapp/status` | POST | verify → parse → store the event → 200 |
//! | `/healthz` | GET | the process is alive |
//! | `/readyz` | GET | store, queue and worker are healthy |
//! | `/metrics` | GET | Prometheus text |

use crate::app::{App, Readiness};
use crate::inbound::{InboundMessage, form_pairs, parse_form};
use crate::status::StatusCallback;
use crate::verify::{self, KeyUsed};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::{Duration, Instant};
use twilio_signature::{Algorithm, FormBody, SignatureError, SignatureSettings};

/// Path of the inbound message webhook.
pub const WEBHOOK_PATH: &str = "/api/v1/whatsapp/webhook";
/// Path of the delivery status callback.
pub const STATUS_PATH: &str = "/api/v1/whatsapp/status";
/// Liveness probe path.
pub const HEALTH_PATH: &str = "/healthz";
/// Readiness probe path (Render's `healthCheckPath`).
pub const READY_PATH: &str = "/readyz";
/// Readiness to take webhooks: `/readyz` without the queue. While Redis is down webhooks are
/// still recorded and acknowledged (the database sweep answers them), so a platform health
/// check that takes an instance out of routing (Render after 15 s) should not count Redis.
pub const READY_WEBHOOKS_PATH: &str = "/readyz/webhooks";
/// Prometheus metrics path.
pub const METRICS_PATH: &str = "/metrics";
/// Largest request body accepted (Twilio's own limit for a webhook response is 64 KiB too).
pub const MAX_BODY: usize = 64 * 1024;
/// Time allowed to receive a request body once its headers arrived.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Query parameter of our `StatusCallback` URLs that names the outbound row a callback is about.
pub const CALLBACK_MARKER_PARAM: &str = "ref";
/// The TwiML that acknowledges a message without replying in-line.
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

/// The response body type of the server.
pub type Body = Full<hyper::body::Bytes>;

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<String>,
) -> Response<Body> {
    let mut res = Response::new(Full::new(hyper::body::Bytes::from(body.into())));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn twiml() -> Response<Body> {
    respond(StatusCode::OK, "text/xml; charset=utf-8", EMPTY_TWIML)
}

/// Routes one request and records its metrics.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_owned();
    let routed = route_path(&path);
    let (route, res) = match (routed, req.method()) {
        (WEBHOOK_PATH, &Method::POST) => ("webhook", inbound(&app, req, started).await),
        (STATUS_PATH, &Method::POST) => ("status", status(&app, req, started).await),
        (HEALTH_PATH, &Method::GET | &Method::HEAD) => ("healthz", text(StatusCode::OK, "ok\n")),
        (READY_PATH, &Method::GET | &Method::HEAD) => ("readyz", ready(&app).await),
        (READY_WEBHOOKS_PATH, &Method::GET | &Method::HEAD) => {
            ("readyz", readiness(&app.readiness().await.for_webhooks()))
        }
        (METRICS_PATH, &Method::GET | &Method::HEAD) => ("metrics", metrics(&app, &req).await),
        (WEBHOOK_PATH | STATUS_PATH, &Method::GET) => {
            if looks_like_twilio(req.uri().query()) {
                tracing::warn!(
                    path = %path,
                    "❌ Webhook refused with 405: Twilio called with GET (its parameters are in the query string); set this webhook's method to HTTP POST in the Twilio Console"
                );
            }
            unrouted(routed)
        }
        _ => match unrouted(routed) {
            // A path no route takes ("other": not a known path with the wrong method).
            ("other", _)
                if req.method() == Method::POST
                    && req.headers().contains_key("x-twilio-signature") =>
            {
                ("other", misrouted(&app, req).await)
            }
            answer => answer,
        },
    };
    app.metrics.observe_request(
        route,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// A POST carrying `X-Twilio-Signature` to a path no route takes: 404, and a warning when the
/// signature verifies for this server's public origin and that path, i.e. Twilio sent it (a
/// Console URL with a wrong path, every message of which is lost). Anyone can add the header,
/// so an unverified request stays silent.
async fn misrouted(app: &App, req: Request<Incoming>) -> Response<Body> {
    let not_found = || text(StatusCode::NOT_FOUND, "not found\n");
    let Ok((parts, body)) = read_body(req).await else {
        return not_found();
    };
    let pq = path_and_query(&parts);
    // A placeholder token proves nothing (anyone can sign with it).
    let primary = app.validator.as_ref().filter(|_| !app.token_is_placeholder);
    let verifies = |url: &str| {
        [primary, app.secondary_validator.as_ref()]
            .into_iter()
            .flatten()
            .any(|v| verify::check_and_decode(v, url, &parts.headers, &body).is_ok())
    };
    if app
        .webhook_url
        .at_path(&parts.headers, &pq)
        .is_some_and(|url| verifies(&url))
    {
        let path = parts.uri.path();
        tracing::warn!(
            path = path
                .char_indices()
                .nth(200)
                .map_or(path, |(i, _)| &path[..i]),
            "❌ Webhook answered 404: Twilio sent a webhook to a path this server does not serve; set the URL in the Twilio Console to WEBHOOK_URL (path {WEBHOOK_PATH}; status callbacks {STATUS_PATH})"
        );
    }
    not_found()
}

/// The route a path takes. A trailing slash on the two webhook paths is the same endpoint: the
/// Console's URL may have one (Twilio signs the URL with it; see `verify::slash_as_requested`).
fn route_path(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(p @ (WEBHOOK_PATH | STATUS_PATH)) => p,
        _ => path,
    }
}

/// A query string carrying Twilio's webhook parameters: a webhook configured with HTTP GET in
/// the Console (a browser opening the URL has none, and is not worth a warning).
fn looks_like_twilio(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes())
            .any(|(k, _)| matches!(k.as_ref(), "MessageSid" | "SmsSid" | "AccountSid"))
    })
}

/// Answers while the app cannot start yet (its database or Redis is unreachable; the server
/// retries): the process is alive (`/healthz` 200), not ready (`/readyz` 503 saying what it
/// waits for), and webhooks are refused with 503 so that nothing is acknowledged that was not
/// recorded. `waiting_for` is the latest start error.
pub async fn starting(
    waiting_for: Arc<std::sync::Mutex<String>>,
    req: Request<Incoming>,
) -> Response<Body> {
    let reason = waiting_for
        .lock()
        .map(|w| w.clone())
        .unwrap_or_else(|_| "the database".to_owned());
    match (route_path(req.uri().path()), req.method()) {
        (HEALTH_PATH, &Method::GET | &Method::HEAD) => text(StatusCode::OK, "ok\n"),
        (READY_PATH | READY_WEBHOOKS_PATH, &Method::GET | &Method::HEAD) => readiness(&Readiness {
            ready: false,
            database: format!("not ready: {reason}"),
            queue: "not started".to_owned(),
            worker: "not started".to_owned(),
        }),
        (WEBHOOK_PATH | STATUS_PATH, &Method::POST) => {
            tracing::warn!(
                path = req.uri().path(),
                waiting_for = %reason,
                "❌ Webhook answered 503: the server is still starting (a dependency is unreachable); nothing was recorded"
            );
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "service unavailable: starting, the database is not reachable yet\n",
            )
        }
        (METRICS_PATH, &Method::GET | &Method::HEAD) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable: starting\n",
        ),
        (path, _) => unrouted(path).1,
    }
}

/// The answer to a request no route takes, and the route label it is counted under: 405 with
/// `Allow` on a known path (under that path's route, so a webhook set to GET in the Console
/// shows as `route="webhook",status="405"`), else 404 under `"other"`.
fn unrouted(path: &str) -> (&'static str, Response<Body>) {
    match path {
        WEBHOOK_PATH => ("webhook", not_allowed("POST")),
        STATUS_PATH => ("status", not_allowed("POST")),
        HEALTH_PATH => ("healthz", not_allowed("GET, HEAD")),
        READY_PATH | READY_WEBHOOKS_PATH => ("readyz", not_allowed("GET, HEAD")),
        METRICS_PATH => ("metrics", not_allowed("GET, HEAD")),
        _ => ("other", text(StatusCode::NOT_FOUND, "not found\n")),
    }
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// Why a request body could not be read.
enum BodyError {
    TooLarge,
    Timeout,
    Broken,
}

async fn read_body(
    req: Request<Incoming>,
) -> Result<(http::request::Parts, hyper::body::Bytes), BodyError> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok((parts, collected.to_bytes())),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Broken),
    }
}

/// The answer to a body that could not be read, with its log line (`route` names the endpoint).
fn body_error(route: &'static str, e: BodyError) -> Response<Body> {
    match e {
        BodyError::TooLarge => {
            tracing::warn!(
                route,
                "❌ Webhook refused with 413: the body is larger than 64 KiB (Twilio's are a few KiB: the request did not come from Twilio as sent)"
            );
            text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body is larger than 64 KiB\n",
            )
        }
        BodyError::Timeout => {
            tracing::warn!(
                route,
                "❌ Webhook refused with 408: the body did not arrive within {} s of its headers (a slow or stalled client)",
                BODY_TIMEOUT.as_secs()
            );
            text(StatusCode::REQUEST_TIMEOUT, "request body too slow\n")
        }
        BodyError::Broken => {
            tracing::warn!(
                route,
                "❌ Webhook refused with 400: the body could not be read (the client closed the connection mid-body, or sent broken chunked encoding)"
            );
            text(StatusCode::BAD_REQUEST, "could not read request body\n")
        }
    }
}

fn path_and_query(parts: &http::request::Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned())
}

/// What [`authenticate`] decided.
enum Verified {
    /// The signature is valid. A form webhook carries the parameters it was checked over, so
    /// the body is decoded once for the check and the parser.
    Pass(Option<FormBody>),
    /// The rejection to send.
    Refuse(Response<Body>),
}

/// Verifies the signature.
fn authenticate(
    app: &App,
    public: &verify::PublicUrl,
    parts: &http::request::Parts,
    body: &[u8],
    route: &'static str,
) -> Verified {
    let refuse = |body: &'static str| {
        app.metrics.signature_failure();
        Verified::Refuse(text(StatusCode::FORBIDDEN, body))
    };
    // DESIGN: without an auth token every webhook is refused, shared-key ones included.
    let Some(token_validator) = &app.validator else {
        tracing::warn!(
            route,
            "❌ Webhook refused with 403: TWILIO_AUTH_TOKEN is not set, so no signature can be verified; set it to your Auth Token from the Twilio Console"
        );
        return refuse("forbidden: signature not verified\n");
    };
    let signed = match SignatureSettings::from_headers(&parts.headers) {
        Ok(signed) => signed,
        Err(error) => {
            tracing::warn!(
                route,
                %error,
                "❌ Webhook refused with 403: X-Twilio-Webhooks-Signature-Settings names a signature this server cannot check"
            );
            return refuse("forbidden: unsupported signature algorithm\n");
        }
    };
    let (validator, key) = if signed.algorithm == Algorithm::Sha256 {
        let Some(validator) = &app.shared_key_validator else {
            tracing::warn!(
                route,
                key_id = shown_key_id(signed.key_id),
                "❌ Webhook refused with 403: it is signed with a shared key (HMAC_SHA256, from a Twilio Webhook Rule) and TWILIO_WEBHOOK_SHARED_KEY is not set; set it to that key's secret"
            );
            return refuse("forbidden: signature not verified\n");
        };
        let placeholder = app.shared_key_is_placeholder;
        (validator, KeyUsed::SharedKey { placeholder })
    } else {
        let placeholder = app.token_is_placeholder;
        let secondary = app.secondary_validator.is_some();
        (
            token_validator,
            KeyUsed::AuthToken {
                placeholder,
                secondary,
            },
        )
    };
    let pq = path_and_query(parts);
    let Some(url) = public.resolve(&parts.headers, &pq) else {
        tracing::warn!(
            route,
            "❌ Webhook refused with 403: WEBHOOK_URL is not set and the request has no usable Host header to rebuild it from"
        );
        return refuse("forbidden: signature not verified\n");
    };
    // Twilio signed the URL it requested: with its trailing slash, or without, as the request.
    let slashed = verify::slash_as_requested(&url, &pq);
    let check = |validator: &twilio_signature::Validator| {
        let checked = verify::check_and_decode(validator, &url, &parts.headers, body);
        match (&checked, &slashed) {
            (Err(SignatureError::Mismatch), Some(slashed)) => {
                verify::check_and_decode(validator, slashed, &parts.headers, body).or(checked)
            }
            _ => checked,
        }
    };
    let checked = check(validator);
    // A placeholder is public (it is in .env.example and in every tutorial), so a signature made
    // with it proves nothing about the sender: refused, as the start-up finding announced.
    if checked.is_ok()
        && let Some(hint) = verify::placeholder_hint(key)
    {
        tracing::warn!(
            route,
            setting = key.setting(),
            hint,
            "❌ Webhook refused with 403: signed with a placeholder secret, which anyone can know, so it proves nothing"
        );
        return refuse("forbidden: signature not verified\n");
    }
    // During a token rotation a signature that does not match the primary token may match
    // the secondary one (Twilio signs with whichever is primary on its side).
    if let (Err(SignatureError::Mismatch), KeyUsed::AuthToken { .. }, Some(secondary)) =
        (&checked, key, &app.secondary_validator)
        && let Ok(form) = check(secondary)
    {
        app.secondary_token_used(route);
        return Verified::Pass(form);
    }
    match checked {
        Ok(form) => Verified::Pass(form),
        Err(error) => {
            let d = verify::diagnose(&error, &url, &parts.headers, &pq, key);
            tracing::warn!(
                route,
                %error,
                algorithm = validator.algorithm().name(),
                key_id = shown_key_id(signed.key_id),
                checked_url = %d.checked_url,
                request_suggests = d.request_suggests.as_deref().unwrap_or("-"),
                hint = d.hint,
                "❌ Webhook refused with 403: invalid X-Twilio-Signature"
            );
            refuse("forbidden: invalid signature\n")
        }
    }
}

/// The `key=` of a settings header for the log: it comes from the request, so at most 64
/// characters of it; `-` when absent.
fn shown_key_id(key_id: Option<&str>) -> &str {
    match key_id {
        None => "-",
        Some(k) => k.char_indices().nth(64).map_or(k, |(i, _)| &k[..i]),
    }
}

/// Decodes the parameters of a form body (reusing the signature check's decoding when there is
/// one), or of a JSON object whose values are strings/numbers.
fn params_of(
    headers: &HeaderMap,
    body: &[u8],
    form: Option<&FormBody>,
) -> Result<Vec<(String, String)>, String> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if !is_json {
        if std::str::from_utf8(body).is_err() {
            return Err("body is not valid UTF-8".into());
        }
        return Ok(form.map_or_else(|| parse_form(body), form_pairs));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("JSON body is not an object".into());
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

fn idempotency_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get("i-twilio-idempotency-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn bad_request(route: &'static str, reason: &str) -> Response<Body> {
    tracing::warn!(route, reason, "❌ Webhook refused with 400: malformed body");
    text(StatusCode::BAD_REQUEST, format!("bad request: {reason}\n"))
}

async fn inbound(app: &App, req: Request<Incoming>, started: Instant) -> Response<Body> {
    let (parts, body) = match read_body(req).await {
        Ok(x) => x,
        Err(e) => return body_error("webhook", e),
    };
    let form = match authenticate(app, &app.webhook_url, &parts, &body, "webhook") {
        Verified::Pass(form) => form,
        Verified::Refuse(res) => return res,
    };
    let params = match params_of(&parts.headers, &body, form.as_ref()) {
        Ok(p) => p,
        Err(reason) => return bad_request("webhook", &reason),
    };
    // A status callback sent here by a status callback URL set to WEBHOOK_URL is recorded as
    // what it is, not answered as a message.
    if StatusCallback::is_status_callback(&params) {
        let cb = match StatusCallback::from_params(params) {
            Ok(cb) => cb,
            Err(e) => {
                let reason = format!(
                    "a status callback (it has MessageStatus or SmsStatus) sent to the inbound URL, and malformed: {e}"
                );
                return bad_request("webhook", &reason);
            }
        };
        app.status_callback_at_webhook_url(&cb);
        return record_status(app, &cb, &parts).await;
    }
    let msg = match InboundMessage::from_params(params) {
        Ok(m) => m,
        Err(e) => return bad_request("webhook", &e.to_string()),
    };
    record_message(app, &msg, &parts, started, "webhook").await
}

/// Records a verified inbound message and acknowledges it with empty TwiML.
async fn record_message(
    app: &App,
    msg: &InboundMessage,
    parts: &http::request::Parts,
    started: Instant,
    route: &'static str,
) -> Response<Body> {
    match app.record(msg, idempotency_token(&parts.headers)).await {
        Ok(new) => {
            if !new {
                app.metrics.duplicate();
            }
            tracing::info!(
                message_sid = %msg.message_sid,
                duplicate = !new,
                kind = msg.kind(),
                latency_ms = crate::metrics::latency_ms(started.elapsed()),
                "✅ Webhook received and acknowledged to Twilio"
            );
            twiml()
        }
        Err(e) if e.is_unavailable() => {
            tracing::error!(
                message_sid = %msg.message_sid,
                error = %e,
                "❌ Webhook answered 503: the database is unavailable, Twilio may retry; nothing was acknowledged"
            );
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable, retry later\n",
            )
        }
        Err(e) if e.is_invalid_input() => bad_request(route, &e.to_string()),
        Err(e) => {
            tracing::error!(message_sid = %msg.message_sid, error = %e, "❌ Webhook answered 500: could not record the message");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not record the message\n",
            )
        }
    }
}

async fn status(app: &App, req: Request<Incoming>, started: Instant) -> Response<Body> {
    let (parts, body) = match read_body(req).await {
        Ok(x) => x,
        Err(e) => return body_error("status", e),
    };
    let form = match authenticate(app, &app.status_url, &parts, &body, "status") {
        Verified::Pass(form) => form,
        Verified::Refuse(res) => return res,
    };
    let params = match params_of(&parts.headers, &body, form.as_ref()) {
        Ok(p) => p,
        Err(reason) => return bad_request("status", &reason),
    };
    // An inbound message sent here (the Console's "when a message comes in" and "status
    // callback" URLs swapped) is recorded and answered as the message it is: Twilio will not
    // deliver it anywhere else. Only on positive evidence: an inbound message's SmsStatus.
    if !StatusCallback::is_status_callback(&params) && InboundMessage::is_inbound(&params) {
        let msg = match InboundMessage::from_params(params) {
            Ok(m) => m,
            Err(e) => return bad_request("status", &e.to_string()),
        };
        app.message_at_status_url();
        return record_message(app, &msg, &parts, started, "status").await;
    }
    let cb = match StatusCallback::from_params(params) {
        Ok(cb) => cb,
        Err(e) => return bad_request("status", &e.to_string()),
    };
    record_status(app, &cb, &parts).await
}

/// Records a verified status callback and answers it.
async fn record_status(
    app: &App,
    cb: &StatusCallback,
    parts: &http::request::Parts,
) -> Response<Body> {
    let token = idempotency_token(&parts.headers);
    let marker = parts.uri.query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == CALLBACK_MARKER_PARAM)
            .map(|(_, v)| v.into_owned())
    });
    match app.record_status(cb, token, marker).await {
        Ok(()) => text(StatusCode::OK, ""),
        Err(e) if e.is_unavailable() => {
            tracing::error!(message_sid = %cb.message_sid, error = %e, "❌ Status callback answered 503: the database is unavailable");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable, retry later\n",
            )
        }
        Err(e) => {
            tracing::error!(message_sid = %cb.message_sid, error = %e, "❌ Status callback answered 500");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not record the status\n",
            )
        }
    }
}

async fn ready(app: &App) -> Response<Body> {
    readiness(&app.readiness().await)
}

/// `/readyz`'s answer: the report as JSON, 200 when ready, else 503.
fn readiness(report: &Readiness) -> Response<Body> {
    let body = serde_json::to_string(report).unwrap_or_default();
    let code = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond(code, "application/json", body)
}

/// Whether `Accept` prefers OpenMetrics: listed with a quality above 0 (media types compared
/// without case) and not below `text/plain`'s.
fn wants_openmetrics(accept: &[&str]) -> bool {
    let quality = |wanted: &str| -> Option<f32> {
        accept
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|item| {
                let mut parts = item.split(';');
                let media = parts.next()?.trim();
                if !media.eq_ignore_ascii_case(wanted) {
                    return None;
                }
                let q = parts
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                Some(q)
            })
            .reduce(f32::max)
    };
    match quality("application/openmetrics-text") {
        Some(q) if q > 0.0 => quality("text/plain").is_none_or(|plain| q >= plain),
        _ => false,
    }
}

/// OpenMetrics text (what prometheus-client writes) when `Accept` asks for it, as Prometheus
/// does; anything else (curl, a browser, an older scraper or parser) gets Prometheus text
/// format 0.0.4 as `text/plain`: the same samples, counter families named with `_total`, no
/// `# EOF`.
async fn metrics(app: &App, req: &Request<Incoming>) -> Response<Body> {
    if let Ok(depth) = app.queue.depth().await {
        app.metrics.set_queue_depth(depth);
    }
    let accept: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if wants_openmetrics(&accept) {
        let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        respond(StatusCode::OK, content_type, app.metrics.render())
    } else {
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        respond(StatusCode::OK, content_type, app.metrics.render_text_004())
    }
}

#[cfg(test)]
mod tests {
    use super::shown_key_id;

    #[test]
    fn a_logged_key_id_is_capped_at_64_characters() {
        assert_eq!(shown_key_id(None), "-");
        assert_eq!(shown_key_id(Some("KS123")), "KS123");
        let long = "é".repeat(100);
        assert_eq!(shown_key_id(Some(&long)).chars().count(), 64);
    }
}
