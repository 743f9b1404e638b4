//! Caps on open streams: watch streams per principal and per server, and the
//! streams anyone may open without a token (health Watch, reflection).
//!
//! A [`Limited`] service sits in front of a gRPC service (for the ticket
//! services, behind authentication, so that it sees the caller). A call to one
//! of its streaming methods takes a permit, or is refused with
//! RESOURCE_EXHAUSTED naming the limit; the permit rides on the response body
//! and is returned when the body is dropped — when the stream ends, fails or
//! its client leaves.
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;

use crate::domain::principal::Principal;

/// How many streams may be open, in all and (for authenticated ones) per principal.
pub struct StreamLimits {
    /// What is limited, for messages: "watch streams".
    what: &'static str,
    /// How to lift it, for messages.
    hint: &'static str,
    total: usize,
    per_principal: Option<usize>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_principal: HashMap<String, usize>,
}

impl StreamLimits {
    /// Watch streams: at most `total` on this server, `per_principal` for one caller.
    pub fn watch(total: usize, per_principal: usize) -> Arc<Self> {
        Arc::new(Self {
            what: "watch streams",
            hint: "close streams you no longer read; WatchNotifications carries every ticket's events in one stream",
            total,
            per_principal: Some(per_principal),
            open: Mutex::default(),
        })
    }

    /// Streams that need no token (health Watch, reflection): at most `total`.
    pub fn unauthenticated(total: usize) -> Arc<Self> {
        Arc::new(Self {
            what: "unauthenticated streams (health Watch and reflection)",
            hint: "retry later",
            total,
            per_principal: None,
            open: Mutex::default(),
        })
    }

    /// Streams open now (all principals).
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// A permit for one more stream of `principal`, or RESOURCE_EXHAUSTED.
    fn acquire(self: &Arc<Self>, principal: Option<String>) -> Result<Permit, Status> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(limit), Some(key)) = (self.per_principal, &principal)
            && open.by_principal.get(key).copied().unwrap_or(0) >= limit
        {
            return Err(Status::resource_exhausted(format!(
                "too many open {}: {limit} per caller is the limit; {}",
                self.what, self.hint
            )));
        }
        if open.total >= self.total {
            return Err(Status::resource_exhausted(format!(
                "too many open {}: this server's limit is {}; retry later or on another replica",
                self.what, self.total
            )));
        }
        open.total += 1;
        if let Some(key) = &principal {
            *open.by_principal.entry(key.clone()).or_default() += 1;
        }
        Ok(Permit {
            limits: self.clone(),
            principal,
        })
    }
}

/// One open stream's place; given back on drop.
struct Permit {
    limits: Arc<StreamLimits>,
    principal: Option<String>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(key) = &self.principal
            && let Some(n) = open.by_principal.get_mut(key)
        {
            *n -= 1;
            if *n == 0 {
                open.by_principal.remove(key);
            }
        }
    }
}

/// A gRPC service whose streaming methods (`methods`, by name) are limited.
#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    limits: Arc<StreamLimits>,
    methods: &'static [&'static str],
}

impl<S> Limited<S> {
    /// Limits the calls to `methods` (method names, e.g. "WatchTicket"; empty: every method).
    pub fn new(inner: S, limits: Arc<StreamLimits>, methods: &'static [&'static str]) -> Self {
        Self {
            inner,
            limits,
            methods,
        }
    }

    fn applies(&self, path: &str) -> bool {
        let method = path.rsplit('/').next().unwrap_or("");
        self.methods.is_empty() || self.methods.contains(&method)
    }
}

impl<S: NamedService> NamedService for Limited<S> {
    const NAME: &'static str = S::NAME;
}

/// The key a principal's streams are counted under.
fn principal_key(principal: &Principal) -> String {
    format!(
        "{}\u{0}{}\u{0}{}",
        principal.role.as_str(),
        principal.account.as_deref().unwrap_or(""),
        principal.sub
    )
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Limited<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !self.applies(request.uri().path()) {
            return Box::pin(self.inner.call(request));
        }
        let principal = request.extensions().get::<Principal>().map(principal_key);
        match self.limits.acquire(principal) {
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
            Ok(permit) => {
                let call = self.inner.call(request);
                Box::pin(async move {
                    let response = call.await?;
                    Ok(response.map(|body| holding(body, permit)))
                })
            }
        }
    }
}

/// `body`, holding `held` until it is dropped.
pub fn holding<T: Send + Unpin + 'static>(body: Body, held: T) -> Body {
    Body::new(Holding { body, _held: held })
}

struct Holding<T> {
    body: Body,
    _held: T,
}

impl<T: Unpin> http_body::Body for Holding<T> {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
