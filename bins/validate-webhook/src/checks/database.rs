//! Database: DATABASE_URL reachable within `--timeout` and its migrations applied.
//!
//! PostgreSQL: a TCP connect first (so "connection refused" reads as such), then
//! `store::Store::connect` with `migrate: false` and `Store::pending_migrations` (read-only).
//! SQLite: the file is inspected; only an existing database is opened (`mode=rw`), so the
//! check never creates a file or a directory. Pending migrations are a warning: the server applies
//! them at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use store::{Store, StoreError, StoreOptions};
use tokio::runtime::Runtime;

use super::{Ctx, tcp_connect};
use crate::report::{Check, Section};

const S: Section = Section::Database;

/// The database section's checks.
pub(crate) fn check(ctx: &Ctx) -> Vec<Check> {
    // One runtime for the whole section: a PostgreSQL pool's connections live on the runtime
    // that opened them, so reading the migrations on a second one fails ("A Tokio 1.x context
    // was found, but it is being shutdown").
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return vec![Check::error(
                S,
                "connection",
                format!("cannot start the async runtime: {e}"),
                "Run validate-webhook again; if it persists, check the process limits (ulimit -u).",
            )];
        }
    };
    let rt = &rt;
    let url = ctx.setup.database_url.as_str();
    let shown = ctx.setup.database_url_shown.as_str();
    if let Some(target) = store::sqlite_target(url) {
        let (file_check, existing) = sqlite_file(target, &ctx.cwd);
        let mut out = vec![file_check];
        if let Some(path) = existing {
            // mode=rw never creates a file. The store switches the file to WAL as the server
            // does (a read-only open cannot), and reading migrations creates no table.
            let rw = format!("sqlite://{}?mode=rw", path.display());
            out.push(match open(rt, &rw, ctx.timeout) {
                Ok(store) => migrations(rt, &store, ctx.timeout),
                Err(e) => Check::error(
                    S,
                    "sqlite",
                    format!("cannot open {}: {e}", path.display()),
                    "Give the user running the server read and write access to the file, or point DATABASE_URL at another file.",
                ),
            });
        }
        return out;
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return vec![Check::error(
            S,
            "connection",
            format!("cannot parse {shown}"),
            "Set DATABASE_URL to postgres://user:PASSWORD@host:5432/db or sqlite://data/webhook.db?mode=rwc.",
        )];
    };
    let host = parsed.host_str().unwrap_or("localhost").to_owned();
    let port = parsed.port().unwrap_or(5432);
    if let Err(e) = tcp_connect(&host, port, ctx.timeout) {
        return vec![Check::error(
            S,
            "connection",
            format!("cannot connect to PostgreSQL at {host}:{port}: {e}"),
            "Start PostgreSQL or correct DATABASE_URL (host, port, user, password, database).",
        )];
    }
    let db = parsed.path().trim_start_matches('/');
    match open(rt, url, ctx.timeout) {
        Ok(store) => vec![
            Check::ok(
                S,
                "connection",
                format!("connected to PostgreSQL at {host}:{port}/{db}"),
            ),
            migrations(rt, &store, ctx.timeout),
        ],
        // The port accepted TCP but no PostgreSQL answered in time: another service, or a
        // server too busy to answer; not a question of credentials.
        Err(e) if e.contains("no answer within") || e.contains("timed out") => {
            vec![Check::error(
                S,
                "connection",
                format!(
                    "{host}:{port} accepts connections but no PostgreSQL answered within {} s",
                    ctx.timeout.as_secs()
                ),
                "Check the port in DATABASE_URL (PostgreSQL listens on 5432 unless configured otherwise) and that the server is PostgreSQL and not overloaded.",
            )]
        }
        Err(e) => vec![Check::error(
            S,
            "connection",
            format!("PostgreSQL at {host}:{port} refused the connection: {e}"),
            "Correct the user, password and database name in DATABASE_URL; the database must exist (createdb).",
        )],
    }
}

