//! Field validation shared by the services: ids, versions, enum lists.
use prost_types::Timestamp;
use serde::de::DeserializeOwned;
use tonic::{Request, Status};

use super::convert::micros;
use super::page_token;
use crate::domain::error::Violations;
use crate::domain::principal::{Locale, Principal};
use crate::domain::ticket::{Criteria, Lookup, Person};
use crate::domain::{Error, Result};
use crate::pb;
use crate::service::tickets::{ListQuery, Paging};

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

/// A repeated enum filter; a violation is recorded in `v` (and the list
/// left empty).
pub fn enum_list<T>(
    v: &mut Violations,
    field: &str,
    values: &[i32],
    parse: fn(&str, i32) -> Result<T>,
) -> Result<Vec<T>> {
    if values.len() > MAX_FILTER_VALUES {
        v.push(field, format!("at most {MAX_FILTER_VALUES} values"));
        return Ok(vec![]);
    }
    let parsed = values
        .iter()
        .enumerate()
        .map(|(i, value)| parse(&format!("{field}[{i}]"), *value))
        .collect();
    Ok(v.check(parsed)?.unwrap_or_default())
}

/// A validated Assign… request.
pub struct Assignment {
    pub id: String,
    /// None unassigns.
    pub assignee: Option<Person>,
    /// Where the assignee's e-mails go.
    pub assignee_email: Option<String>,
    pub expected_version: i64,
}

/// Validates an Assign… request; the display name defaults to the id.
pub fn assignment(
    id: &str,
    assignee_id: &str,
    assignee_name: &str,
    assignee_email: &str,
    expected: i64,
) -> Result<Assignment> {
    let mut v = Violations::default();
    let id = v.check(ticket_id("id", id))?;
    let assignee = v.text("assignee_id", assignee_id, MAX_ID);
    let name = v.text("assignee_name", assignee_name, MAX_NAME);
    let email = v
        .check(optional_email("assignee_email", assignee_email))?
        .flatten();
    if email.is_some() && assignee_id.is_empty() {
        v.push(
            "assignee_email",
            "needs an assignee_id: an unassigned ticket has nobody to e-mail",
        );
    }
    let expected = v.check(expected_version(expected, true))?.flatten();
    let (id, expected_version) = v.finish("id", || Some((id?, expected?)))?;
    let assignee = assignee.map(|id| Person {
        name: name.unwrap_or_else(|| id.clone()),
        id,
    });
    Ok(Assignment {
        id,
        assignee,
        assignee_email: email,
        expected_version,
    })
}

/// An optional e-mail address field: empty is none; otherwise one address
/// (`domain::mail::parse_address`), INVALID_ARGUMENT naming `field`.
pub fn optional_email(field: &str, value: &str) -> Result<Option<String>> {
    match value.is_empty() {
        true => Ok(None),
        false => crate::domain::mail::parse_address(field, value).map(Some),
    }
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

/// The fields every list request (ListIncidents, ListConsultations, the
/// filter of their reports) has.
pub trait ListRequest {
    /// category, assignee_id, created_from, created_to, query.
    fn criteria(&self) -> (&str, &str, Option<&Timestamp>, Option<&Timestamp>, &str);
    /// page_size, page_token.
    fn page(&self) -> (i32, &str);
}

macro_rules! list_requests {
    ($($request:ident),*) => {
        $(impl ListRequest for pb::$request {
            fn criteria(&self) -> (&str, &str, Option<&Timestamp>, Option<&Timestamp>, &str) {
                let (from, to) = (self.created_from.as_ref(), self.created_to.as_ref());
                (&self.category, &self.assignee_id, from, to, &self.query)
            }

            fn page(&self) -> (i32, &str) {
                (self.page_size, &self.page_token)
            }
        })*
    };
}

list_requests!(ListIncidentsRequest, ListConsultationsRequest);

/// Validates a list request: the type's own filters (`own`, which also says
/// whether the order is descending), the criteria every type has, and the
/// page (default 50, at most 500), whose token must come from a request
/// with the same `fingerprint`. Every violation is reported at once.
pub fn list<R: ListRequest, Own, Tie: DeserializeOwned>(
    r: &R,
    fingerprint: &str,
    own: impl FnOnce(&mut Violations) -> Result<(Own, bool)>,
) -> Result<(ListQuery<Own>, Paging<Tie>)> {
    let mut v = Violations::default();
    let (own, descending) = own(&mut v)?;
    let (category, assignee_id, from, to, query) = r.criteria();
    let category = v.text("category", category, MAX_CODE);
    let assignee_id = v.text("assignee_id", assignee_id, MAX_ID);
    let (created_from, created_to) = created_range(&mut v, from, to)?;
    let text = v.text("query", query, MAX_QUERY);
    let (page_size, token) = r.page();
    let page_size = v
        .check(page_token::page_size(page_size, 50, 500))?
        .unwrap_or(50);
    let after = v.check(page_token::decode(token, fingerprint))?.flatten();
    v.into_result()?;
    let criteria = Criteria {
        category,
        assignee_id,
        created_from,
        created_to,
        text,
    };
    let paging = Paging {
        descending,
        after,
        page_size,
    };
    Ok((ListQuery { criteria, own }, paging))
}

/// The fields every request that changes a ticket's status or class has.
pub trait ChangeRequest {
    fn id(&self) -> &str;
    fn expected_version(&self) -> i64;
}

macro_rules! change_requests {
    ($($request:ident),*) => {
        $(impl ChangeRequest for pb::$request {
            fn id(&self) -> &str {
                &self.id
            }

            fn expected_version(&self) -> i64 {
                self.expected_version
            }
        })*
    };
}

change_requests!(
    ChangeIncidentStatusRequest,
    CancelIncidentRequest,
    ChangeConsultationStatusRequest,
    ReclassifyConsultationRequest
);

/// A validated request to change a ticket, and who asks.
pub struct Change<X> {
    pub who: Principal,
    pub locale: Locale,
    pub id: String,
    /// The version the caller read.
    pub expected: Option<i64>,
    /// What `rest` read of the request's other fields.
    pub to: X,
}

/// Validates a change request: its ticket id, the version its caller read
/// (`required` or not), and what `rest` reads of the other fields (`None`
/// where it found a violation). Every violation is reported at once.
pub fn change<R: ChangeRequest, X>(
    request: Request<R>,
    required: bool,
    rest: impl FnOnce(&R, &mut Violations) -> Result<Option<X>>,
) -> std::result::Result<Change<X>, Status> {
    let (who, locale, r) = super::caller(request)?;
    let mut v = Violations::default();
    let id = v.check(ticket_id("id", r.id()))?;
    let expected = v
        .check(expected_version(r.expected_version(), required))?
        .flatten();
    let to = rest(&r, &mut v)?;
    let (id, to) = v.finish("id", || Some((id?, to?)))?;
    Ok(Change {
        who,
        locale,
        id,
        expected,
        to,
    })
}
