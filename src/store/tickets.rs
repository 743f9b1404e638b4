//! The queries both ticket tables share, written once over their common columns.
use std::pin::Pin;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    IntoActiveModel, PartialModelTrait, QueryFilter, QueryOrder, Select,
};
use tokio_stream::{Stream, StreamExt};

use super::db_error;
use super::entity::{consultation, incident};
use crate::domain::Error;

/// The rows of one query, read as the consumer asks for them.
pub type RowStream<'a, M> = Pin<Box<dyn Stream<Item = Result<M, Error>> + Send + 'a>>;

/// A ticket table: the columns the shared queries use.
pub trait TicketTable: EntityTrait {
    const ID: Self::Column;
    const NUMBER: Self::Column;
    const ACCOUNT: Self::Column;
    const IDEMPOTENCY_KEY: Self::Column;
    const VERSION: Self::Column;
    const BREACHED_AT: Self::Column;
    const CREATED_AT: Self::Column;
    /// Orders tickets created in the same microsecond (with CREATED_AT, the
    /// order of lists and exports).
    const TIE: Self::Column;
}

impl TicketTable for incident::Entity {
    const ID: incident::Column = incident::Column::Id;
    const NUMBER: incident::Column = incident::Column::Number;
    const ACCOUNT: incident::Column = incident::Column::Account;
    const IDEMPOTENCY_KEY: incident::Column = incident::Column::IdempotencyKey;
    const VERSION: incident::Column = incident::Column::Version;
    const BREACHED_AT: incident::Column = incident::Column::BreachedAt;
    const CREATED_AT: incident::Column = incident::Column::CreatedAt;
    const TIE: incident::Column = incident::Column::Number;
}

impl TicketTable for consultation::Entity {
    const ID: consultation::Column = consultation::Column::Id;
    const NUMBER: consultation::Column = consultation::Column::Number;
    const ACCOUNT: consultation::Column = consultation::Column::Account;
    const IDEMPOTENCY_KEY: consultation::Column = consultation::Column::IdempotencyKey;
    const VERSION: consultation::Column = consultation::Column::Version;
    const BREACHED_AT: consultation::Column = consultation::Column::BreachedAt;
    const CREATED_AT: consultation::Column = consultation::Column::CreatedAt;
    const TIE: consultation::Column = consultation::Column::Id;
}

/// The created_at range of a keyset page: `[from, to)` narrowed so that it
/// starts (or, descending, ends) at the cursor's created_at. The row-value
/// comparison `(created_at, tie) > cursor` still picks the exact row, but
/// SQLite seeks the index only on a plain bound, and with the filter's own
/// bound in place it scanned from the range's start on every page, which made
/// deep pages (and whole exports) quadratic.
pub fn seek_range(
    from: Option<i64>,
    to: Option<i64>,
    cursor_at: Option<i64>,
    descending: bool,
) -> (Option<i64>, Option<i64>) {
    match (cursor_at, descending) {
        (None, _) => (from, to),
        (Some(at), false) => (Some(from.map_or(at, |f| f.max(at))), to),
        (Some(at), true) => {
            let end = at.saturating_add(1);
            (from, Some(to.map_or(end, |t| t.min(end))))
        }
    }
}

/// The projection `P` of every row `query` selects, in creation order, as one
/// query whose rows are decoded as they are consumed (exports: no per-page
/// round trips, nothing held but the rows in flight).
pub async fn stream<'a, E, P>(
    txn: &'a DatabaseTransaction,
    query: Select<E>,
) -> Result<RowStream<'a, P>, Error>
where
    E: TicketTable,
    P: PartialModelTrait + Send + 'a,
{
    let rows = query
        .order_by_asc(E::CREATED_AT)
        .order_by_asc(E::TIE)
        .into_partial_model::<P>()
        .stream(txn)
        .await
        .map_err(db_error)?;
    Ok(Box::pin(rows.map(|row| row.map_err(db_error))))
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

#[cfg(test)]
mod tests {
    use super::seek_range;

    #[test]
    fn a_cursor_narrows_the_bound_it_moves_past() {
        assert_eq!(
            seek_range(Some(10), Some(90), None, false),
            (Some(10), Some(90))
        );
        assert_eq!(
            seek_range(Some(10), Some(90), Some(50), false),
            (Some(50), Some(90))
        );
        assert_eq!(seek_range(None, None, Some(50), false), (Some(50), None));
        // Descending pages end just after the cursor's instant (`to` is exclusive).
        assert_eq!(
            seek_range(Some(10), Some(90), Some(50), true),
            (Some(10), Some(51))
        );
        assert_eq!(seek_range(None, None, Some(50), true), (None, Some(51)));
        // A cursor outside the range never widens it.
        assert_eq!(
            seek_range(Some(60), Some(90), Some(50), false),
            (Some(60), Some(90))
        );
        assert_eq!(
            seek_range(Some(10), Some(40), Some(50), true),
            (Some(10), Some(40))
        );
    }
}
