//! Small blocking HTTP helpers over ureq for the checks: non-2xx answers are data, not errors,
//! and transport failures are sorted into the few kinds a diagnosis needs.

use std::io;
use std::time::Duration;

/// True for a host name that means this machine (`localhost`, `127.0.0.1`, `[::1]`): a URL
/// Twilio cannot reach, and a chain that runs through here.
pub fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

/// Largest response body read (ngrok error pages and health answers are small).
const BODY_LIMIT: u64 = 64 * 1024;

/// An HTTP answer, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body as text (lossy), at most 64 KiB.
    pub body: String,
    /// `Location` header of a redirect.
    pub location: Option<String>,
    /// ngrok's error code (`ERR_NGROK_8012`) from the `Ngrok-Error-Code` header or the body.
    pub ngrok_error: Option<String>,
}

/// Why no HTTP answer came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens at that address.
    Refused,
    /// The host name does not resolve.
    Dns,
    /// No answer within the timeout.
    Timeout,
    /// TLS handshake or certificate problem.
    Tls(String),
    /// Anything else (reset, protocol error, bad URL).
    Other(String),
}

impl Failure {
    /// A short lowercase phrase for a check's detail.
    pub fn describe(&self) -> String {
        match self {
            Failure::Refused => "connection refused".to_owned(),
            Failure::Dns => "the host name does not resolve".to_owned(),
            Failure::Timeout => "no answer in time".to_owned(),
            Failure::Tls(d) => format!("TLS failed: {d}"),
            Failure::Other(d) => d.clone(),
        }
    }
}

/// An agent for one kind of request. `local` agents ignore proxy variables (they talk to
/// 127.0.0.1); none follow redirects, because a redirect is itself a finding.
pub fn agent(timeout: Duration, local: bool) -> ureq::Agent {
    let mut builder = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("validate-webhook/", env!("CARGO_PKG_VERSION")));
    if local {
        builder = builder.proxy(None);
    }
    ureq::Agent::new_with_config(builder.build())
}

/// `GET url`.
pub fn get(agent: &ureq::Agent, url: &str) -> Result<Answer, Failure> {
    finish(agent.get(url).call())
}

/// `POST url` with an urlencoded body and extra headers.
pub fn post_form(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Result<Answer, Failure> {
    let mut req = agent
        .post(url)
        .content_type("application/x-www-form-urlencoded");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    finish(req.send(body))
}

fn finish(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer, Failure> {
    let mut resp = result.map_err(classify)?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let location = header("location");
    let ngrok_header = header("ngrok-error-code");
    let body = resp
        .body_mut()
        .with_config()
        .limit(BODY_LIMIT)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let ngrok_error = ngrok_header.or_else(|| find_ngrok_code(&body));
    Ok(Answer {
        status,
        body,
        location,
        ngrok_error,
    })
}

/// Finds `ERR_NGROK_1234` in an ngrok error page.
fn find_ngrok_code(body: &str) -> Option<String> {
    let start = body.find("ERR_NGROK_")?;
    let code: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Some(code)
}

fn classify(err: ureq::Error) -> Failure {
    match err {
        ureq::Error::Timeout(_) => Failure::Timeout,
        ureq::Error::HostNotFound => Failure::Dns,
        ureq::Error::ConnectionFailed => Failure::Other("connection failed".to_owned()),
        ureq::Error::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::Timeout,
            // getaddrinfo failures arrive as plain I/O errors.
            _ if e.to_string().contains("failed to lookup address") => Failure::Dns,
            _ => Failure::Other(e.to_string()),
        },
        ureq::Error::Tls(d) => Failure::Tls(d.to_owned()),
        ureq::Error::Rustls(e) => Failure::Tls(e.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

/// Shortens a body for a one-line detail: whitespace collapsed, at most `max` characters.
pub fn one_line(body: &str, max: usize) -> String {
    let collapsed = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max {
        collapsed
    } else {
        let cut: String = collapsed.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ngrok_codes_in_error_pages() {
        assert_eq!(
            find_ngrok_code("<div>Traffic was successfully tunneled ... ERR_NGROK_8012</div>"),
            Some("ERR_NGROK_8012".to_owned())
        );
        assert_eq!(find_ngrok_code("<Response/>"), None);
    }

    #[test]
    fn one_line_collapses_and_cuts() {
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn refused_connections_are_recognised() {
        // Bind then drop to get a port that nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind");
        let a = agent(Duration::from_secs(2), true);
        assert_eq!(
            get(&a, &format!("http://127.0.0.1:{port}/")),
            Err(Failure::Refused)
        );
    }
}
