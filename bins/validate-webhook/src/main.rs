//! validate-webhook

fn main() {}
