//! One client connection's socket, shared between hyper and the server, so that a client too
//! slow to send its request headers gets `408 Request Timeout` instead of a silent close.
//!
//! hyper enforces the header read timeout itself, but when it fires it ends the connection with
//! an error and drops its IO: there is nothing left to answer with. So the socket lives in an
//! `Arc`: hyper reads and writes through [`Conn`], and the server keeps a [`Handle`] to write
//! the 408 after hyper gave up. It answers only when part of a request had arrived since the
//! last response; an idle keep-alive connection that times out is closed silently, because an
//! unsolicited response there would confuse a client about to reuse the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What a client that did not finish its headers in time receives.
pub const REQUEST_TIMEOUT_RESPONSE: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// How long writing the 408 may take before the connection is simply closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct State {
    /// Bytes of a request arrived and no response was written since.
    partial_request: AtomicBool,
}

/// The IO half hyper drives.
#[derive(Debug)]
pub struct Conn {
    stream: Arc<TcpStream>,
    state: Arc<State>,
}

/// The server's half: answers 408 after hyper's header timeout.
#[derive(Debug)]
pub struct Handle {
    stream: Arc<TcpStream>,
    state: Arc<State>,
}

/// Splits an accepted connection into the half hyper drives and the server's handle.
pub fn split(stream: TcpStream) -> (Conn, Handle) {
    let stream = Arc::new(stream);
    let state = Arc::new(State::default());
    (
        Conn {
            stream: stream.clone(),
            state: state.clone(),
        },
        Handle { stream, state },
    )
}

impl Handle {
    /// True when the client had started a request that it did not finish.
    pub fn has_partial_request(&self) -> bool {
        self.state.partial_request.load(Ordering::Relaxed)
    }

    /// Called when hyper's header read timeout ended the connection: writes the 408 if a
    /// request was under way (best effort, bounded by a short timeout). Returns whether it did.
    pub async fn answer_header_timeout(&self) -> bool {
        if !self.has_partial_request() {
            return false;
        }
        let write = async {
            let mut rest = REQUEST_TIMEOUT_RESPONSE;
            while !rest.is_empty() {
                self.stream.writable().await?;
                match self.stream.try_write(rest) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<(), io::Error>(())
        };
        matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            // Reads into the buffer's uninitialized capacity (`ReadBuf` is a `BufMut`), as
            // tokio's own `TcpStream::poll_read` does: zeroing hyper's whole read buffer first
            // (`initialize_unfilled`) cost ~5 % of the server's CPU under load.
            // `try_read_buf` advances `buf` past the bytes read itself.
            match self.stream.try_read_buf(buf) {
                Ok(n) => {
                    if n > 0 {
                        self.state.partial_request.store(true, Ordering::Relaxed);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Conn {
    /// Waits until the socket is writable and writes with `write`, retrying spurious
    /// readiness; any byte written means a response started, so no partial request is pending.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        write: impl Fn(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match write(&self.stream) {
                Ok(n) => {
                    if n > 0 {
                        self.state.partial_request.store(false, Ordering::Relaxed);
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |s| s.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |s| s.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // TCP sockets have no user-space buffer
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket is closed (FIN) when the connection task drops both halves, right after
        // hyper returns; there is nothing buffered to flush before that.
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn a_partial_request_is_answered_408_and_an_idle_connection_is_not() {
        let (mut client, server) = pair().await;
        let (mut conn, handle) = split(server);
        assert!(!handle.answer_header_timeout().await, "idle: nothing sent");

        client
            .write_all(b"POST /x HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0);
        assert!(handle.has_partial_request());
        drop(conn);
        assert!(handle.answer_header_timeout().await);
        drop(handle);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, REQUEST_TIMEOUT_RESPONSE);
    }

    #[tokio::test]
    async fn writing_a_response_ends_the_partial_request() {
        let (mut client, server) = pair().await;
        let (mut conn, handle) = split(server);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let _ = conn.read(&mut buf).await.unwrap();
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        assert!(!handle.has_partial_request());
        assert!(!handle.answer_header_timeout().await);
    }

    #[tokio::test]
    async fn reads_fill_uninitialized_capacity_exactly_and_report_the_end() {
        let (mut client, server) = pair().await;
        let (mut conn, _handle) = split(server);
        let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let writer = tokio::spawn({
            let sent = sent.clone();
            async move {
                client.write_all(&sent).await.unwrap();
                client.shutdown().await.unwrap();
            }
        });
        // `read_buf` hands `poll_read` the Vec's spare, uninitialized capacity in pieces,
        // as hyper does with its read buffer.
        let mut got = Vec::with_capacity(4096);
        loop {
            got.reserve(4096);
            if conn.read_buf(&mut got).await.unwrap() == 0 {
                break;
            }
        }
        writer.await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(
            got == sent,
            "bytes arrive in order, none lost or duplicated"
        );
    }
}
