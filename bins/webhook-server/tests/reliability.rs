//! Reliability proofs against the real `webhook-server` binary: each test starts the process
//! with its own environment (never this process's), talks to it over TCP, and checks what the
//! server promises — under `kill -9`, database and Redis outages, two instances, a failing
//! Twilio, and hostile input. PostgreSQL and Redis outages are made with a TCP proxy in the
//! test, so the machine's shared services are never stopped.
//!
//! Tests that need PostgreSQL or Redis skip locally when they are missing and fail with
//! `CI=true` (`test_support::services::require`).

#[path = "reliability/bad_input.rs"]
mod bad_input;
#[path = "reliability/crash.rs"]
mod crash;
#[path = "reliability/postgres_outage.rs"]
mod postgres_outage;
#[path = "reliability/redis_outage.rs"]
mod redis_outage;
#[path = "reliability/secrets.rs"]
mod secrets;
#[path = "reliability/signatures.rs"]
mod signatures;
#[path = "reliability/support.rs"]
mod support;
#[path = "reliability/twilio_faults.rs"]
mod twilio_faults;
#[path = "reliability/two_instances.rs"]
mod two_instances;
