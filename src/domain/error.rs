//! The one error type of ticketd. Every variant documents the gRPC status it
//! becomes; the mapping itself lives in `grpc::status`, in one match.
use std::fmt;

/// One invalid field of a request, named by its proto path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// INVALID_ARGUMENT, with google.rpc.BadRequest field violations.
    #[error("invalid argument: {}", join(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// UNAUTHENTICATED: missing, expired or forged token.
    #[error("{0}")]
    Unauthenticated(String),
    /// PERMISSION_DENIED: the caller's role may not do this to a ticket it can see.
    #[error("{0}")]
    PermissionDenied(String),
    /// NOT_FOUND: the thing does not exist or the caller may not see it.
    #[error("{0} not found")]
    NotFound(String),
    /// FAILED_PRECONDITION: the ticket's state does not allow it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// ABORTED: expected_version is stale (read again and retry), or an
    /// export was abandoned because its client stopped taking data.
    #[error("{0}")]
    Aborted(String),
    /// OUT_OF_RANGE: a cursor beyond what exists.
    #[error("{0}")]
    OutOfRange(String),
    /// UNIMPLEMENTED: an RPC whose issue has not landed yet.
    #[error("{0}")]
    Unimplemented(String),
    /// RESOURCE_EXHAUSTED: a server-wide limit is reached (e.g. reports
    /// running at once); retrying later may help.
    #[error("{0}")]
    ResourceExhausted(String),
    /// UNAVAILABLE: the database cannot be reached; retrying may help.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// INTERNAL: a bug or an unexpected database failure. Logged with its
    /// cause; the client only sees a generic message.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

fn join(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// INVALID_ARGUMENT for a single field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field violations so that a request reports all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records the error of `result` if it is an InvalidArgument, and returns its value.
    pub fn check<T>(&mut self, result: Result<T>) -> Result<Option<T>> {
        match result {
            Ok(value) => Ok(Some(value)),
            Err(Error::InvalidArgument(mut v)) => {
                self.0.append(&mut v);
                Ok(None)
            }
            Err(other) => Err(other),
        }
    }

    /// An optional text field (see `text::optional`); a violation is
    /// recorded and reads as absent.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        let mut value = super::text::optional(field, value, max);
        if let Err(Error::InvalidArgument(v)) = &mut value {
            self.0.append(v);
        }
        value.ok().flatten()
    }

    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }

    /// Every violation at once, or what `build` makes of the checked
    /// values. `build` takes them as the `Option`s the checks returned and
    /// gives `None` only where one is missing, which a recorded violation
    /// has already reported: never reached in practice, it would be
    /// INVALID_ARGUMENT naming `field`.
    pub fn finish<T>(self, field: &str, build: impl FnOnce() -> Option<T>) -> Result<T> {
        self.into_result()?;
        build().ok_or_else(|| Error::invalid(field, "is invalid"))
    }
}
