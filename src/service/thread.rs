//! What every ticket type shares: its comment thread and its event history.
use std::future::Future;

use sea_orm::ConnectionTrait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::Result;
use crate::domain::event::{Actor, Audience, Comment, Event, EventPayload, TicketType};
use crate::domain::notify::Notifiable;
use crate::domain::principal::Principal;
use crate::domain::ticket::Header;
use crate::store::comments;
use crate::store::events::{self, ActorRef, EventContext};

use super::notify::{self, Outbound};

/// The ticket an event is about, and who caused it at `at`.
pub fn context<'a>(
    ticket_type: TicketType,
    ticket: &'a Header,
    actor: ActorRef<'a>,
    at: i64,
) -> EventContext<'a> {
    EventContext {
        ticket_id: &ticket.id,
        ticket_type,
        ticket_number: ticket.number_or_zero(),
        account: &ticket.account,
        actor,
        at,
    }
}

/// Appends an event of `ticket` (as it is after it) and the outbox rows of
/// whoever is to be told about it, inside the write's transaction: every
/// event of a ticket goes through here.
pub async fn append<T: Notifiable>(
    txn: &impl ConnectionTrait,
    ticket: &T,
    actor: ActorRef<'_>,
    at: i64,
    payload: &EventPayload,
    out: &Outbound,
) -> Result<()> {
    let ctx = context(T::TYPE, ticket.header(), actor, at);
    let event = events::append(txn, &ctx, payload).await?;
    notify::enqueue(txn, ticket, &event, payload, out).await
}

/// Writes a comment and its event; call inside a write transaction.
pub async fn insert_comment<T: Notifiable>(
    txn: &impl ConnectionTrait,
    ticket: &T,
    actor: ActorRef<'_>,
    body: &str,
    internal: bool,
    now: i64,
    out: &Outbound,
) -> Result<Comment> {
    let model = Comment {
        id: uuid::Uuid::now_v7().to_string(),
        ticket_id: ticket.header().id.clone(),
        ticket_type: T::TYPE,
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
    append(txn, ticket, actor, now, &payload, out).await?;
    Ok(model)
}

/// What a ticket's thread holds: its comments, or its events.
pub trait Thread: Sized + Send {
    /// Where a page starts: after this position.
    type After: Serialize + DeserializeOwned + Send;

    /// The position after `item`, where the page that follows it starts.
    fn position(&self) -> Self::After;

    /// Up to `limit` items of the ticket after `after`, as `who` may see them.
    fn read(
        conn: &impl ConnectionTrait,
        ticket_id: &str,
        who: &Principal,
        after: Self::After,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Self>>> + Send;
}

impl Thread for Comment {
    /// (created_at, id) of the last comment read; `None` from the start.
    type After = Option<(i64, String)>;

    fn position(&self) -> Self::After {
        Some((self.created_at, self.id.clone()))
    }

    async fn read(
        conn: &impl ConnectionTrait,
        ticket_id: &str,
        who: &Principal,
        after: Self::After,
        limit: u64,
    ) -> Result<Vec<Self>> {
        comments::list(conn, ticket_id, who.is_agent(), after, limit).await
    }
}

impl Thread for Event {
    /// The sequence of the last event read.
    type After = i64;

    fn position(&self) -> i64 {
        self.sequence
    }

    async fn read(
        conn: &impl ConnectionTrait,
        ticket_id: &str,
        who: &Principal,
        after: i64,
        limit: u64,
    ) -> Result<Vec<Self>> {
        let audience = Audience::of_ticket(who, ticket_id);
        events::list_after(conn, &audience, after, limit).await
    }
}

/// A page of the thread the caller may read, and whether more follow.
pub async fn page<I: Thread>(
    conn: &impl ConnectionTrait,
    ticket_id: &str,
    who: &Principal,
    after: I::After,
    limit: u64,
) -> Result<(Vec<I>, bool)> {
    let mut list = I::read(conn, ticket_id, who, after, limit + 1).await?;
    let more = list.len() as u64 > limit;
    list.truncate(limit as usize);
    Ok((list, more))
}
