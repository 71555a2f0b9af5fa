# Convenience recipes. Every recipe is also a plain command shown in README.md.

# Run the server on the embedded default (SQLite, no Redis, dry-run replies without a sender)
run:
    cargo run --release -p webhook-server

# Run every test (PostgreSQL and Redis tests skip locally when those are down; CI=true makes them fail)
test:
    cargo test --workspace

# Formatting and lints, as CI runs them
check:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: signature crate, store throughput, and the HTTP load script
bench:
    cargo bench -p twilio-signature
    cargo bench -p store
    bash bench/load.sh

# Two builds of webhook-server, alternating load runs (CONFIGS=pg by default): judge a change
bench-ab A B:
    bash bench/ab.sh {{A}} {{B}}

# Diagnose the setup (add --online to ask Twilio too)
validate *ARGS:
    cargo run -q --release -p validate-webhook -- {{ARGS}}
