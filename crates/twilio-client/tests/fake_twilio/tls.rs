//! TLS failures: a certificate the client does not trust (what a TLS-intercepting proxy or
//! antivirus presents) fails the handshake, before the request is written. Such a send was
//! never made, so it must not go the "may have been sent" way (waits and look-ups).
//!
//! The server here is a real rustls server on 127.0.0.1 with a self-signed certificate
//! (`tls/self-signed.crt`, valid until 2126; its key is a test key and protects nothing).

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use test_support::{ACCOUNT_SID, AUTH_TOKEN};
use twilio_client::{Auth, Client, RetryPolicy, TwilioError};

use crate::{Sleeps, reply};

/// What the TLS server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    handshakes: AtomicUsize,
    request_bytes: AtomicUsize,
}

/// Starts a TLS server with the self-signed certificate; returns its base URL.
fn self_signed_server() -> (String, Arc<Seen>) {
    let cert = CertificateDer::from_pem_slice(include_bytes!("tls/self-signed.crt")).unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("tls/self-signed.key")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counts.connections.fetch_add(1, Ordering::SeqCst);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut tls = rustls::ServerConnection::new(config.clone()).unwrap();
            while tls.is_handshaking() {
                if tls.complete_io(&mut stream).is_err() {
                    break;
                }
            }
            if tls.is_handshaking() {
                continue;
            }
            counts.handshakes.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let mut plain = rustls::Stream::new(&mut tls, &mut stream);
            while let Ok(n @ 1..) = plain.read(&mut buf) {
                counts.request_bytes.fetch_add(n, Ordering::SeqCst);
            }
        }
    });
    (url, seen)
}

#[test]
fn an_untrusted_certificate_is_a_send_never_made_with_a_hint_at_the_proxy() {
    let (url, seen) = self_signed_server();
    let sleeps = Sleeps::default();
    let client = sleeps.attach(
        Client::new(
            &url,
            Auth::token(ACCOUNT_SID, AUTH_TOKEN),
            Duration::from_secs(10),
        )
        .expect("client"),
    );

    let err = client
        .send_message(&reply("hi"))
        .expect_err("the certificate is not trusted");

    assert!(matches!(err, TwilioError::Tls { .. }), "{err:?}");
    assert!(!err.may_have_been_sent(), "{err:?}");
    // Not a network blip either: waiting does not fix a certificate.
    assert!(!err.never_reached(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("proxy"), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");
    assert!(!text.contains(AUTH_TOKEN), "{text}");

    // Every try stopped at the handshake: no request reached the server, and none of the
    // retries waited the "outcome unknown" way before a look-up (the client makes none: each
    // connection is a POST that failed its handshake).
    assert!(seen.connections.load(Ordering::SeqCst) >= 1);
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 0);
    assert_eq!(seen.request_bytes.load(Ordering::SeqCst), 0);
}

#[test]
fn a_failed_handshake_is_not_retried_nor_looked_up() {
    let (url, seen) = self_signed_server();
    let sleeps = Sleeps::default();
    let timeout = Duration::from_secs(10);
    let client = sleeps
        .attach(Client::new(&url, Auth::token(ACCOUNT_SID, AUTH_TOKEN), timeout).expect("client"));
    let policy = RetryPolicy::new(3, Duration::from_millis(10), Duration::from_millis(50));
    let failed = client
        .send_counting_attempts(&reply("hi"), &policy)
        .expect_err("the certificate is not trusted");
    assert!(!failed.error.may_have_been_sent(), "{failed:?}");
    // The certificate will be the same a moment later: one try, no wait, and no look-up (an
    // in-doubt try is followed by one, a GET on its own connection).
    assert!(!failed.error.is_retryable(), "{failed:?}");
    assert_eq!(failed.attempts, 1, "{failed:?}");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    assert_eq!(seen.request_bytes.load(Ordering::SeqCst), 0);
    assert!(sleeps.taken().is_empty(), "{:?}", sleeps.taken());
}
