//! Consultation rows: insert, optimistic updates, filtered keyset listing.
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Select,
};

use super::db_error;
use super::entity::consultation::{self, Column, Entity};
use super::tickets::{self, RowStream};
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

impl ConsultationFilter {
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

/// The export projection of every row matching `filter`, in (created_at,
/// id) order, streamed.
pub async fn stream<'a>(
    txn: &'a DatabaseTransaction,
    filter: &ConsultationFilter,
) -> Result<RowStream<'a, consultation::ExportRow>, Error> {
    tickets::stream::<Entity, _>(txn, filter.apply(Entity::find())).await
}

/// One page in (created_at, id) order, after `cursor`.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &ConsultationFilter,
    descending: bool,
    cursor: Option<(i64, String)>,
    limit: u64,
) -> Result<Vec<consultation::Model>, Error> {
    let mut filter = filter.clone();
    (filter.created_from, filter.created_to) = tickets::seek_range(
        filter.created_from,
        filter.created_to,
        cursor.as_ref().map(|(at, _)| *at),
        descending,
    );
    let mut query = filter.apply(Entity::find());
    if let Some((at, id)) = cursor {
        // A row-value comparison, answered from the (created_at, id) index.
        let key = Expr::tuple([Expr::col(Column::CreatedAt), Expr::col(Column::Id)]);
        let after = Expr::tuple([Expr::val(at), Expr::val(id)]);
        query = query.filter(if descending {
            key.lt(after)
        } else {
            key.gt(after)
        });
    }
    query = if descending {
        query
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
    } else {
        query
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
    };
    query.limit(limit).all(conn).await.map_err(db_error)
}

/// How many consultations match `filter`.
pub async fn count(conn: &impl ConnectionTrait, filter: &ConsultationFilter) -> Result<i64, Error> {
    let n = filter
        .apply(Entity::find())
        .count(conn)
        .await
        .map_err(db_error)?;
    i64::try_from(n).map_err(|e| Error::Internal(e.into()))
}

/// How many consultations per status match `filter`.
pub async fn count_by_status(
    conn: &impl ConnectionTrait,
    filter: &ConsultationFilter,
) -> Result<Vec<(String, i64)>, Error> {
    filter
        .apply(Entity::find())
        .select_only()
        .column(Column::Status)
        .column_as(Expr::col(Column::Id).count(), "n")
        .group_by(Column::Status)
        .into_tuple::<(String, i64)>()
        .all(conn)
        .await
        .map_err(db_error)
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
