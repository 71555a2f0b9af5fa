//! config: work in progress.
