//! Cost of validation relative to the floor: one raw HMAC-SHA1 + base64 over the same
//! string-to-sign (keying included, as every SDK does per request), on a 16-parameter WhatsApp
//! inbound payload. The budget: valid ≤ 2x that baseline, invalid ≤ 3x.
//!
//! Run: `cargo bench -p twilio-signature --bench validate`; ratios are in the crate README
//! (`benches/ratio.rs` measures the same paths interleaved, which resists a noisy machine).

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use twilio_signature::{Validator, string_to_sign};

#[path = "common/payload.rs"]
mod payload;
use payload::{PARAMS, TOKEN, URL, form_body};

fn bench(c: &mut Criterion) {
    let validator = Validator::new(TOKEN);
    let valid = validator.sign(URL, &PARAMS);
    let invalid = Validator::new("another-token").sign(URL, &PARAMS);
    let to_sign = string_to_sign(URL, &PARAMS);
    let body = form_body();
    assert_eq!(
        validator.validate_form_body(URL, body.as_bytes(), &valid),
        Ok(())
    );
    assert!(validator.validate(URL, &PARAMS, &invalid).is_err());

    let mut group = c.benchmark_group("whatsapp_inbound_16_params");
    group.bench_function("baseline_raw_hmac_sha1_base64", |b| {
        b.iter(|| {
            let mut mac =
                <Hmac<Sha1> as KeyInit>::new_from_slice(black_box(TOKEN).as_bytes()).unwrap();
            mac.update(black_box(to_sign.as_bytes()));
            STANDARD.encode(mac.finalize().into_bytes())
        })
    });
    group.bench_function("validate_valid", |b| {
        b.iter(|| validator.validate(black_box(URL), black_box(&PARAMS), black_box(&valid)))
    });
    group.bench_function("validate_invalid", |b| {
        b.iter(|| validator.validate(black_box(URL), black_box(&PARAMS), black_box(&invalid)))
    });
    group.bench_function("validate_form_body_valid", |b| {
        b.iter(|| {
            validator.validate_form_body(
                black_box(URL),
                black_box(body.as_bytes()),
                black_box(&valid),
            )
        })
    });
    group.bench_function("validate_form_body_invalid", |b| {
        b.iter(|| {
            validator.validate_form_body(
                black_box(URL),
                black_box(body.as_bytes()),
                black_box(&invalid),
            )
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(60);
    targets = bench
}
criterion_main!(benches);
