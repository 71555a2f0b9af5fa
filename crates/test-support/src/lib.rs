//! test-support: work in progress.
