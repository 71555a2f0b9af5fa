//! Database and Redis: reachable within `--timeout`, and (for the database) whether the file
//! or server is there. Speaks just enough of each protocol itself (TCP connect, RESP `PING`)
//! so the CLI stays small and never creates or migrates anything.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Ctx;
use crate::report::{Check, Section};

/// The database section's checks.
pub(crate) fn database(ctx: &Ctx) -> Vec<Check> {
    const S: Section = Section::Database;
    let url = ctx.setup.database_url.as_str();
    let shown = ctx.setup.database_url_shown.as_str();
    if let Some(rest) = url.strip_prefix("sqlite:") {
        return vec![sqlite(rest, &ctx.cwd)];
    }
    let Ok(parsed) = url::Url::parse(url) else {
        return vec![Check::error(
            S,
            "connection",
            format!("cannot parse {shown}"),
            "Set DATABASE_URL to postgres://user:password@host:5432/db or sqlite://data/webhook.db?mode=rwc.",
        )];
    };
    let host = parsed.host_str().unwrap_or("localhost").to_owned();
    let port = parsed.port().unwrap_or(5432);
    match connect(&host, port, ctx.timeout) {
        Ok(_) => vec![Check::ok(
            S,
            "connection",
            format!("PostgreSQL at {host}:{port} accepts connections"),
        )],
        Err(e) => vec![Check::error(
            S,
            "connection",
            format!("cannot connect to PostgreSQL at {host}:{port}: {e}"),
            "Start PostgreSQL or correct DATABASE_URL (host, port, user, password, database).",
        )],
    }
}

/// `sqlite:` URL after the scheme: `//data/webhook.db?mode=rwc`, `:memory:`, `/abs/path.db`.
fn sqlite(rest: &str, cwd: &Path) -> Check {
    const S: Section = Section::Database;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.strip_prefix("//").unwrap_or(path);
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return Check::ok(S, "sqlite", "in-memory database (nothing to reach)");
    }
    let file: PathBuf = cwd.join(path);
    let shown = file.display();
    let creates = query.split('&').any(|p| p == "mode=rwc");
    if file.is_file() {
        let header = std::fs::read(&file).map(|b| b.get(..16).map(<[u8]>::to_vec));
        return match header {
            Ok(Some(h)) if h != b"SQLite format 3\0" => Check::error(
                S,
                "sqlite",
                format!("{shown} is not a SQLite database"),
                "Point DATABASE_URL at the server's database file, or move this file away.",
            ),
            Ok(_) => Check::ok(S, "sqlite", format!("{shown} exists")),
            Err(e) => Check::error(
                S,
                "sqlite",
                format!("cannot read {shown}: {e}"),
                "Give the user running the server read and write access to this file.",
            ),
        };
    }
    if file.exists() {
        return Check::error(
            S,
            "sqlite",
            format!("{shown} is not a file"),
            "Point DATABASE_URL at a file path, e.g. sqlite://data/webhook.db?mode=rwc.",
        );
    }
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.to_path_buf());
    if !creates {
        return Check::error(
            S,
            "sqlite",
            format!(
                "{shown} does not exist and the URL lacks ?mode=rwc, so it will not be created"
            ),
            "Append ?mode=rwc to DATABASE_URL, or point it at the existing database file.",
        );
    }
    // The store creates the parent directory and (with mode=rwc) the file when it connects.
    let also = if dir.is_dir() {
        String::new()
    } else {
        format!(" and its directory {}", dir.display())
    };
    Check::ok(
        S,
        "sqlite",
        format!("{shown} does not exist yet; the server creates it{also} at start"),
    )
}

