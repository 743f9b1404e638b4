//! The queries both ticket tables share, written once over their common columns.
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
};

use super::db_error;
use super::entity::{consultation, incident};
use crate::domain::Error;

/// A ticket table: the columns the shared queries use.
pub trait TicketTable: EntityTrait {
    const ID: Self::Column;
    const NUMBER: Self::Column;
    const ACCOUNT: Self::Column;
    const IDEMPOTENCY_KEY: Self::Column;
    const VERSION: Self::Column;
    const BREACHED_AT: Self::Column;
}

impl TicketTable for incident::Entity {
    const ID: incident::Column = incident::Column::Id;
    const NUMBER: incident::Column = incident::Column::Number;
    const ACCOUNT: incident::Column = incident::Column::Account;
    const IDEMPOTENCY_KEY: incident::Column = incident::Column::IdempotencyKey;
    const VERSION: incident::Column = incident::Column::Version;
    const BREACHED_AT: incident::Column = incident::Column::BreachedAt;
}

impl TicketTable for consultation::Entity {
    const ID: consultation::Column = consultation::Column::Id;
    const NUMBER: consultation::Column = consultation::Column::Number;
    const ACCOUNT: consultation::Column = consultation::Column::Account;
    const IDEMPOTENCY_KEY: consultation::Column = consultation::Column::IdempotencyKey;
    const VERSION: consultation::Column = consultation::Column::Version;
    const BREACHED_AT: consultation::Column = consultation::Column::BreachedAt;
}

pub async fn insert<E: TicketTable>(
    conn: &impl ConnectionTrait,
    model: E::Model,
) -> Result<(), sea_orm::DbErr>
where
    E::Model: IntoActiveModel<E::ActiveModel>,
{
    E::insert(model.into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn find_by_id<E: TicketTable>(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<E::Model>, Error> {
    E::find()
        .filter(E::ID.eq(id))
        .one(conn)
        .await
        .map_err(db_error)
}

pub async fn find_by_number<E: TicketTable>(
    conn: &impl ConnectionTrait,
    number: i64,
) -> Result<Option<E::Model>, Error> {
    E::find()
        .filter(E::NUMBER.eq(number))
        .one(conn)
        .await
        .map_err(db_error)
}

pub async fn find_by_idempotency_key<E: TicketTable>(
    conn: &impl ConnectionTrait,
    account: &str,
    key: &str,
) -> Result<Option<E::Model>, Error> {
    E::find()
        .filter(E::ACCOUNT.eq(account))
        .filter(E::IDEMPOTENCY_KEY.eq(key))
        .one(conn)
        .await
        .map_err(db_error)
}

/// Writes `model` (its version already bumped) if the stored version is
/// still `expected_version`; false when someone else got there first.
pub async fn update_versioned<E: TicketTable>(
    conn: &impl ConnectionTrait,
    model: &E::Model,
    id: &str,
    expected_version: i64,
) -> Result<bool, Error>
where
    E::Model: IntoActiveModel<E::ActiveModel> + Clone,
    E::ActiveModel: ActiveModelTrait<Entity = E>,
{
    // Every column is written: reset_all() marks them all as set.
    let active = model.clone().into_active_model().reset_all();
    let result = E::update_many()
        .set(active)
        .filter(E::ID.eq(id))
        .filter(E::VERSION.eq(expected_version))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

/// Sets the breach mark if it is still unset; false when it was already set.
pub async fn mark_breached<E: TicketTable>(
    conn: &impl ConnectionTrait,
    id: &str,
    at: i64,
) -> Result<bool, Error> {
    let result = E::update_many()
        .col_expr(E::BREACHED_AT, Expr::val(at))
        .filter(E::ID.eq(id))
        .filter(E::BREACHED_AT.is_null())
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}
