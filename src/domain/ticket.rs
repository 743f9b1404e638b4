//! What both ticket types share.

/// How a caller names one ticket: by id, or by its human number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Id(String),
    Number(i64),
}
