//! What every ticket type shares: its comment thread and its event history.
use sea_orm::ConnectionTrait;

use crate::domain::Result;
use crate::domain::event::{Actor, Audience, Comment, Event, EventPayload, TicketType};
use crate::domain::principal::Principal;
use crate::store::comments;
use crate::store::events::{self, ActorRef, EventContext};

/// The identity of a ticket, as events and comments record it.
#[derive(Debug, Clone, Copy)]
pub struct TicketRef<'a> {
    pub id: &'a str,
    pub ticket_type: TicketType,
    /// The human number; 0 for consultations without one.
    pub number: i64,
    pub account: &'a str,
}

impl<'a> TicketRef<'a> {
    pub fn context(self, actor: ActorRef<'a>, at: i64) -> EventContext<'a> {
        EventContext {
            ticket_id: self.id,
            ticket_type: self.ticket_type,
            ticket_number: self.number,
            account: self.account,
            actor,
            at,
        }
    }
}

/// Writes a comment and its event; call inside a write transaction.
pub async fn insert_comment(
    txn: &impl ConnectionTrait,
    ticket: TicketRef<'_>,
    actor: ActorRef<'_>,
    body: &str,
    internal: bool,
    now: i64,
) -> Result<Comment> {
    let model = Comment {
        id: uuid::Uuid::now_v7().to_string(),
        ticket_id: ticket.id.to_owned(),
        ticket_type: ticket.ticket_type,
        author: Actor {
            id: actor.id.to_owned(),
            name: actor.name.to_owned(),
            role: actor.role.to_owned(),
        },
        body: body.to_owned(),
        internal,
        created_at: now,
    };
    comments::insert(txn, &model).await?;
    let payload = EventPayload::CommentAdded {
        comment_id: model.id.clone(),
        body: model.body.clone(),
        internal,
    };
    events::append(txn, &ticket.context(actor, now), &payload).await?;
    Ok(model)
}

/// A page of comments the caller may read, and whether more follow.
pub async fn list_comments(
    conn: &impl ConnectionTrait,
    ticket: TicketRef<'_>,
    who: &Principal,
    after: Option<(i64, String)>,
    limit: u64,
) -> Result<(Vec<Comment>, bool)> {
    let mut list = comments::list(conn, ticket.id, who.is_agent(), after, limit + 1).await?;
    let more = list.len() as u64 > limit;
    list.truncate(limit as usize);
    Ok((list, more))
}

/// A page of events the caller may read, and whether more follow.
pub async fn list_events(
    conn: &impl ConnectionTrait,
    ticket: TicketRef<'_>,
    who: &Principal,
    after_sequence: i64,
    limit: u64,
) -> Result<(Vec<Event>, bool)> {
    let audience = Audience::of_ticket(who, ticket.id);
    let mut list = events::list_after(conn, &audience, after_sequence, limit + 1).await?;
    let more = list.len() as u64 > limit;
    list.truncate(limit as usize);
    Ok((list, more))
}
