//! Redis: REDIS_URL answers `PING` within `--timeout`. For `redis://` it speaks the few RESP
//! commands it needs (`AUTH`, `PING`) itself; for `rediss://` it uses the redis client the server
//! uses (TLS, the same certificate check, `#insecure` honoured). Either way the check needs no
//! pool and creates no stream or consumer group.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use super::{Ctx, tcp_connect};
use crate::report::{Check, Section};

/// The Redis section's checks.
pub(crate) fn check(ctx: &Ctx) -> Vec<Check> {
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
    let stream = match tcp_connect(&host, port, ctx.timeout) {
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
    let tls = parsed.scheme() == "rediss";
    let outcome = if tls {
        drop(stream);
        tls_ping(url, ctx.timeout)
    } else {
        let password = parsed.password().map(percent_decode);
        let user = (!parsed.username().is_empty()).then(|| percent_decode(parsed.username()));
        ping(stream, user.as_deref(), password.as_deref())
    };
    let over = if tls { " over TLS" } else { "" };
    match outcome {
        Ok(()) => vec![Check::ok(
            S,
            "ping",
            format!("Redis at {host}:{port} answered PONG{over}"),
        )],
        Err(reply) if reply.contains("certificate") => vec![Check::error(
            S,
            "ping",
            format!("Redis at {host}:{port}: its TLS certificate is not trusted: {reply}"),
            "Use the provider's rediss:// URL with a publicly trusted certificate; if it only has a self-signed one, append #insecure to REDIS_URL (encrypted, not authenticated).",
        )],
        Err(reply) if reply.contains("without any password configured") => vec![Check::error(
            S,
            "ping",
            format!("Redis at {host}:{port} refused: {reply}"),
            "This Redis has no password: remove it from REDIS_URL (redis://host:6379), or set requirepass on the server.",
        )],
        Err(reply) if reply.trim().is_empty() => vec![Check::error(
            S,
            "ping",
            format!("{host}:{port} accepts connections but gave no Redis answer to PING{over}"),
            "Check the port in REDIS_URL (Redis listens on 6379 unless configured otherwise) and that the server is Redis.",
        )],
        Err(reply)
            if reply.contains("NOAUTH")
                || reply.contains("WRONGPASS")
                || reply.contains("invalid password")
                || reply.contains("AuthenticationFailed") =>
        {
            vec![Check::error(
                S,
                "ping",
                format!("Redis at {host}:{port} refused: {reply}"),
                "Put the right password in REDIS_URL: redis://:PASSWORD@host:6379 (or redis://USER:PASSWORD@…).",
            )]
        }
        // A TLS handshake with a Redis that does not speak TLS times out or fails to parse.
        Err(reply) if tls => vec![Check::error(
            S,
            "ping",
            format!("Redis at {host}:{port} did not answer PING over TLS: {reply}"),
            "rediss:// needs a Redis that speaks TLS on this port: if this one does not (a local or private Redis usually does not), use redis://; otherwise start Redis or correct REDIS_URL.",
        )],
        Err(reply) => vec![Check::error(
            S,
            "ping",
            format!("Redis at {host}:{port} did not answer PING: {reply}"),
            fix,
        )],
    }
}

/// `PING` over TLS with the redis client (its URL handling does the `AUTH`); `Err` carries the
/// client's message, which names neither the URL nor the password.
fn tls_ping(url: &str, timeout: std::time::Duration) -> Result<(), String> {
    use deadpool_redis::redis;
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let reply: String = redis::cmd("PING")
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    if reply == "PONG" { Ok(()) } else { Err(reply) }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
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
        // No answer in time reads as no answer at all (an empty reply): not Redis, or stuck.
        match reader.read_line(&mut line) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(String::new());
            }
            Err(e) => return Err(e.to_string()),
            Ok(_) => {}
        }
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

    #[test]
    fn password_decoding() {
        assert_eq!(percent_decode("p%40ss"), "p@ss");
    }
}
