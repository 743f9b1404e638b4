//! The comment and event RPCs every ticket service shares. Each service
//! passes the use case that loads its own ticket type.
use std::future::Future;

use tonic::{Request, Response, Status};

use super::convert;
use super::page_token;
use super::validate::{MAX_TEXT, ticket_id};
use crate::domain::error::Violations;
use crate::domain::event::{Comment, Event};
use crate::domain::principal::Principal;
use crate::domain::text;
use crate::domain::{Error, Result};
use crate::pb::{
    AddCommentRequest, ListCommentsRequest, ListCommentsResponse, ListTicketEventsRequest,
    ListTicketEventsResponse,
};

/// A validated AddComment request: (ticket id, body, internal).
pub fn parse_add_comment(r: AddCommentRequest) -> Result<(String, String, bool)> {
    let mut v = Violations::default();
    let id = v.check(ticket_id("ticket_id", &r.ticket_id))?;
    let body = v.check(text::required("body", &r.body, MAX_TEXT))?;
    v.into_result()?;
    match (id, body) {
        (Some(id), Some(body)) => Ok((id, body, r.internal)),
        _ => Err(super::validate::incomplete("ticket_id")),
    }
}

/// ListComments: validates, pages with a token bound to the ticket, converts.
pub async fn list_comments<F, Fut>(
    request: Request<ListCommentsRequest>,
    fetch: F,
) -> Result<Response<ListCommentsResponse>, Status>
where
    F: FnOnce(Principal, String, Option<(i64, String)>, u64) -> Fut,
    Fut: Future<Output = Result<(Vec<Comment>, bool)>>,
{
    let (who, _) = super::caller(&request)?;
    let r = request.into_inner();
    let id = ticket_id("ticket_id", &r.ticket_id)?;
    let limit = page_token::page_size(r.page_size, 50, 500)?;
    let fingerprint = page_token::fingerprint(id.as_bytes());
    let after: Option<(i64, String)> = page_token::decode(&r.page_token, &fingerprint)?;
    let (comments, more) = fetch(who, id, after, limit).await?;
    let next_page_token = match comments.last() {
        Some(last) if more => page_token::encode((last.created_at, &last.id), &fingerprint),
        _ => String::new(),
    };
    Ok(Response::new(ListCommentsResponse {
        comments: comments.iter().map(convert::comment).collect(),
        next_page_token,
    }))
}

/// ListTicketEvents: after_sequence or a page token, in sequence order.
pub async fn list_events<F, Fut>(
    request: Request<ListTicketEventsRequest>,
    fetch: F,
) -> Result<Response<ListTicketEventsResponse>, Status>
where
    F: FnOnce(Principal, String, i64, u64) -> Fut,
    Fut: Future<Output = Result<(Vec<Event>, bool)>>,
{
    let (who, locale) = super::caller(&request)?;
    let r = request.into_inner();
    let id = ticket_id("ticket_id", &r.ticket_id)?;
    let limit = page_token::page_size(r.page_size, 100, 500)?;
    let fingerprint = page_token::fingerprint(id.as_bytes());
    let after = match page_token::decode::<i64>(&r.page_token, &fingerprint)? {
        Some(sequence) => sequence,
        None => i64::try_from(r.after_sequence)
            .map_err(|_| Error::invalid("after_sequence", "is too large"))?,
    };
    let (events, more) = fetch(who, id, after, limit).await?;
    let next_page_token = match events.last() {
        Some(last) if more => page_token::encode(last.sequence, &fingerprint),
        _ => String::new(),
    };
    let events = events.iter().map(|e| convert::event(e, locale)).collect();
    Ok(Response::new(ListTicketEventsResponse {
        events,
        next_page_token,
    }))
}
