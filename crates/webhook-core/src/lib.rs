//! webhook-core: work in progress.
