//! Criterion benchmark of validation (work in progress).

fn main() {}