/// Runs one future on the section's runtime, bounded by `timeout`.
fn block_on<T>(
    rt: &Runtime,
    timeout: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, String> {
    rt.block_on(async {
        match tokio::time::timeout(timeout, fut).await {
            Ok(result) => result.map_err(|e| describe(&e)),
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
        }
    })
}

/// The driver's message without the store's kind prefix and context ("invalid input:
/// connecting to the database: …") and without the store's " — fix" hint, since the check
/// prints its own Fix line.
fn describe(e: &StoreError) -> String {
    let text = match e {
        StoreError::Unavailable(m)
        | StoreError::Constraint(m)
        | StoreError::InvalidInput(m)
        | StoreError::Bug(m) => m.clone(),
        other => other.to_string(),
    };
    let text = match text.split_once(" — ") {
        Some((message, _hint)) => message.to_owned(),
        None => text,
    };
    match text.split_once(": ") {
        Some((context, rest))
            if context.starts_with("connecting") || context.starts_with("reading") =>
        {
            rest.to_owned()
        }
        _ => text,
    }
}

fn open(rt: &Runtime, url: &str, timeout: Duration) -> Result<Store, String> {
    let opts = StoreOptions {
        migrate: false,
        group_commit: false,
        max_connections: Some(1),
        acquire_timeout: timeout,
        ..StoreOptions::default()
    };
    block_on(rt, timeout, Store::connect(url, opts))
}

fn migrations(rt: &Runtime, store: &Store, timeout: Duration) -> Check {
    match block_on(rt, timeout, store.pending_migrations()) {
        Ok(pending) if pending.is_empty() => Check::ok(S, "migrations", "up to date"),
        Ok(pending) => Check::warning(
            S,
            "migrations",
            format!(
                "{} pending ({}): the server applies them at start",
                pending.len(),
                pending.join(", ")
            ),
            Some(
                "Nothing to do unless the server cannot start; then run it once with the same DATABASE_URL.",
            ),
        ),
        // sea-orm's words for an applied migration this build does not have: the database was
        // migrated by a newer webhook-server, and this one refuses to start on it.
        Err(e) if e.to_string().contains("file is missing") => Check::error(
            S,
            "migrations",
            format!("the database has migrations this build does not know: {e}"),
            "A newer webhook-server migrated this database and this version will not start on it: run that version (or newer), or point DATABASE_URL at another database.",
        ),
        Err(e) => Check::warning(
            S,
            "migrations",
            format!("cannot read which migrations are applied: {e}"),
            Some("The server applies missing migrations at start and says so in its log."),
        ),
    }
}

/// The first 16 bytes of `file` (fewer when it is shorter), without reading the rest.
fn read_header(file: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut header = Vec::with_capacity(16);
    std::fs::File::open(file)?
        .take(16)
        .read_to_end(&mut header)?;
    Ok(header)
}

/// Inspects what a `sqlite:` URL names ([`store::sqlite_target`]). Returns the line and, for an
/// existing database file, its path.
fn sqlite_file(target: store::SqliteTarget<'_>, cwd: &Path) -> (Check, Option<PathBuf>) {
    let store::SqliteTarget::File { path, creates } = target else {
        return (
            Check::ok(S, "sqlite", "in-memory database (nothing to reach)"),
            None,
        );
    };
    let file: PathBuf = cwd.join(path);
    let shown = file.display();
    if file.is_file() {
        let header = read_header(&file);
        return match header {
            // Any bytes but SQLite's 16-byte header (a short file included) are not a database.
            Ok(h) if !h.is_empty() && h != b"SQLite format 3\0" => (
                Check::error(
                    S,
                    "sqlite",
                    format!("{shown} is not a SQLite database"),
                    "Point DATABASE_URL at the server's database file, or move this file away.",
                ),
                None,
            ),
            // A 0-byte file is a valid, empty SQLite database.
            Ok(_) => (
                Check::ok(S, "sqlite", format!("{shown} exists")),
                Some(file.clone()),
            ),
            Err(e) => (
                Check::error(
                    S,
                    "sqlite",
                    format!("cannot read {shown}: {e}"),
                    "Give the user running the server read and write access to this file.",
                ),
                None,
            ),
        };
    }
    if file.exists() {
        return (
            Check::error(
                S,
                "sqlite",
                format!("{shown} is not a file"),
                "Point DATABASE_URL at a file path, e.g. sqlite://data/webhook.db?mode=rwc.",
            ),
            None,
        );
    }
    if !creates {
        return (
            Check::error(
                S,
                "sqlite",
                format!(
                    "{shown} does not exist and the URL lacks ?mode=rwc, so it will not be created"
                ),
                "Append ?mode=rwc to DATABASE_URL, or point it at the existing database file.",
            ),
            None,
        );
    }
    // The store creates the parent directory and (with mode=rwc) the file when it connects.
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.to_path_buf());
    let also = if dir.is_dir() {
        String::new()
    } else {
        format!(" and its directory {}", dir.display())
    };
    (
        Check::ok(
            S,
            "sqlite",
            format!("{shown} does not exist yet; the server creates it{also} at start"),
        ),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    /// The check of the file `sqlite:` + `rest` names.
    fn check_file(rest: &str, cwd: &Path) -> (Check, Option<PathBuf>) {
        let url = format!("sqlite:{rest}");
        sqlite_file(store::sqlite_target(&url).expect("a sqlite URL"), cwd)
    }

    #[test]
    fn sqlite_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, _) = check_file("//data/webhook.db?mode=rwc", dir.path());
        let data = dir.path().join("data");
        assert!(
            c.detail
                .ends_with(&format!("and its directory {} at start", data.display())),
            "{c:?}"
        );
        std::fs::create_dir(&data).expect("mkdir");
        let (c, existing) = check_file("//data/webhook.db?mode=rwc", dir.path());
        assert_eq!((c.status, existing), (Status::Ok, None), "{c:?}");
        let (c, _) = check_file("//data/webhook.db", dir.path());
        assert_eq!(c.status, Status::Error, "{c:?}");
        std::fs::write(data.join("webhook.db"), "not a database at all").expect("write");
        let (c, existing) = check_file("//data/webhook.db?mode=rwc", dir.path());
        assert!(
            c.detail.ends_with("is not a SQLite database") && existing.is_none(),
            "{c:?}"
        );
        std::fs::write(data.join("webhook.db"), "").expect("truncate");
        let (c, existing) = check_file("//data/webhook.db?mode=rwc", dir.path());
        assert_eq!(
            (c.status, existing),
            (Status::Ok, Some(data.join("webhook.db")))
        );
        assert_eq!(check_file(":memory:", dir.path()).0.status, Status::Ok);
    }
}
