//! Hostile input against the running binary: random bytes, invalid UTF-8, 10,000 parameters,
//! huge headers, oversized bodies, and slow clients that trickle their headers or body. Each
//! gets its status (400/403/408/413/431), the process never dies, other clients are served
//! meanwhile, and its memory stays bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use test_support::{AUTH_TOKEN, TestDb, WEBHOOK_URL, sign_form};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    Msg, ServerProcess, WEBHOOK_PATH, base_env, get, parse_response, request, send_raw,
};

/// Resident memory the process may use after all of it.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Sends `head` then trickles `trickle` one byte every 500 ms until the server answers or
/// closes; returns the status (0 = closed without an answer) and whether it closed within 20 s.
async fn slow_client(addr: SocketAddr, head: Vec<u8>, trickle: Vec<u8>) -> (u16, bool) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&head).await.expect("write head");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut pending = trickle.into_iter();
    while Instant::now() < deadline {
        if let Some(b) = pending.next()
            && stream.write_all(&[b]).await.is_err()
        {
            // Closed by the server: read what it said before closing.
            let _ =
                tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out)).await;
            return (parse_response(&out).status, true);
        }
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (parse_response(&out).status, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {} // nothing yet: send the next byte
        }
    }
    (parse_response(&out).status, false)
}

fn signed_post(body: &[u8], signature: &str) -> Vec<u8> {
    let mut raw = format!(
        "POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_status_and_the_process_survives_small() {
    let db = TestDb::sqlite();
    let mut server = ServerProcess::start(&base_env(&db.url(), None)).await;
    let addr = server.addr;
    let rss_at_start = server.rss_kib();

    // Slow clients first: they hold their connections for the 10 s header/body timeouts while
    // everything else runs.
    let slowloris: Vec<_> = (0..20)
        .map(|i| {
            let head =
                format!("POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ").into_bytes();
            tokio::spawn(slow_client(addr, head, vec![b'a'; 100]))
        })
        .collect();
    let slow_body = tokio::spawn(slow_client(
        addr,
        format!(
            "POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             X-Twilio-Signature: x\r\nContent-Length: 1000\r\n\r\n"
        )
        .into_bytes(),
        vec![b'a'; 1000],
    ));

    // Random bytes instead of HTTP.
    for seed in 0..50 {
        let r = send_raw(addr, &random_bytes(seed, 8 * 1024)).await;
        assert_eq!(r.status, 400, "random bytes (seed {seed})");
    }
    // Random bytes as a form body: not signed by Twilio.
    for seed in 0..20 {
        let body = random_bytes(1000 + seed, 2048);
        let r = send_raw(addr, &signed_post(&body, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")).await;
        assert_eq!(r.status, 403, "random form body (seed {seed})");
    }
    // Invalid UTF-8, raw and percent-encoded: no signature can cover it.
    let msg = Msg::new("bad-input", 0);
    let good = msg.form();
    let sig = sign_form(AUTH_TOKEN, WEBHOOK_URL, &good);
    let mut raw_bad = good.clone().into_bytes();
    raw_bad.extend_from_slice(b"&Extra=\xff\xfe\xc3");
    assert_eq!(
        send_raw(addr, &signed_post(&raw_bad, &sig)).await.status,
        403
    );
    let pct_bad = format!("{good}&Extra=%FF%FE%C3");
    assert_eq!(
        send_raw(addr, &signed_post(pct_bad.as_bytes(), &sig))
            .await
            .status,
        403
    );
    let mut bad_header = b"POST /api/v1/whatsapp/webhook HTTP/1.1\r\nHost: x\r\nX-Twilio-Signature: \xff\xfe\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec();
    assert_eq!(send_raw(addr, &bad_header).await.status, 403);
    bad_header.splice(5..5, b"\xff".iter().copied());
    assert_eq!(
        send_raw(addr, &bad_header).await.status,
        400,
        "invalid byte in the path"
    );
    assert_eq!(
        send_raw(addr, &signed_post(good.as_bytes(), &sig))
            .await
            .status,
        200
    );

    // 10,000 parameters, correctly signed: within 64 KiB it is a valid (odd) message…
    let many = format!(
        "{}{}",
        Msg::new("bad-input", 1).form(),
        "&x=1".repeat(10_000)
    );
    assert!(many.len() < 64 * 1024);
    let sig = sign_form(AUTH_TOKEN, WEBHOOK_URL, &many);
    let r = send_raw(addr, &signed_post(many.as_bytes(), &sig)).await;
    assert!(
        matches!(r.status, 200 | 400),
        "10,000 repeated params: {}",
        r.status
    );
    // … and 10,000 distinct ones are over the body limit.
    let distinct: String = (0..10_000).map(|i| format!("&p{i:05}=v")).collect();
    let distinct = format!("{}{distinct}", Msg::new("bad-input", 2).form());
    let sig = sign_form(AUTH_TOKEN, WEBHOOK_URL, &distinct);
    assert_eq!(
        send_raw(addr, &signed_post(distinct.as_bytes(), &sig))
            .await
            .status,
        413
    );

    // Oversized bodies: declared, actual, chunked, absurd.
    let big = vec![b'a'; 70 * 1024];
    assert_eq!(send_raw(addr, &signed_post(&big, "x")).await.status, 413);
    let absurd =
        format!("POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n");
    assert_eq!(send_raw(addr, absurd.as_bytes()).await.status, 413);
    let mut chunked = format!(
        "POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..20 {
        chunked.extend_from_slice(b"1000\r\n");
        chunked.extend_from_slice(&[b'a'; 0x1000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(send_raw(addr, &chunked).await.status, 413);
    let r = request(
        addr,
        "POST",
        WEBHOOK_PATH,
        &[("Content-Length", "abc")],
        b"",
    )
    .await;
    assert_eq!(
        r.status, 400,
        "two Content-Length headers, one not a number"
    );

    // Huge headers: one big, and very many.
    let huge = "a".repeat(20 * 1024);
    let r = request(addr, "GET", "/healthz", &[("X-Huge", &huge)], b"").await;
    assert_eq!(r.status, 431);
    let mut many_headers = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        many_headers.push_str(&format!("X-H{i}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    assert_eq!(send_raw(addr, many_headers.as_bytes()).await.status, 431);

    // Served while the slow clients still hang on.
    assert_eq!(get(addr, "/healthz").await.status, 200);

    for s in slowloris {
        let (status, closed) = s.await.expect("slow client");
        assert!(closed, "slow headers: the connection was closed");
        assert_eq!(status, 408, "slow headers");
    }
    let (status, closed) = slow_body.await.expect("slow body");
    assert!(closed, "slow body: the connection was closed");
    assert_eq!(status, 408, "slow body");

    assert!(server.is_alive(), "the process survived");
    assert_eq!(get(addr, "/healthz").await.status, 200);
    let rss = server.rss_kib();
    eprintln!("bad input: RSS {rss_at_start} KiB at start, {rss} KiB after");
    assert!(rss < RSS_LIMIT_KIB, "RSS {rss} KiB");
    server.assert_no_secrets(&[]);
}
