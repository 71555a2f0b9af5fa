//! twilio-client: work in progress.
