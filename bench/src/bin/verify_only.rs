//! `bench-verify-only`: the webhook path with the store bypassed (configuration (d)).
//!
//! Does everything `webhook_core::routes` does for `POST /api/v1/whatsapp/webhook` up to the
//! store, with the same library calls: body read with the production limits, the public URL from
//! `WEBHOOK_URL` ([`PublicUrl`]), [`verify::check_and_decode`] with a [`Validator`] for
//! `TWILIO_AUTH_TOKEN` (the form is decoded once, for the check and the parser),
//! [`InboundMessage::from_params`], the row's params JSON, the acknowledgement log line
//! (filtered by `RUST_LOG` like the server) and the request metrics.
//! It then answers the same empty TwiML. Nothing is recorded, so it measures what signature and
//! parsing cost on top of the transport floor (`bench-hello`).
//!
//! Usage: `bench-verify-only [ADDR]` with `TWILIO_AUTH_TOKEN` and `WEBHOOK_URL` in the environment.

use anyhow::Context;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::{Bytes, Incoming};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;
use twilio_signature::Validator;
use webhook_core::inbound::{InboundMessage, form_pairs, parse_form};
use webhook_core::metrics::Metrics;
use webhook_core::routes::{EMPTY_TWIML, WEBHOOK_PATH};
use webhook_core::verify::{self, PublicUrl};

/// What every request needs, built once.
struct State {
    validator: Validator,
    public: PublicUrl,
    metrics: Metrics,
}

fn main() -> ExitCode {
    bench::init_tracing();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("❌ {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let token = std::env::var("TWILIO_AUTH_TOKEN").context("TWILIO_AUTH_TOKEN is not set")?;
    let url = std::env::var("WEBHOOK_URL").context("WEBHOOK_URL is not set")?;
    let state = Arc::new(State {
        validator: Validator::new(&token),
        public: PublicUrl::new(Some(url)),
        metrics: Metrics::new(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let addr = bench::listen_addr();
        let listener = webhook_core::server::listen(&addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        tracing::info!("bench-verify-only listening on http://{addr}");
        let handler = move |req| handle(state.clone(), req);
        bench::serve(listener, handler, bench::shutdown_signal()).await;
        Ok(())
    })
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> Response<bench::Body> {
    let mut res = Response::new(bench::Body::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<bench::Body> {
    let started = Instant::now();
    let res = if req.uri().path() == WEBHOOK_PATH && req.method() == Method::POST {
        inbound(&state, req, started).await
    } else {
        respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        )
    };
    state.metrics.observe_request(
        "webhook",
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

async fn inbound(state: &State, req: Request<Incoming>, started: Instant) -> Response<bench::Body> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let Some((parts, body)) = bench::read_body(req).await else {
        return respond(
            StatusCode::BAD_REQUEST,
            TEXT,
            "could not read request body\n",
        );
    };
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    let Some(url) = state.public.resolve(&parts.headers, &pq) else {
        return respond(
            StatusCode::FORBIDDEN,
            TEXT,
            "forbidden: signature not verified\n",
        );
    };
    let form = match verify::check_and_decode(&state.validator, &url, &parts.headers, &body) {
        Ok(form) => form,
        Err(error) => {
            state.metrics.signature_failure();
            tracing::warn!(%error, "❌ Webhook refused with 403: invalid X-Twilio-Signature");
            return respond(
                StatusCode::FORBIDDEN,
                TEXT,
                "forbidden: invalid signature\n",
            );
        }
    };
    if std::str::from_utf8(&body).is_err() {
        return respond(
            StatusCode::BAD_REQUEST,
            TEXT,
            "bad request: body is not valid UTF-8\n",
        );
    }
    let params = form.as_ref().map_or_else(|| parse_form(&body), form_pairs);
    let msg = match InboundMessage::from_params(params) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(reason = %e, "❌ Webhook refused with 400: malformed body");
            return respond(
                StatusCode::BAD_REQUEST,
                TEXT,
                "bad request: malformed body\n",
            );
        }
    };
    // The production path builds the row's params JSON before handing it to the store.
    std::hint::black_box(msg.params_json());
    tracing::info!(
        message_sid = %msg.message_sid,
        duplicate = false,
        kind = msg.kind(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "✅ Webhook received and acknowledged to Twilio"
    );
    respond(StatusCode::OK, "text/xml; charset=utf-8", EMPTY_TWIML)
}
