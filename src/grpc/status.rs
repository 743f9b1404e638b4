//! The single mapping from the domain error to `tonic::Status`.
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Error;

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidArgument(violations) => {
                let message = Error::InvalidArgument(violations.clone()).to_string();
                let mut details = ErrorDetails::new();
                for v in violations {
                    details.add_bad_request_violation(v.field, v.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::Unauthenticated(msg) => Status::unauthenticated(msg),
            Error::PermissionDenied(msg) => Status::permission_denied(msg),
            Error::NotFound(what) => Status::not_found(format!("{what} not found")),
            Error::FailedPrecondition(msg) => Status::failed_precondition(msg),
            Error::Aborted(msg) => Status::aborted(msg),
            Error::OutOfRange(msg) => Status::out_of_range(msg),
            Error::Unimplemented(msg) => Status::unimplemented(msg),
            Error::ResourceExhausted(msg) => Status::resource_exhausted(msg),
            Error::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                Status::unavailable("the database is unavailable; retry later")
            }
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
