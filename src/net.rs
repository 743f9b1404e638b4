//! Accepted connections: a cap on how many are open, and timeouts for those
//! that do nothing.
//!
//! hyper and tonic close a connection only when its client does or a
//! keepalive ping goes unanswered, and pings start only after the HTTP/2
//! handshake. So a client that connects and sends nothing (or the preface a
//! byte at a time) held its socket forever, and enough of them used up the
//! process's file descriptors until real calls failed. Here each accepted
//! socket is a [`Conn`] that:
//! - holds one of `--max-connections` permits; at the cap the server stops
//!   accepting, and the next connection waits in the kernel's backlog until
//!   one closes (a timeout below frees a slot at the latest);
//! - ends (a read error, which makes hyper drop it) when its client has not
//!   sent the HTTP/2 preface and first SETTINGS frame within
//!   `--handshake-timeout`;
//! - ends (end of input, as if the client had closed) when no call has been in
//!   progress on it for `--idle-timeout`. Calls are counted by [`CountCalls`]
//!   through the connection's `ConnectInfo`, which tonic puts in every request.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::limits::Limits;

/// The HTTP/2 client preface (RFC 9113 §3.4), before its SETTINGS frame.
const PREFACE_LEN: usize = 24;
/// A frame header: length (3 bytes), type, flags, stream id (4).
const FRAME_HEADER_LEN: usize = 9;
/// An idle connection that has just received bytes (a ping's answer, or a
/// request hyper has not dispatched yet) gets this much longer.
const READ_GRACE: Duration = Duration::from_secs(1);

/// The accepted connections of `listener`, as tonic's incoming stream.
pub fn incoming(
    listener: TcpListener,
    limits: &Limits,
) -> impl tokio_stream::Stream<Item = io::Result<Conn>> + Send + 'static {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let timeouts = (limits.handshake_timeout, limits.idle_timeout);
    futures_util::stream::unfold((listener, slots), move |(listener, slots)| async move {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return None;
        };
        let accepted = match listener.accept().await {
            Ok((tcp, _)) => {
                // Small gRPC frames must not wait for Nagle.
                let _ = tcp.set_nodelay(true);
                Ok(Conn::new(tcp, permit, timeouts.0, timeouts.1))
            }
            Err(e) => {
                // Out of file descriptors, typically: do not spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(e)
            }
        };
        Some((accepted, (listener, slots)))
    })
}

/// Calls in progress on one connection, and since when there have been none.
#[derive(Debug)]
pub struct Calls {
    open: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Calls {
    fn new() -> Self {
        Self {
            open: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    /// When the connection's idle time started, or None while a call is open.
    fn idle_since(&self) -> Option<Instant> {
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        (self.open.load(Ordering::Acquire) == 0).then_some(since)
    }

    fn start(self: &Arc<Self>) -> CallGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.clone())
    }
}

/// One call in progress; its response body holds it.
pub struct CallGuard(Arc<Calls>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            *since = Instant::now();
        }
    }
}

/// What tonic puts in each request about its connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub tcp: TcpConnectInfo,
    calls: Arc<Calls>,
}

/// An accepted socket with its permit and timeouts.
pub struct Conn {
    tcp: TcpStream,
    _slot: OwnedSemaphorePermit,
    calls: Arc<Calls>,
    /// Bytes of the preface and first frame still to come; 0 once the
    /// handshake is complete.
    handshake: Handshake,
    deadline: Pin<Box<Sleep>>,
    idle_timeout: Duration,
    last_read: Instant,
}

/// How far the client's preface and first SETTINGS frame have come.
struct Handshake {
    seen: usize,
    header: [u8; FRAME_HEADER_LEN],
    done: bool,
}

impl Handshake {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.done {
                return;
            }
            let at = self.seen;
            self.seen += 1;
            if (PREFACE_LEN..PREFACE_LEN + FRAME_HEADER_LEN).contains(&at) {
                self.header[at - PREFACE_LEN] = byte;
            }
            if self.seen >= PREFACE_LEN + FRAME_HEADER_LEN {
                let length =
                    u32::from_be_bytes([0, self.header[0], self.header[1], self.header[2]]);
                self.done = self.seen >= PREFACE_LEN + FRAME_HEADER_LEN + length as usize;
            }
        }
    }
}

impl Conn {
    fn new(
        tcp: TcpStream,
        slot: OwnedSemaphorePermit,
        handshake_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            tcp,
            _slot: slot,
            calls: Arc::new(Calls::new()),
            handshake: Handshake {
                seen: 0,
                header: [0; FRAME_HEADER_LEN],
                done: false,
            },
            deadline: Box::pin(tokio::time::sleep(handshake_timeout)),
            idle_timeout,
            last_read: Instant::now(),
        }
    }

    /// Polls the deadline; Ready with what the read should return once the
    /// connection is to end.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            if !self.handshake.done {
                tracing::debug!(
                    "closing a connection that did not finish the HTTP/2 handshake in time"
                );
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "HTTP/2 handshake timeout",
                )));
            }
            let next = match self.calls.idle_since() {
                None => now + self.idle_timeout,
                Some(since) => {
                    let at = (since + self.idle_timeout).max(self.last_read + READ_GRACE);
                    if at <= now {
                        tracing::debug!("closing an idle connection");
                        return Poll::Ready(Ok(()));
                    }
                    at
                }
            };
            self.deadline.as_mut().reset(next);
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let this = &mut *self;
                this.last_read = Instant::now();
                if !this.handshake.done {
                    this.handshake.feed(&buf.filled()[before..]);
                    if this.handshake.done {
                        // From now on the deadline is the idle timeout's.
                        *this
                            .calls
                            .idle_since
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = this.last_read;
                        let at = this.last_read + this.idle_timeout;
                        this.deadline.as_mut().reset(at);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_deadline(cx),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo {
            tcp: self.tcp.connect_info(),
            calls: self.calls.clone(),
        }
    }
}

/// What a [`Hooked`] service does around each request: `before` sees (and
/// may change) the request on its way in and returns what to do with its
/// response on the way out; an error passes untouched.
pub trait Hook: Clone {
    fn before<B>(&self, request: &mut http::Request<B>) -> AfterResponse;
}

pub type AfterResponse = Box<dyn FnOnce(http::Response<Body>) -> http::Response<Body> + Send>;

/// The tower layer of a [`Hook`]: `.layer(Around(CountCalls))`.
#[derive(Debug, Clone, Copy)]
pub struct Around<H>(pub H);

impl<S, H: Clone> tower::Layer<S> for Around<H> {
    type Service = Hooked<S, H>;

    fn layer(&self, inner: S) -> Self::Service {
        Hooked {
            inner,
            hook: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hooked<S, H> {
    inner: S,
    hook: H,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, H, B> tower::Service<http::Request<B>> for Hooked<S, H>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    H: Hook,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let after = self.hook.before(&mut request);
        let call = self.inner.call(request);
        Box::pin(async move { Ok(after(call.await?)) })
    }
}

/// Counts each request as a call in progress on its connection until its
/// response body is dropped (for the idle timeout), and leaves tonic's
/// `TcpConnectInfo` in the request so that `remote_addr()` still works.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountCalls;

impl Hook for CountCalls {
    fn before<B>(&self, request: &mut http::Request<B>) -> AfterResponse {
        let Some(info) = request.extensions().get::<ConnInfo>().cloned() else {
            return Box::new(|response| response);
        };
        request.extensions_mut().insert(info.tcp.clone());
        let guard = info.calls.start();
        Box::new(move |response| response.map(|body| crate::grpc::limits::holding(body, guard)))
    }
}