/// The Redis section's checks.
pub(crate) fn redis(ctx: &Ctx) -> Vec<Check> {
    const S: Section = Section::Redis;
    let (Some(url), Some(shown)) = (
        ctx.setup.redis_url.as_deref(),
        ctx.setup.redis_url_shown.as_deref(),
    ) else {
        return vec![Check::ok(
            S,
            "queue",
            "REDIS_URL not set: in-process queue (the database stays the source of truth)",
        )];
    };
    let fix = "Start Redis or correct REDIS_URL; or unset REDIS_URL to use the in-process queue.";
    let Ok(parsed) = url::Url::parse(url) else {
        return vec![Check::error(
            S,
            "ping",
            format!("cannot parse {shown}"),
            "Set REDIS_URL to redis://host:6379 (or rediss:// for TLS).",
        )];
    };
    let host = parsed.host_str().unwrap_or("localhost").to_owned();
    let port = parsed.port().unwrap_or(6379);
    let stream = match connect(&host, port, ctx.timeout) {
        Ok(s) => s,
        Err(e) => {
            return vec![Check::error(
                S,
                "ping",
                format!("cannot connect to Redis at {host}:{port}: {e}"),
                fix,
            )];
        }
    };
    if parsed.scheme() == "rediss" {
        return vec![Check::ok(
            S,
            "ping",
            format!("Redis at {host}:{port} accepts connections (TLS; PING not tried)"),
        )];
    }
    let password = parsed.password().map(percent_decode);
    let user = (!parsed.username().is_empty()).then(|| percent_decode(parsed.username()));
    match ping(stream, user.as_deref(), password.as_deref()) {
        Ok(()) => vec![Check::ok(
            S,
            "ping",
            format!("Redis at {host}:{port} answered PONG"),
        )],
        Err(reply)
            if reply.contains("NOAUTH")
                || reply.contains("WRONGPASS")
                || reply.contains("invalid password") =>
        {
            vec![Check::error(
                S,
                "ping",
                format!("Redis at {host}:{port} refused: {reply}"),
                "Put the right password in REDIS_URL: redis://:PASSWORD@host:6379 (or redis://USER:PASSWORD@…).",
            )]
        }
        Err(reply) => vec![Check::error(
            S,
            "ping",
            format!("Redis at {host}:{port} did not answer PING: {reply}"),
            fix,
        )],
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|_| format!("{host} does not resolve"))?
        .collect();
    let mut last = "no address".to_owned();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(timeout));
                let _ = s.set_write_timeout(Some(timeout));
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = "connection refused".to_owned()
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!("no answer within {} s", timeout.as_secs())
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// RESP: optional `AUTH`, then `PING`; `Err` carries the server's reply or the I/O error.
fn ping(stream: TcpStream, user: Option<&str>, password: Option<&str>) -> Result<(), String> {
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut command = |args: &[&str]| -> Result<String, String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        writer
            .write_all(out.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        Ok(line.trim_end().to_owned())
    };
    if let Some(password) = password {
        let reply = match user {
            Some(user) => command(&["AUTH", user, password])?,
            None => command(&["AUTH", password])?,
        };
        if !reply.starts_with('+') {
            return Err(reply.trim_start_matches('-').to_owned());
        }
    }
    let reply = command(&["PING"])?;
    if reply == "+PONG" {
        Ok(())
    } else {
        Err(reply.trim_start_matches('-').to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn sqlite_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = sqlite("//data/webhook.db?mode=rwc", dir.path());
        let data = dir.path().join("data");
        assert!(
            c.detail
                .ends_with(&format!("and its directory {} at start", data.display())),
            "{c:?}"
        );
        std::fs::create_dir(&data).expect("mkdir");
        let c = sqlite("//data/webhook.db?mode=rwc", dir.path());
        assert_eq!(c.status, Status::Ok, "{c:?}");
        let c = sqlite("//data/webhook.db", dir.path());
        assert_eq!(c.status, Status::Error, "{c:?}");
        std::fs::write(dir.path().join("data/webhook.db"), "not a database at all").expect("write");
        let c = sqlite("//data/webhook.db?mode=rwc", dir.path());
        assert!(c.detail.ends_with("is not a SQLite database"), "{c:?}");
        assert_eq!(sqlite(":memory:", dir.path()).status, Status::Ok);
    }

    #[test]
    fn password_decoding() {
        assert_eq!(percent_decode("p%40ss"), "p@ss");
    }
}
