//! The queries both ticket tables share, written once over their common columns.
use std::pin::Pin;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    IntoActiveModel, Order, PaginatorTrait, PartialModelTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, Value,
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
    const STATUS: Self::Column;
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
    const STATUS: incident::Column = incident::Column::Status;
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
    const STATUS: consultation::Column = consultation::Column::Status;
    const CREATED_AT: consultation::Column = consultation::Column::CreatedAt;
    const TIE: consultation::Column = consultation::Column::Id;
}

/// The validated filters of a ticket list (ListIncidents, ListConsultations,
/// their reports), as conditions on their table.
pub trait TicketFilter: Clone {
    type Table: TicketTable;
    fn apply(&self, query: Select<Self::Table>) -> Select<Self::Table>;
    /// The created_at bounds `[from, to)`, for keyset pages to narrow.
    fn created_range(&mut self) -> (&mut Option<i64>, &mut Option<i64>);
}

type Model<F> = <<F as TicketFilter>::Table as EntityTrait>::Model;

/// One page of the rows `filter` matches, in (created_at, tie) order, after
/// `cursor` (the last row of the previous page: its created_at and tie).
pub async fn page<F: TicketFilter>(
    conn: &impl ConnectionTrait,
    filter: &F,
    descending: bool,
    cursor: Option<(i64, impl Into<Value>)>,
    limit: u64,
) -> Result<Vec<Model<F>>, Error> {
    let mut filter = filter.clone();
    let (from, to) = filter.created_range();
    (*from, *to) = seek_range(*from, *to, cursor.as_ref().map(|(at, _)| *at), descending);
    let mut query = filter.apply(F::Table::find());
    if let Some((at, tie)) = cursor {
        use sea_orm::sea_query::ExprTrait as _;
        // A row-value comparison, which both databases answer from the
        // (created_at, tie) index, unlike the equivalent OR of two terms.
        let key = Expr::tuple([Expr::col(F::Table::CREATED_AT), Expr::col(F::Table::TIE)]);
        let after = Expr::tuple([Expr::val(at), Expr::val(tie)]);
        query = query.filter(if descending {
            key.lt(after)
        } else {
            key.gt(after)
        });
    }
    let order = if descending { Order::Desc } else { Order::Asc };
    query
        .order_by(F::Table::CREATED_AT, order.clone())
        .order_by(F::Table::TIE, order)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)
}

/// How many tickets match `filter`.
pub async fn count<F: TicketFilter>(conn: &impl ConnectionTrait, filter: &F) -> Result<i64, Error>
where
    Model<F>: Sync,
{
    let n = filter
        .apply(F::Table::find())
        .count(conn)
        .await
        .map_err(db_error)?;
    i64::try_from(n).map_err(|e| Error::Internal(e.into()))
}

/// How many tickets per status match `filter`.
pub async fn count_by_status<F: TicketFilter>(
    conn: &impl ConnectionTrait,
    filter: &F,
) -> Result<Vec<(String, i64)>, Error> {
    use sea_orm::sea_query::ExprTrait as _;
    filter
        .apply(F::Table::find())
        .select_only()
        .column(F::Table::STATUS)
        .column_as(Expr::col(F::Table::ID).count(), "n")
        .group_by(F::Table::STATUS)
        .into_tuple::<(String, i64)>()
        .all(conn)
        .await
        .map_err(db_error)
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

/// The projection `P` of every row `filter` matches, in creation order, as
/// one query whose rows are decoded as they are consumed (exports: no
/// per-page round trips, nothing held but the rows in flight).
pub async fn stream<'a, F, P>(
    txn: &'a DatabaseTransaction,
    filter: &F,
) -> Result<RowStream<'a, P>, Error>
where
    F: TicketFilter,
    P: PartialModelTrait + Send + 'a,
{
    let rows = filter
        .apply(F::Table::find())
        .order_by_asc(F::Table::CREATED_AT)
        .order_by_asc(F::Table::TIE)
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
