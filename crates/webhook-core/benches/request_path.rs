//! Instructions per request of the inbound webhook's CPU work up to the store: resolve the
//! public URL, check the signature, decode and parse the form into an `InboundMessage`, build
//! the row (params JSON included), on real bodies from `fixtures/`.
//!
//! Counted with `valgrind --tool=callgrind`, which gives the same number on a busy machine as on
//! a quiet one (wall-clock timings on the shared 2-core box vary by 2×). The bench runs itself
//! under callgrind for 100 and for 1,100 requests and reports the difference / 1,000, so start-up
//! and set-up cancel out.
//!
//! ```text
//! cargo bench -p webhook-core --bench request_path                    # every mode, 3 fixtures
//! cargo bench -p webhook-core --bench request_path -- --fixture inbound-whatsapp-long.form
//! cargo test  -p webhook-core --bench request_path                    # both modes agree (no valgrind)
//! ```
//!
//! Modes (call sequences of `routes.rs`, which this file mirrors):
//!
//! - `routes`: the sequence before `routes.rs` decoded once, kept as the baseline:
//!   `verify::check` on the raw body, then `parse_form` decodes it again.
//! - `decode-once`: what `routes.rs` does now: `verify::check_and_decode` returns the form the
//!   signature was checked over, and `form_pairs` turns it into the parameters.
//!
//! Callgrind runs the portable SHA-1 code (it does not emulate the SHA extensions), so the
//! signature's share is larger here than on hardware with SHA-NI.

use http::{HeaderMap, HeaderValue, Uri, header};
use std::hint::black_box;
use std::process::Command;
use twilio_signature::Validator;
use webhook_core::inbound::{InboundMessage, form_pairs, parse_form};
use webhook_core::verify::{self, PublicUrl};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const URL: &str = "https://bench.example.com/api/v1/whatsapp/webhook";
const MODES: [&str; 2] = ["routes", "decode-once"];
const FIXTURES: [&str; 3] = [
    "inbound-whatsapp-text.form",
    "inbound-whatsapp-media.form",
    "inbound-whatsapp-long.form",
];
/// Requests of the short and the long callgrind run; their difference is what is reported.
const RUNS: [u64; 2] = [100, 1_100];

/// A signed webhook request as the route sees it after reading the body.
struct Request {
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn request(fixture: &str) -> Request {
    let path = format!("{}/../../fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let signature = Validator::new(TOKEN).sign(URL, &parse_form(&body));
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("bench.example.com"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        verify::SIGNATURE_HEADER,
        HeaderValue::from_str(&signature).expect("base64 is a valid header value"),
    );
    headers.insert(
        "i-twilio-idempotency-token",
        HeaderValue::from_static("0b3f1c2d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
    );
    Request {
        uri: Uri::from_static("/api/v1/whatsapp/webhook"),
        headers,
        body,
    }
}

fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| uri.path().to_owned())
}

fn idempotency_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get("i-twilio-idempotency-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"))
}

/// `routes.rs` today: check the raw body, then decode it again to parse it.
fn routes(validator: &Validator, public: &PublicUrl, req: &Request) -> store::NewInbound {
    let pq = path_and_query(&req.uri);
    let url = public.resolve(&req.headers, &pq).expect("configured URL");
    verify::check(validator, &url, &req.headers, &req.body).expect("valid signature");
    assert!(!is_json(&req.headers) && std::str::from_utf8(&req.body).is_ok());
    let msg = InboundMessage::from_params(parse_form(&req.body)).expect("valid webhook");
    msg.to_row(idempotency_token(&req.headers))
}

/// One decoding: the form the signature was checked over becomes the parameters.
fn decode_once(validator: &Validator, public: &PublicUrl, req: &Request) -> store::NewInbound {
    let pq = path_and_query(&req.uri);
    let url = public.resolve(&req.headers, &pq).expect("configured URL");
    let form = verify::check_and_decode(validator, &url, &req.headers, &req.body)
        .expect("valid signature")
        .expect("a form webhook");
    assert!(!is_json(&req.headers) && std::str::from_utf8(&req.body).is_ok());
    let msg = InboundMessage::from_params(form_pairs(&form)).expect("valid webhook");
    msg.to_row(idempotency_token(&req.headers))
}

fn run(mode: &str, fixture: &str, n: u64) {
    let validator = Validator::new(TOKEN);
    let public = PublicUrl::new(Some(URL.to_owned()));
    let req = request(fixture);
    let path = match mode {
        "routes" => routes,
        "decode-once" => decode_once,
        other => panic!("unknown mode {other:?} (modes: {MODES:?})"),
    };
    for _ in 0..n {
        black_box(path(black_box(&validator), &public, black_box(&req)));
    }
}

/// Instructions callgrind counts for `n` requests (the whole process).
fn instructions(mode: &str, fixture: &str, n: u64) -> u64 {
    let exe = std::env::current_exe().expect("own executable");
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(&exe)
        .args(["--run", mode, fixture, &n.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("could not run valgrind (apt-get install valgrind): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    stderr
        .lines()
        .find_map(|l| {
            l.split_once("Collected : ")
                .map(|(_, n)| n.trim().to_owned())
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no instruction count in valgrind's output:\n{stderr}"))
}

fn report(fixtures: &[String]) {
    println!(
        "instructions per request (callgrind, {} - {} requests)",
        RUNS[1], RUNS[0]
    );
    for fixture in fixtures {
        let per_request: Vec<u64> = MODES
            .iter()
            .map(|mode| {
                let [short, long] = RUNS.map(|n| instructions(mode, fixture, n));
                (long - short) / (RUNS[1] - RUNS[0])
            })
            .collect();
        for (mode, count) in MODES.iter().zip(&per_request) {
            println!("  {fixture:<30} {mode:<12} {count:>8}");
        }
        println!(
            "  {fixture:<30} decode-once / routes = {:.2}",
            per_request[1] as f64 / per_request[0] as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["--run", mode, fixture, n] => run(mode, fixture, n.parse().expect("a request count")),
        [.., "--bench"] | ["--bench", ..] => {
            let fixtures: Vec<String> = match args.iter().position(|a| a == "--fixture") {
                Some(i) => args.get(i + 1).cloned().into_iter().collect(),
                None => FIXTURES.map(str::to_owned).to_vec(),
            };
            report(&fixtures);
        }
        // `cargo test --benches`: the two modes must build the same row for every fixture.
        _ => {
            let validator = Validator::new(TOKEN);
            let public = PublicUrl::new(Some(URL.to_owned()));
            for fixture in FIXTURES {
                let req = request(fixture);
                assert_eq!(
                    routes(&validator, &public, &req),
                    decode_once(&validator, &public, &req),
                    "{fixture}"
                );
            }
        }
    }
}
