//! Integration tests for the config crate, through its public API only (one test binary).

mod env_example;
mod files;
