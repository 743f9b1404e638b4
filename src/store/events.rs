//! The append-only event log.
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::entity::ticket_event;
use super::{EVENT_SEQUENCE, db_error, next_value};
use crate::domain::Error;
use crate::domain::event::{Actor, Audience, Event, EventPayload, TicketType};
use crate::domain::principal::Principal;

/// The ticket an event belongs to, and who caused it.
#[derive(Debug, Clone)]
pub struct EventContext<'a> {
    pub ticket_id: &'a str,
    pub ticket_type: TicketType,
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
        ticket_type: ctx.ticket_type.as_str().to_owned(),
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

/// Decodes a stored event: the one place log rows become domain events.
pub fn decode(model: ticket_event::Model) -> Result<Event, Error> {
    let corrupt =
        |what: String| Error::Internal(anyhow::anyhow!("event {} has {what}", model.sequence));
    let payload =
        serde_json::from_str(&model.payload).map_err(|e| corrupt(format!("a bad payload: {e}")))?;
    let ticket_type = TicketType::parse(&model.ticket_type)
        .ok_or_else(|| corrupt(format!("an unknown ticket type {:?}", model.ticket_type)))?;
    Ok(Event {
        sequence: model.sequence,
        ticket_id: model.ticket_id,
        ticket_type,
        ticket_number: model.ticket_number,
        account: model.account,
        actor: Actor {
            id: model.actor_id,
            name: model.actor_name,
            role: model.actor_role,
        },
        at: model.occurred_at,
        payload,
    })
}

/// Events after `after_sequence` that `audience` sees, oldest first, at most
/// `limit`. The SQL is `Audience::sees`, so that the database does the filtering.
pub async fn list_after(
    conn: &impl ConnectionTrait,
    audience: &Audience,
    after_sequence: i64,
    limit: u64,
) -> Result<Vec<Event>, Error> {
    let mut query =
        ticket_event::Entity::find().filter(ticket_event::Column::Sequence.gt(after_sequence));
    if let Some(id) = &audience.ticket_id {
        query = query.filter(ticket_event::Column::TicketId.eq(id.as_str()));
    }
    if let Some(account) = &audience.account {
        query = query.filter(ticket_event::Column::Account.eq(account.as_str()));
    }
    if !audience.include_internal {
        query = query.filter(ticket_event::Column::Internal.eq(false));
    }
    if audience.only_ticketed {
        query = query.filter(ticket_event::Column::TicketNumber.ne(0));
    }
    let query = query
        .order_by_asc(ticket_event::Column::Sequence)
        .limit(limit);
    super::decoded(conn, query, decode).await
}

/// The last committed sequence (0 for an empty log).
pub async fn head(conn: &impl ConnectionTrait) -> Result<i64, Error> {
    super::current_value(conn, EVENT_SEQUENCE).await
}
