//! Prints `.env.example` from the key table: `cargo run -p config --example env_example > .env.example`.
//! With `--markdown`, prints the configuration table for the README instead.

fn main() {
    if std::env::args().any(|a| a == "--markdown") {
        print!("{}", config::markdown_table());
    } else {
        print!("{}", config::env_example());
    }
}
