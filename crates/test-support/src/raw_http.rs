//! A raw HTTP/1.1 client for tests: one request per connection (`Connection: close`), any bytes
//! on the wire (oversized, malformed, chunked), and a response parser that never panics, so tests
//! can assert how a server treats hostile input.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP response; `status` is 0 when nothing parsable came back (connection refused or
/// closed without an answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, or 0.
    pub status: u16,
    /// Header names and values in arrival order.
    pub headers: Vec<(String, String)>,
    /// Body as text (lossy UTF-8).
    pub body: String,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Content-Length` and `Connection: close` and reads the whole answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
        addr.port(),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    send_raw(addr, &raw).await
}

/// Writes raw bytes and parses whatever comes back within 20 s.
pub async fn send_raw(addr: SocketAddr, raw: &[u8]) -> Response {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return parse_response(b"");
    };
    // The server may answer (413, 431) and close before reading everything: ignore write errors.
    let _ = stream.write_all(raw).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out)).await;
    parse_response(&out)
}

/// Parses a raw HTTP/1.1 response (status line, headers, body).
pub fn parse_response(out: &[u8]) -> Response {
    let text = String::from_utf8_lossy(out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_and_body() {
        let r = parse_response(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\n\r\ntoo big\n",
        );
        assert_eq!(r.status, 413);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.body, "too big\n");
        assert_eq!(parse_response(b"").status, 0);
    }
}
