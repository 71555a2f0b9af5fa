//! The subcommands other than `check`: each builds a [`Report`](crate::report::Report) the
//! printer renders like any other.
//!
//! - `simulate` — POST a signed sample inbound message and explain the answer.
//! - `send_test` — send a real WhatsApp message through Twilio.

pub(crate) mod send_test;
pub(crate) mod simulate;
