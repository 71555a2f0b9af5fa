//! `bench-hello`: the transport floor of the load benchmark (configuration (a)).
//!
//! A bare hyper server with the production server's runtime and connection settings
//! (see [`bench::serve`]). It reads the request body like the webhook route does, then answers
//! every request with `200 Hello, World!`: no routing, signature, parsing, metrics or store.
//!
//! Usage: `bench-hello [ADDR]` (default `HOST:PORT`, else `127.0.0.1:5000`).

use anyhow::Context;
use http::{HeaderValue, Response, header};
use hyper::body::Bytes;
use std::process::ExitCode;

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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let addr = bench::listen_addr();
        let listener = webhook_core::server::listen(&addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        tracing::info!("bench-hello listening on http://{addr}");
        bench::serve(listener, hello, bench::shutdown_signal()).await;
        Ok(())
    })
}

async fn hello(req: http::Request<hyper::body::Incoming>) -> Response<bench::Body> {
    let _ = bench::read_body(req).await;
    let mut res = Response::new(bench::Body::new(Bytes::from_static(b"Hello, World!")));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}
