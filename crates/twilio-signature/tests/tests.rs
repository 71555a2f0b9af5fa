//! Integration tests of twilio-signature, one binary: public and SDK vectors, the repository's
//! fixtures, our edge-case table run through Twilio's SDKs, error behaviour, property tests and
//! (with the `http` feature) the `http::Request` helpers.

mod errors;
#[cfg(feature = "http")]
mod http;
mod properties;
mod vectors;
