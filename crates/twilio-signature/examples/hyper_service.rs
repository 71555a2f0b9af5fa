//! A hyper 1 service validating Twilio webhooks (work in progress).

fn main() {}
