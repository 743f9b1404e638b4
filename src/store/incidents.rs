//! Incident rows: the mapping to `domain::incident::Incident`, the list
//! filters of their own, and the auto-close queries.
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use super::db_error;
use super::entity::incident::{self, Column, Entity};
use super::tickets::{Filter, Stored, TicketFilter, header_of, parse_code, row_of};
use crate::domain::Error;
use crate::domain::incident::{Incident, IncidentStatus, Money, TrackingNumber};
use crate::domain::ticket::Ticket as _;

/// The filters of ListIncidents, already validated.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub common: Filter,
    /// Empty means any.
    pub kinds: Vec<&'static str>,
    pub carrier: Option<String>,
}

impl TicketFilter for IncidentFilter {
    type Table = Entity;

    fn common(&mut self) -> &mut Filter {
        &mut self.common
    }

    fn is_plain(&self) -> bool {
        self.common.is_plain() && self.kinds.is_empty() && self.carrier.is_none()
    }

    fn apply(&self, mut query: Select<Entity>) -> Select<Entity> {
        query = self.common.apply(query);
        if !self.kinds.is_empty() {
            query = query.filter(Column::Kind.is_in(self.kinds.iter().copied()));
        }
        if let Some(carrier) = &self.carrier {
            query = query.filter(Column::CarrierCode.eq(carrier.as_str()));
        }
        query
    }
}

/// Statuses whose estimate can still be breached (MISSING_DATA is paused).
const OPEN_UNPAUSED: [IncidentStatus; 3] = [
    IncidentStatus::NewTicket,
    IncidentStatus::InProgress,
    IncidentStatus::PreApproved,
];

impl Stored for Incident {
    type Table = Entity;
    type Filter = IncidentFilter;

    fn from_row(m: incident::Model) -> Result<Self, Error> {
        let id = m.id.clone();
        let code = |what: &str, text: &str| parse_code::<IncidentStatus>(what, &id, text);
        let status = code("status", &m.status)?;
        let previous_status = m
            .previous_status
            .as_deref()
            .map(|s| code("previous status", s))
            .transpose()?;
        let kind = parse_code("kind", &id, &m.kind)?;
        let resolution_reason = m
            .resolution_reason
            .as_deref()
            .map(|r| parse_code("resolution reason", &id, r))
            .transpose()?;
        let claimed_amount = m
            .claimed_amount
            .clone()
            .zip(m.claimed_currency.clone())
            .map(|(amount, currency)| Money { amount, currency });
        Ok(Incident {
            kind,
            status,
            previous_status,
            tracking_number: TrackingNumber::stored(m.tracking_number.clone()),
            carrier: m.carrier_code.clone(),
            category: m.category_code.clone(),
            description: m.description.clone(),
            shipped_at: m.shipped_at,
            claimed_amount,
            resolution_reason,
            resolution_note: m.resolution_note.clone(),
            resolved_at: m.resolved_at,
            auto_close_at: m.auto_close_at,
            estimated_resolution_at: m.estimated_resolution_at,
            paused_since: m.paused_since,
            header: header_of!(m),
        })
    }

    fn to_row(&self) -> incident::Model {
        let amount = self.claimed_amount.as_ref();
        row_of!(incident::Model, &self.header, self.search_text(), self.header.number_or_zero(), {
            kind: self.kind.as_str().to_owned(),
            status: self.status.as_str().to_owned(),
            previous_status: self.previous_status.map(|s| s.as_str().to_owned()),
            tracking_number: self.tracking_number.as_str().to_owned(),
            carrier_code: self.carrier.clone(),
            category_code: self.category.clone(),
            description: self.description.clone(),
            shipped_at: self.shipped_at,
            claimed_amount: amount.map(|m| m.amount.clone()),
            claimed_currency: amount.map(|m| m.currency.clone()),
            resolution_reason: self.resolution_reason.map(|r| r.as_str().to_owned()),
            resolution_note: self.resolution_note.clone(),
            resolved_at: self.resolved_at,
            auto_close_at: self.auto_close_at,
            estimated_resolution_at: self.estimated_resolution_at,
            paused_since: self.paused_since,
        })
    }

    fn tie(&self) -> i64 {
        self.header.number_or_zero()
    }

    fn breach_candidates() -> (Select<Entity>, Column) {
        let open = OPEN_UNPAUSED.map(IncidentStatus::as_str);
        let candidates = Entity::find()
            .filter(Column::BreachedAt.is_null())
            .filter(Column::PausedSince.is_null())
            .filter(Column::Status.is_in(open));
        (candidates, Column::EstimatedResolutionAt)
    }
}

/// The earliest auto-close deadline, if any incident has one.
pub async fn next_auto_close(conn: &impl ConnectionTrait) -> Result<Option<i64>, Error> {
    let next: Option<Option<i64>> = Entity::find()
        .select_only()
        .column_as(Expr::col(Column::AutoCloseAt).min(), "next")
        .into_tuple()
        .one(conn)
        .await
        .map_err(db_error)?;
    Ok(next.flatten())
}

/// Incidents whose auto-close deadline has passed at `now`, oldest deadline first.
pub async fn due_auto_close(
    conn: &impl ConnectionTrait,
    now: i64,
    limit: u64,
) -> Result<Vec<Incident>, Error> {
    let query = Entity::find()
        .filter(Column::AutoCloseAt.lte(now))
        .order_by_asc(Column::AutoCloseAt)
        .limit(limit);
    super::decoded(conn, query, Incident::from_row).await
}
