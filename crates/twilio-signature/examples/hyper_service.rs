//! A plain hyper 1 service that refuses any webhook not signed by Twilio.
//!
//! ```text
//! TWILIO_AUTH_TOKEN=… WEBHOOK_URL=https://<your-ngrok-host>/api/v1/whatsapp/webhook \
//!     cargo run -p twilio-signature --features http --example hyper_service
//! ```
//!
//! It shows the three things that matter: the validator is built once from the auth token, the
//! body is read with a size cap before validation, and the URL passed to the validator is the
//! public one configured in Twilio (`WEBHOOK_URL`), never one rebuilt from the `Host` header that
//! ngrok or a load balancer rewrites. Valid requests get 200 with empty TwiML, others 403.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use twilio_signature::Validator;

/// Twilio's webhook bodies are small; anything bigger is not from Twilio.
const BODY_LIMIT: usize = 64 * 1024;

struct App {
    validator: Validator,
    webhook_url: String,
}

fn respond(status: StatusCode, content_type: &str, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST {
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "POST only\n",
        ));
    }
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "body too large\n",
            ));
        }
    };
    match app
        .validator
        .validate_http_parts(&app.webhook_url, &parts, &body)
    {
        Ok(()) => {
            eprintln!("✅ signed by Twilio: {} bytes", body.len());
            Ok(respond(
                StatusCode::OK,
                "text/xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
            ))
        }
        Err(err) => {
            // The error says why (missing header, wrong URL or token, body hash) and never
            // contains the expected signature, so it is safe to log.
            eprintln!("❌ refused: {err}");
            Ok(respond(
                StatusCode::FORBIDDEN,
                "text/plain",
                "invalid signature\n",
            ))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("TWILIO_AUTH_TOKEN").map_err(|_| "set TWILIO_AUTH_TOKEN")?;
    let webhook_url = std::env::var("WEBHOOK_URL")
        .map_err(|_| "set WEBHOOK_URL to the URL configured in Twilio")?;
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let app = Arc::new(App {
        validator: Validator::new(&token),
        webhook_url,
    });

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    eprintln!(
        "listening on http://{}, validating against {}",
        listener.local_addr()?,
        app.webhook_url
    );
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&app), request));
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {err}");
            }
        });
    }
}
