//! The append-only event log.
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entity::ticket_event;
use super::{EVENT_SEQUENCE, db_error, next_value};
use crate::domain::Error;
use crate::domain::event::EventPayload;
use crate::domain::principal::Principal;

/// The ticket an event belongs to, and who caused it.
#[derive(Debug, Clone)]
pub struct EventContext<'a> {
    pub ticket_id: &'a str,
    pub ticket_type: &'static str,
    pub ticket_number: i64,
    pub account: &'a str,
    pub actor: ActorRef<'a>,
    pub at: i64,
}

/// An actor as stored: id, display name, role.
#[derive(Debug, Clone, Copy)]
pub struct ActorRef<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: &'a str,
}

impl<'a> ActorRef<'a> {
    pub const SYSTEM: ActorRef<'static> = ActorRef {
        id: "system",
        name: "ticketd",
        role: "system",
    };

    pub fn of(principal: &'a Principal) -> Self {
        Self {
            id: &principal.sub,
            name: &principal.name,
            role: principal.role.as_str(),
        }
    }
}

/// Appends one event with the next global sequence. Call it inside the
/// transaction that makes the change (see `Store::begin_write`).
pub async fn append(
    conn: &impl ConnectionTrait,
    ctx: &EventContext<'_>,
    payload: &EventPayload,
) -> Result<ticket_event::Model, Error> {
    let sequence = next_value(conn, EVENT_SEQUENCE).await?;
    let model = ticket_event::Model {
        sequence,
        ticket_id: ctx.ticket_id.to_owned(),
        ticket_type: ctx.ticket_type.to_owned(),
        ticket_number: ctx.ticket_number,
        account: ctx.account.to_owned(),
        event_type: payload.event_type().to_owned(),
        internal: payload.is_internal(),
        actor_id: ctx.actor.id.to_owned(),
        actor_name: ctx.actor.name.to_owned(),
        actor_role: ctx.actor.role.to_owned(),
        payload: serde_json::to_string(payload).map_err(|e| Error::Internal(e.into()))?,
        occurred_at: ctx.at,
    };
    let active = ticket_event::ActiveModel {
        sequence: Set(model.sequence),
        ticket_id: Set(model.ticket_id.clone()),
        ticket_type: Set(model.ticket_type.clone()),
        ticket_number: Set(model.ticket_number),
        account: Set(model.account.clone()),
        event_type: Set(model.event_type.clone()),
        internal: Set(model.internal),
        actor_id: Set(model.actor_id.clone()),
        actor_name: Set(model.actor_name.clone()),
        actor_role: Set(model.actor_role.clone()),
        payload: Set(model.payload.clone()),
        occurred_at: Set(model.occurred_at),
    };
    ticket_event::Entity::insert(active)
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(model)
}

/// One ticket's events after `after_sequence`, oldest first, at most `limit`.
pub async fn list_for_ticket(
    conn: &impl ConnectionTrait,
    ticket_id: &str,
    after_sequence: i64,
    include_internal: bool,
    limit: u64,
) -> Result<Vec<ticket_event::Model>, Error> {
    let mut query = ticket_event::Entity::find()
        .filter(ticket_event::Column::TicketId.eq(ticket_id))
        .filter(ticket_event::Column::Sequence.gt(after_sequence));
    if !include_internal {
        query = query.filter(ticket_event::Column::Internal.eq(false));
    }
    query
        .order_by_asc(ticket_event::Column::Sequence)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Decodes a stored payload.
pub fn payload(model: &ticket_event::Model) -> Result<EventPayload, Error> {
    serde_json::from_str(&model.payload).map_err(|e| {
        Error::Internal(anyhow::anyhow!(
            "event {} has a bad payload: {e}",
            model.sequence
        ))
    })
}

/// Which events a reader of the whole log may see.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only this ticket's events.
    pub ticket_id: Option<String>,
    /// Only this account's tickets (requesters).
    pub account: Option<String>,
    /// Agent notes are for agents only.
    pub include_internal: bool,
    /// SIMPLE consultations (no number) trigger no notifications.
    pub only_numbered: bool,
}

impl LogFilter {
    /// The same decision as the SQL filter, for events already in memory.
    pub fn matches(&self, e: &ticket_event::Model) -> bool {
        self.ticket_id.as_ref().is_none_or(|id| *id == e.ticket_id)
            && self.account.as_ref().is_none_or(|a| *a == e.account)
            && (self.include_internal || !e.internal)
            && (!self.only_numbered || e.ticket_number != 0)
    }
}

/// Events after `after_sequence` that `filter` lets through, oldest first.
pub async fn list_after(
    conn: &impl ConnectionTrait,
    filter: &LogFilter,
    after_sequence: i64,
    limit: u64,
) -> Result<Vec<ticket_event::Model>, Error> {
    let mut query =
        ticket_event::Entity::find().filter(ticket_event::Column::Sequence.gt(after_sequence));
    if let Some(id) = &filter.ticket_id {
        query = query.filter(ticket_event::Column::TicketId.eq(id.as_str()));
    }
    if let Some(account) = &filter.account {
        query = query.filter(ticket_event::Column::Account.eq(account.as_str()));
    }
    if !filter.include_internal {
        query = query.filter(ticket_event::Column::Internal.eq(false));
    }
    if filter.only_numbered {
        query = query.filter(ticket_event::Column::TicketNumber.ne(0));
    }
    query
        .order_by_asc(ticket_event::Column::Sequence)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// The last committed sequence (0 for an empty log).
pub async fn head(conn: &impl ConnectionTrait) -> Result<i64, Error> {
    super::current_value(conn, EVENT_SEQUENCE).await
}
