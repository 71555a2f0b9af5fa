//! twilio-signature: work in progress.
