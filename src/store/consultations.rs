//! Consultation rows: insert, optimistic updates, filtered keyset listing.
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};

use super::db_error;
use super::entity::consultation::{self, Column, Entity};
use super::tickets::{self, TicketFilter};
use crate::domain::Error;

/// The filters of ListConsultations, already validated.
#[derive(Debug, Clone, Default)]
pub struct ConsultationFilter {
    /// A requester's account; `None` for agents.
    pub account: Option<String>,
    pub statuses: Vec<&'static str>,
    pub complexities: Vec<&'static str>,
    pub category: Option<String>,
    pub assignee_id: Option<String>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
    /// A LIKE pattern over `search_text`.
    pub search_pattern: Option<String>,
}

impl TicketFilter for ConsultationFilter {
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
        if !self.complexities.is_empty() {
            query = query.filter(Column::Complexity.is_in(self.complexities.iter().copied()));
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
                Expr::col((Entity, Column::SearchText))
                    .like(LikeExpr::new(pattern.as_str()).escape('\\')),
            );
        }
        query
    }
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    model: consultation::Model,
) -> Result<(), sea_orm::DbErr> {
    tickets::insert::<Entity>(conn, model).await
}

pub async fn find_by_id(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<consultation::Model>, Error> {
    tickets::find_by_id::<Entity>(conn, id).await
}

pub async fn find_by_number(
    conn: &impl ConnectionTrait,
    number: i64,
) -> Result<Option<consultation::Model>, Error> {
    tickets::find_by_number::<Entity>(conn, number).await
}

pub async fn find_by_idempotency_key(
    conn: &impl ConnectionTrait,
    account: &str,
    key: &str,
) -> Result<Option<consultation::Model>, Error> {
    tickets::find_by_idempotency_key::<Entity>(conn, account, key).await
}

/// Writes `model` if the stored version is still `expected_version`.
pub async fn update_versioned(
    conn: &impl ConnectionTrait,
    model: &consultation::Model,
    expected_version: i64,
) -> Result<bool, Error> {
    tickets::update_versioned::<Entity>(conn, model, &model.id, expected_version).await
}

fn breach_candidates() -> Select<Entity> {
    Entity::find()
        .filter(Column::BreachedAt.is_null())
        .filter(Column::Status.ne("SOLVED"))
}

/// The earliest due time an unsolved consultation may still breach.
pub async fn next_breach(conn: &impl ConnectionTrait) -> Result<Option<i64>, Error> {
    let next: Option<Option<i64>> = breach_candidates()
        .select_only()
        .column_as(Expr::col(Column::DueAt).min(), "next")
        .into_tuple()
        .one(conn)
        .await
        .map_err(db_error)?;
    Ok(next.flatten())
}

/// Unsolved consultations past their due time without a breach mark.
pub async fn due_breach(
    conn: &impl ConnectionTrait,
    now: i64,
    limit: u64,
) -> Result<Vec<consultation::Model>, Error> {
    breach_candidates()
        .filter(Column::DueAt.lte(now))
        .order_by_asc(Column::DueAt)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// Sets the breach mark if it is still unset; false when it was already set.
pub async fn mark_breached(conn: &impl ConnectionTrait, id: &str, at: i64) -> Result<bool, Error> {
    tickets::mark_breached::<Entity>(conn, id, at).await
}
