//! Integration tests of the store against real PostgreSQL, Redis and SQLite.
//! One test binary; each module covers one promise the server depends on.

mod support;

mod claims;
mod connect;
mod inbound;
mod outbound;
mod redis_queue;
mod status;
