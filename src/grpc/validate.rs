//! Field validation shared by the services: ids, versions, enum lists.
use prost_types::Timestamp;

use super::convert::micros;
use super::page_token;
use crate::domain::error::Violations;
use crate::domain::ticket::{Criteria, Lookup, Person};
use crate::domain::{Error, Result};
use crate::service::tickets::Paging;

/// At most this many values in a repeated filter.
pub const MAX_FILTER_VALUES: usize = 20;
/// Longest descriptions and comments (characters).
pub const MAX_TEXT: usize = 10_000;
/// Longest cancellation reason.
pub const MAX_REASON: usize = 2_000;
/// Longest catalog code (category, carrier) or order reference.
pub const MAX_CODE: usize = 64;
/// Longest id (assignee, idempotency key).
pub const MAX_ID: usize = 128;
/// Longest display name.
pub const MAX_NAME: usize = 256;
/// Longest search query.
pub const MAX_QUERY: usize = 200;

/// GetIncident's and GetConsultation's `lookup`: a well-formed ticket id, or a
/// positive number.
pub fn lookup(id: Option<String>, number: Option<i64>) -> Result<Lookup> {
    match (id, number) {
        (Some(id), _) => Ok(Lookup::Id(ticket_id("id", &id)?)),
        (None, Some(n)) if n > 0 => Ok(Lookup::Number(n)),
        (None, Some(n)) => Err(Error::invalid(
            "number",
            format!("must be positive, got {n}"),
        )),
        (None, None) => Err(Error::invalid("lookup", "give an id or a number")),
    }
}

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

/// What Violations::into_result already refused; never reached in practice.
pub fn incomplete(field: &str) -> Error {
    Error::invalid(field, "is invalid")
}

/// A validated Assign… request.
pub struct Assignment {
    pub id: String,
    /// None unassigns.
    pub assignee: Option<Person>,
    pub expected_version: i64,
}

/// Validates an Assign… request; the display name defaults to the id.
pub fn assignment(
    id: &str,
    assignee_id: &str,
    assignee_name: &str,
    expected: i64,
) -> Result<Assignment> {
    let mut v = Violations::default();
    let id = v.check(ticket_id("id", id))?;
    let assignee = v.text("assignee_id", assignee_id, MAX_ID);
    let name = v.text("assignee_name", assignee_name, MAX_NAME);
    let expected = v.check(expected_version(expected, true))?.flatten();
    v.into_result()?;
    let (Some(id), Some(expected_version)) = (id, expected) else {
        return Err(incomplete("id"));
    };
    let assignee = assignee.map(|id| Person {
        name: name.unwrap_or_else(|| id.clone()),
        id,
    });
    Ok(Assignment {
        id,
        assignee,
        expected_version,
    })
}

/// A created_at filter range in microseconds; `from` must not be after `to`.
pub fn created_range(
    v: &mut Violations,
    from: Option<&Timestamp>,
    to: Option<&Timestamp>,
) -> Result<(Option<i64>, Option<i64>)> {
    let from = v
        .check(from.map(|t| micros("created_from", t)).transpose())?
        .flatten();
    let to = v
        .check(to.map(|t| micros("created_to", t)).transpose())?
        .flatten();
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        v.push("created_from", "must not be after created_to");
    }
    Ok((from, to))
}

/// The filters every ticket list request has; violations go to `v`.
pub fn criteria(
    v: &mut Violations,
    category: &str,
    assignee_id: &str,
    created_from: Option<&Timestamp>,
    created_to: Option<&Timestamp>,
    query: &str,
) -> Result<Criteria> {
    let category = v.text("category", category, MAX_CODE);
    let assignee_id = v.text("assignee_id", assignee_id, MAX_ID);
    let (created_from, created_to) = created_range(v, created_from, created_to)?;
    let text = v.text("query", query, MAX_QUERY);
    Ok(Criteria {
        category,
        assignee_id,
        created_from,
        created_to,
        text,
    })
}

/// A list's page size (default 50, at most 500) and its page token, which
/// must come from a request with the same `fingerprint`.
pub fn paging<Tie: serde::de::DeserializeOwned>(
    v: &mut Violations,
    page_size: i32,
    token: &str,
    fingerprint: &str,
    descending: bool,
) -> Result<Paging<Tie>> {
    let page_size = v
        .check(page_token::page_size(page_size, 50, 500))?
        .unwrap_or(50);
    let after = v.check(page_token::decode(token, fingerprint))?.flatten();
    Ok(Paging {
        descending,
        after,
        page_size,
    })
}

/// A request to change ticket `id`: its id, the version its caller read
/// (`required` or not), and what `rest` reads of the other fields (`None`
/// where it found a violation). Every violation is reported at once.
pub fn change<X>(
    id: &str,
    expected: i64,
    required: bool,
    rest: impl FnOnce(&mut Violations) -> Result<Option<X>>,
) -> Result<(String, Option<i64>, X)> {
    let mut v = Violations::default();
    let id = v.check(ticket_id("id", id))?;
    let expected = v.check(expected_version(expected, required))?.flatten();
    let rest = rest(&mut v)?;
    v.into_result()?;
    match (id, rest) {
        (Some(id), Some(rest)) => Ok((id, expected, rest)),
        _ => Err(incomplete("id")),
    }
}
