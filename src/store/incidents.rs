//! Incident rows: insert, optimistic updates, filtered keyset listing.
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use super::db_error;
use super::entity::incident::{self, Column, Entity};
use super::tickets::{self, TicketFilter};
use crate::domain::Error;

/// The filters of ListIncidents, already validated.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// A requester's account; `None` for agents.
    pub account: Option<String>,
    /// Empty means any.
    pub statuses: Vec<&'static str>,
    pub kinds: Vec<&'static str>,
    pub carrier: Option<String>,
    pub category: Option<String>,
    pub assignee_id: Option<String>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    /// A LIKE pattern over `search_text` (see `domain::text::like_contains`).
    pub search_pattern: Option<String>,
}

impl TicketFilter for IncidentFilter {
    type Table = Entity;

    fn created_range(&mut self) -> (&mut Option<i64>, &mut Option<i64>) {
        (&mut self.created_from, &mut self.created_to)
    }

    fn apply(&self, mut query: Select<Entity>) -> Select<Entity> {
        if let Some(account) = &self.account {
            query = query.filter(Column::Account.eq(account.as_str()));
        }
        if !self.statuses.is_empty() {
            query = query.filter(Column::Status.is_in(self.statuses.iter().copied()));
        }
        if !self.kinds.is_empty() {
            query = query.filter(Column::Kind.is_in(self.kinds.iter().copied()));
        }
        if let Some(carrier) = &self.carrier {
            query = query.filter(Column::CarrierCode.eq(carrier.as_str()));
        }
        if let Some(category) = &self.category {
            query = query.filter(Column::CategoryCode.eq(category.as_str()));
        }
        if let Some(assignee) = &self.assignee_id {
            query = query.filter(Column::AssigneeId.eq(assignee.as_str()));
        }
        if let Some(from) = self.created_from {
            query = query.filter(Column::CreatedAt.gte(from));
        }
        if let Some(to) = self.created_to {
            query = query.filter(Column::CreatedAt.lt(to));
        }
        if let Some(pattern) = &self.search_pattern {
            query = query.filter(
                Expr::col((incident::Entity, Column::SearchText))
                    .like(LikeExpr::new(pattern.as_str()).escape('\\')),
            );
        }
        query
    }
}

/// A position in the (created_at, number) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub number: i64,
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    model: incident::Model,
) -> Result<(), sea_orm::DbErr> {
    tickets::insert::<Entity>(conn, model).await
}

pub async fn find_by_id(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<incident::Model>, Error> {
    tickets::find_by_id::<Entity>(conn, id).await
}

pub async fn find_by_number(
    conn: &impl ConnectionTrait,
    number: i64,
) -> Result<Option<incident::Model>, Error> {
    tickets::find_by_number::<Entity>(conn, number).await
}

pub async fn find_by_idempotency_key(
    conn: &impl ConnectionTrait,
    account: &str,
    key: &str,
) -> Result<Option<incident::Model>, Error> {
    tickets::find_by_idempotency_key::<Entity>(conn, account, key).await
}

/// Writes `model` if the stored version is still `expected_version`.
pub async fn update_versioned(
    conn: &impl ConnectionTrait,
    model: &incident::Model,
    expected_version: i64,
) -> Result<bool, Error> {
    tickets::update_versioned::<Entity>(conn, model, &model.id, expected_version).await
}

/// Inserts many rows at once (seeding, benchmarks). Events are not written.
pub async fn insert_many(
    conn: &impl ConnectionTrait,
    models: Vec<incident::Model>,
) -> Result<(), Error> {
    if models.is_empty() {
        return Ok(());
    }
    Entity::insert_many(models.into_iter().map(IntoActiveModel::into_active_model))
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
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
) -> Result<Vec<incident::Model>, Error> {
    Entity::find()
        .filter(Column::AutoCloseAt.lte(now))
        .order_by_asc(Column::AutoCloseAt)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Statuses whose estimate can still be breached (MISSING_DATA is paused).
const OPEN_UNPAUSED: [&str; 3] = ["NEW_TICKET", "IN_PROGRESS", "PRE_APPROVED"];

fn breach_candidates() -> Select<Entity> {
    Entity::find()
        .filter(Column::BreachedAt.is_null())
        .filter(Column::PausedSince.is_null())
        .filter(Column::Status.is_in(OPEN_UNPAUSED))
}

/// The earliest estimate an open incident may still breach.
pub async fn next_breach(conn: &impl ConnectionTrait) -> Result<Option<i64>, Error> {
    let next: Option<Option<i64>> = breach_candidates()
        .select_only()
        .column_as(Expr::col(Column::EstimatedResolutionAt).min(), "next")
        .into_tuple()
        .one(conn)
        .await
        .map_err(db_error)?;
    Ok(next.flatten())
}

/// Open incidents whose estimate has passed at `now` without a breach mark.
pub async fn due_breach(
    conn: &impl ConnectionTrait,
    now: i64,
    limit: u64,
) -> Result<Vec<incident::Model>, Error> {
    breach_candidates()
        .filter(Column::EstimatedResolutionAt.lte(now))
        .order_by_asc(Column::EstimatedResolutionAt)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Sets the breach mark if it is still unset; false when it was already set.
pub async fn mark_breached(conn: &impl ConnectionTrait, id: &str, at: i64) -> Result<bool, Error> {
    tickets::mark_breached::<Entity>(conn, id, at).await
}
