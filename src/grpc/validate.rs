//! Field validation shared by the services: ids, versions, enum lists.
use crate::domain::{Error, Result};

/// At most this many values in a repeated filter.
pub const MAX_FILTER_VALUES: usize = 20;

/// A ticket id: a UUID.
pub fn ticket_id(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    uuid::Uuid::parse_str(value)
        .map(|u| u.to_string())
        .map_err(|_| Error::invalid(field, "must be a ticket id (UUID)"))
}

/// 0 means "not given"; required versions must be positive.
pub fn expected_version(value: i64, required: bool) -> Result<Option<i64>> {
    match value {
        0 if required => Err(Error::invalid(
            "expected_version",
            "is required: pass the version you last read",
        )),
        0 => Ok(None),
        v if v < 0 => Err(Error::invalid(
            "expected_version",
            format!("must be positive, got {v}"),
        )),
        v => Ok(Some(v)),
    }
}

pub fn enum_list<T>(
    field: &str,
    values: &[i32],
    parse: fn(&str, i32) -> Result<T>,
) -> Result<Vec<T>> {
    if values.len() > MAX_FILTER_VALUES {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_FILTER_VALUES} values"),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, value)| parse(&format!("{field}[{i}]"), *value))
        .collect()
}
