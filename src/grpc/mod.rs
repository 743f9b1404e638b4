//! The gRPC edge: authentication, one file per service, conversions, and the
//! single Error → Status mapping. Nothing here runs SQL.
pub mod codec;
pub mod consultation_api;
pub mod convert;
pub mod export;
pub mod health;
pub mod incident_api;
pub mod limits;
pub mod malformed;
pub mod notification_api;
pub mod page_token;
pub mod status;
pub mod thread;
pub mod validate;
pub mod watch;
pub mod webhook_api;

use std::sync::Arc;

use tonic::{Request, Status};

use crate::auth::Verifier;
use crate::domain::principal::{Locale, Principal};

/// Authenticates every call: verifies the bearer token and stores the caller
/// and its label language in the request's extensions.
#[derive(Clone)]
pub struct Authenticate {
    verifier: Arc<Verifier>,
}

impl Authenticate {
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or(""));
        let principal = self.verifier.verify(header)?;
        let locale = request
            .metadata()
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .map(Locale::from_accept_language)
            .unwrap_or_default();
        request.extensions_mut().insert(principal);
        request.extensions_mut().insert(locale);
        Ok(request)
    }
}

/// The caller and its language, as `Authenticate` left them, and the
/// request's message.
pub fn caller<T>(request: Request<T>) -> Result<(Principal, Locale, T), Status> {
    let (_, mut extensions, message) = request.into_parts();
    let principal = extensions
        .remove::<Principal>()
        .ok_or_else(|| Status::unauthenticated("missing credentials"))?;
    let locale = extensions.get::<Locale>().copied().unwrap_or_default();
    Ok((principal, locale, message))
}
