//! migrations: work in progress.
