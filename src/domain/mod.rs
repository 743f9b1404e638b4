//! Pure rules: statuses and transitions, principals, text handling, errors.
//! Nothing here knows about the wire or the database.
pub mod clock;
pub mod error;
pub mod event;
pub mod incident;
pub mod principal;
pub mod text;

pub use error::{Error, FieldViolation, Result};
