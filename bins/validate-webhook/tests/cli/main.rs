//! Integration tests: run the built `validate-webhook` binary against temporary `.env` files,
//! fake ngrok / Twilio / Redis servers and a tiny signature-checking webhook server, and assert
//! the exact lines a user sees. Nothing here leaves 127.0.0.1.

mod support;

mod commands;
mod config;
mod local;
mod ngrok;
mod online;
mod output;
