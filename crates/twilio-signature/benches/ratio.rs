//! Noise-resistant ratios for the README: the same payload as `validate.rs`, but the baseline
//! and each validation path are measured in interleaved rounds of 1,000 calls and the fastest
//! round of each is kept, so that other processes on a shared machine slow all of them alike.
//!
//! Run: `cargo bench -p twilio-signature --bench ratio`.

use std::hint::black_box;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use twilio_signature::{Validator, string_to_sign};

#[path = "common/payload.rs"]
mod payload;
use payload::{PARAMS, TOKEN, URL, form_body};

/// A named path to measure.
type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);

const ROUNDS: usize = 400;
const CALLS: u32 = 1_000;

fn round(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..CALLS {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(CALLS)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too, so do nothing without it.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let validator = Validator::new(TOKEN);
    let valid = validator.sign(URL, &PARAMS);
    let invalid = Validator::new("another-token").sign(URL, &PARAMS);
    let to_sign = string_to_sign(URL, &PARAMS);
    let body = form_body();
    let mut cases: Vec<Case> = vec![
        (
            "baseline: raw HMAC-SHA1 + base64",
            Box::new(|| {
                let mut mac =
                    <Hmac<Sha1> as KeyInit>::new_from_slice(black_box(TOKEN).as_bytes()).unwrap();
                mac.update(black_box(to_sign.as_bytes()));
                black_box(STANDARD.encode(mac.finalize().into_bytes()));
            }),
        ),
        (
            "validate, valid",
            Box::new(|| {
                let _ = black_box(validator.validate(
                    black_box(URL),
                    black_box(&PARAMS),
                    black_box(&valid),
                ));
            }),
        ),
        (
            "validate, invalid",
            Box::new(|| {
                let _ = black_box(validator.validate(
                    black_box(URL),
                    black_box(&PARAMS),
                    black_box(&invalid),
                ));
            }),
        ),
        (
            "validate_form_body, valid",
            Box::new(|| {
                let _ = black_box(validator.validate_form_body(
                    black_box(URL),
                    black_box(body.as_bytes()),
                    black_box(&valid),
                ));
            }),
        ),
        (
            "validate_form_body, invalid",
            Box::new(|| {
                let _ = black_box(validator.validate_form_body(
                    black_box(URL),
                    black_box(body.as_bytes()),
                    black_box(&invalid),
                ));
            }),
        ),
    ];
    let mut best = vec![f64::MAX; cases.len()];
    for _ in 0..ROUNDS {
        for ((_, f), best) in cases.iter_mut().zip(&mut best) {
            *best = best.min(round(f.as_mut()));
        }
    }
    println!("| path | ns/call (best of {ROUNDS} rounds) | × baseline |");
    println!("|---|---|---|");
    for ((name, _), best_ns) in cases.iter().zip(&best) {
        println!("| {name} | {best_ns:.0} | {:.2} |", best_ns / best[0]);
    }
}
