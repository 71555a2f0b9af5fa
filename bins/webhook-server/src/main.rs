//! webhook-server

fn main() {}
