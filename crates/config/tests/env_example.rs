//! `.env.example` at the workspace root lists exactly the known keys, each with a comment, and
//! a copy of it loads in development.

use std::path::PathBuf;

use config::{KEYS, LoadOptions, Status, env_example, load};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_example() -> String {
    let path = workspace_root().join(".env.example");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn lists_exactly_the_known_keys_each_with_a_comment_line() {
    let text = read_example();
    let lines: Vec<&str> = text.lines().collect();
    let mut listed = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, _) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not KEY=value: {line}", i + 1));
        let comment = i.checked_sub(1).map(|j| lines[j].trim_start());
        assert!(
            comment.is_some_and(|c| c.starts_with("# ") && c.len() > 2),
            "{key} (line {}) has no comment line above it",
            i + 1
        );
        listed.push(key.to_owned());
    }
    let known: Vec<String> = KEYS.iter().map(|k| k.name.to_owned()).collect();
    let missing: Vec<&String> = known.iter().filter(|k| !listed.contains(k)).collect();
    let unknown: Vec<&String> = listed.iter().filter(|k| !known.contains(k)).collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    assert!(
        unknown.is_empty(),
        ".env.example lists unknown keys {unknown:?}"
    );
    assert_eq!(listed, known, "each key once, in table order");
}

#[test]
fn matches_the_key_table_exactly() {
    assert!(
        read_example() == env_example(),
        ".env.example is out of date: run `cargo run -p config --example env_example > .env.example`"
    );
}

#[test]
fn a_copy_loads_in_development_and_is_refused_in_production() {
    let example = workspace_root().join(".env.example");
    let dir = tempfile::tempdir().unwrap();
    let dev = LoadOptions::new(dir.path())
        .env_file(&example)
        .env_vars([("HOME", "/nonexistent")]);
    let settings = load(&dev).unwrap().settings;
    let token = settings
        .findings()
        .into_iter()
        .find(|f| f.key == "TWILIO_AUTH_TOKEN")
        .unwrap();
    assert_eq!(token.status, Status::Problem);
    assert_eq!(
        token.message,
        "still a placeholder: every webhook will be refused with 403"
    );

    let prod = dev.clone().env_vars([("APP_ENV", "production")]);
    let err = load(&prod).unwrap_err();
    let keys: Vec<_> = err
        .problems()
        .iter()
        .filter_map(|p| p.key.as_deref())
        .collect();
    assert_eq!(
        keys,
        ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "WEBHOOK_URL"]
    );
}
