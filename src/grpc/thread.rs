//! The RPCs every ticket service shares — assignment, comments, events and
//! watching — written once over the shared workflow of the ticket type.
use tonic::{Request, Response, Status};

use super::convert;
use super::page_token;
use super::validate::{Assignment, MAX_TEXT, assignment, ticket_id};
use super::watch::{WatchStream, Watcher};
use crate::domain::Result;
use crate::domain::error::Violations;
use crate::domain::event::Audience;
use crate::domain::principal::Principal;
use crate::domain::text;
use crate::domain::ticket::Lookup;
use crate::pb;
use crate::service::tickets::{Kind, Workflow};

/// Assign…: validates the request, assigns (agents only).
pub async fn assign<T: Kind>(
    flow: &Workflow<T>,
    who: &Principal,
    id: &str,
    assignee_id: &str,
    assignee_name: &str,
    expected_version: i64,
) -> Result<T> {
    let Assignment {
        id,
        assignee,
        expected_version,
    } = assignment(id, assignee_id, assignee_name, expected_version)?;
    flow.assign(who, &id, assignee, expected_version).await
}

/// AddComment: a ticket id and a body; internal notes are for agents.
pub async fn add_comment<T: Kind>(
    flow: &Workflow<T>,
    request: Request<pb::AddCommentRequest>,
) -> Result<Response<pb::Comment>, Status> {
    let (who, _) = super::caller(&request)?;
    let r = request.into_inner();
    let mut v = Violations::default();
    let id = v.check(ticket_id("ticket_id", &r.ticket_id))?;
    let body = v.check(text::required("body", &r.body, MAX_TEXT))?;
    v.into_result()?;
    let (Some(id), Some(body)) = (id, body) else {
        return Err(super::validate::incomplete("ticket_id").into());
    };
    let comment = flow.add_comment(&who, &id, body, r.internal).await?;
    Ok(Response::new(convert::comment(&comment)))
}

/// ListComments: validates, pages with a token bound to the ticket, converts.
pub async fn list_comments<T: Kind>(
    flow: &Workflow<T>,
    request: Request<pb::ListCommentsRequest>,
) -> Result<Response<pb::ListCommentsResponse>, Status> {
    let (who, _) = super::caller(&request)?;
    let r = request.into_inner();
    let id = ticket_id("ticket_id", &r.ticket_id)?;
    let limit = page_token::page_size(r.page_size, 50, 500)?;
    let fingerprint = page_token::fingerprint(id.as_bytes());
    let after: Option<(i64, String)> = page_token::decode(&r.page_token, &fingerprint)?;
    let (comments, more) = flow.list_comments(&who, &id, after, limit).await?;
    let next_page_token = match comments.last() {
        Some(last) if more => page_token::encode((last.created_at, &last.id), &fingerprint),
        _ => String::new(),
    };
    Ok(Response::new(pb::ListCommentsResponse {
        comments: comments.iter().map(convert::comment).collect(),
        next_page_token,
    }))
}

/// ListTicketEvents: after_sequence or a page token, in sequence order.
pub async fn list_events<T: Kind>(
    flow: &Workflow<T>,
    request: Request<pb::ListTicketEventsRequest>,
) -> Result<Response<pb::ListTicketEventsResponse>, Status> {
    let (who, locale) = super::caller(&request)?;
    let r = request.into_inner();
    let id = ticket_id("ticket_id", &r.ticket_id)?;
    let limit = page_token::page_size(r.page_size, 100, 500)?;
    let fingerprint = page_token::fingerprint(id.as_bytes());
    let after = match page_token::decode::<i64>(&r.page_token, &fingerprint)? {
        Some(sequence) => sequence,
        None => i64::try_from(r.after_sequence)
            .map_err(|_| crate::domain::Error::invalid("after_sequence", "is too large"))?,
    };
    let (events, more) = flow.list_events(&who, &id, after, limit).await?;
    let next_page_token = match events.last() {
        Some(last) if more => page_token::encode(last.sequence, &fingerprint),
        _ => String::new(),
    };
    let events = events.iter().map(|e| convert::event(e, locale)).collect();
    Ok(Response::new(pb::ListTicketEventsResponse {
        events,
        next_page_token,
    }))
}

/// WatchTicket: the ticket's events from `after_sequence` on, as the caller
/// may see them; NOT_FOUND for a ticket it may not see.
pub async fn watch<T: Kind>(
    flow: &Workflow<T>,
    watcher: &Watcher,
    request: Request<pb::WatchTicketRequest>,
) -> Result<Response<WatchStream>, Status> {
    let (who, locale) = super::caller(&request)?;
    let r = request.into_inner();
    let id = ticket_id("ticket_id", &r.ticket_id)?;
    flow.get(&who, &Lookup::Id(id.clone())).await?;
    let audience = Audience::of_ticket(&who, id);
    Ok(Response::new(
        watcher.open(audience, r.after_sequence, locale).await?,
    ))
}
