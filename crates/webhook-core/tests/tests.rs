//! Integration tests of the webhook pipeline: one test binary, one module per concern.

mod fixtures;
mod http;
mod parser_props;
mod pipeline;
mod support;
