//! The queries both ticket tables share, written once over their common columns.
use std::pin::Pin;

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    IntoActiveModel, Order, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select, Value,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_stream::{Stream, StreamExt};

use super::db_error;
use super::entity::{consultation, incident};
use super::search::Matching;
use crate::domain::ticket::{Criteria, Lookup, Search, Ticket};
use crate::domain::{Code, Error};

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
    const CATEGORY: Self::Column;
    const ASSIGNEE_ID: Self::Column;
    const SEARCH_TEXT: Self::Column;
    const CREATED_AT: Self::Column;
    /// Orders tickets created in the same microsecond (with CREATED_AT, the
    /// order of lists and exports).
    const TIE: Self::Column;
    /// The value of `TIE` (page tokens carry it).
    type Tie: Into<Value>
        + sea_orm::TryGetable
        + Ord
        + Clone
        + Send
        + Sync
        + Serialize
        + DeserializeOwned
        + 'static;
    /// The counter its numbers come from.
    const NUMBERS: &'static str;
}

macro_rules! ticket_table {
    ($table:ident, tie = $tie:ident: $tie_type:ty, numbers = $numbers:ident) => {
        impl TicketTable for $table::Entity {
            const ID: $table::Column = $table::Column::Id;
            const NUMBER: $table::Column = $table::Column::Number;
            const ACCOUNT: $table::Column = $table::Column::Account;
            const IDEMPOTENCY_KEY: $table::Column = $table::Column::IdempotencyKey;
            const VERSION: $table::Column = $table::Column::Version;
            const BREACHED_AT: $table::Column = $table::Column::BreachedAt;
            const STATUS: $table::Column = $table::Column::Status;
            const CATEGORY: $table::Column = $table::Column::CategoryCode;
            const ASSIGNEE_ID: $table::Column = $table::Column::AssigneeId;
            const SEARCH_TEXT: $table::Column = $table::Column::SearchText;
            const CREATED_AT: $table::Column = $table::Column::CreatedAt;
            const TIE: $table::Column = $table::Column::$tie;
            type Tie = $tie_type;
            const NUMBERS: &'static str = super::$numbers;
        }
    };
}

ticket_table!(incident, tie = Number: i64, numbers = INCIDENT_NUMBER);
ticket_table!(consultation, tie = Id: String, numbers = CONSULTATION_NUMBER);

/// The columns of `Header` as a row holds them, under the same names in
/// both tables: `header_of!(row)` reads them into a `Header`.
macro_rules! header_of {
    ($row:expr) => {{
        let row = $row;
        $crate::domain::ticket::Header {
            id: row.id,
            number: Option::from(row.number),
            account: row.account,
            requester: $crate::domain::ticket::Person {
                id: row.requester_id,
                name: row.requester_name,
            },
            assignee: row
                .assignee_id
                .zip(row.assignee_name)
                .map(|(id, name)| $crate::domain::ticket::Person { id, name }),
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            breached_at: row.breached_at,
            idempotency: row
                .idempotency_key
                .zip(row.request_hash)
                .map(|(key, request_hash)| $crate::domain::ticket::Idempotency {
                    key,
                    request_hash,
                }),
            contacts: $crate::domain::ticket::Contacts {
                requester_email: row.requester_email,
                locale: row
                    .notify_locale
                    .as_deref()
                    .map($crate::domain::principal::Locale::parse)
                    .unwrap_or_default(),
                assignee_email: row.assignee_email,
            },
        }
    }};
}
pub(crate) use header_of;

/// A row of `$model` from a `Header`, its search text and the columns
/// of its own type: `row_of!(model::Model, header, search_text, number, { … })`.
macro_rules! row_of {
    ($model:path, $header:expr, $search_text:expr, $number:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let h: &$crate::domain::ticket::Header = $header;
        $model {
            id: h.id.clone(),
            number: $number,
            account: h.account.clone(),
            requester_id: h.requester.id.clone(),
            requester_name: h.requester.name.clone(),
            assignee_id: h.assignee.as_ref().map(|p| p.id.clone()),
            assignee_name: h.assignee.as_ref().map(|p| p.name.clone()),
            requester_email: h.contacts.requester_email.clone(),
            notify_locale: Some(h.contacts.locale.as_str().to_owned()),
            assignee_email: h.contacts.assignee_email.clone(),
            version: h.version,
            created_at: h.created_at,
            updated_at: h.updated_at,
            breached_at: h.breached_at,
            idempotency_key: h.idempotency.as_ref().map(|i| i.key.clone()),
            request_hash: h.idempotency.as_ref().map(|i| i.request_hash.clone()),
            search_text: $search_text,
            $($field: $value),*
        }
    }};
}
pub(crate) use row_of;

type Row<E> = <E as EntityTrait>::Model;
/// The tie-breaking value of a ticket type's order (see `TicketTable::TIE`).
pub type Tie<T> = <<T as Stored>::Table as TicketTable>::Tie;

/// A ticket type as stored: its table, the filters of its lists, and the
/// one mapping between its rows and its domain type.
pub trait Stored: Ticket {
    type Table: TicketTable<
            Model: IntoActiveModel<<Self::Table as EntityTrait>::ActiveModel> + Sync,
            ActiveModel: Send,
        >;
    type Filter: TicketFilter<Table = Self::Table>;

    /// A stored row as the domain type; a row the domain cannot read (an
    /// unknown status, say) is INTERNAL, here and nowhere else.
    fn from_row(row: Row<Self::Table>) -> Result<Self, Error>;
    fn to_row(&self) -> Row<Self::Table>;
    fn tie(&self) -> Tie<Self>;
    /// Tickets whose target can still be breached, and that target's column.
    fn breach_candidates() -> (Select<Self::Table>, <Self::Table as EntityTrait>::Column);
}

/// A ticket's stored name that must be one of `C`'s (see `parse_stored`).
pub fn parse_code<C: Code>(what: &str, id: &str, text: &str) -> Result<C, Error> {
    super::parse_stored("ticket", id, what, text)
}

/// The filters every ticket list has, already validated.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A requester's account; `None` for agents.
    pub account: Option<String>,
    /// Empty means any.
    pub statuses: Vec<&'static str>,
    pub criteria: Criteria,
    /// The free-text search of `criteria.text`, with the codes its term
    /// names (set by the workflow, which knows the labels).
    pub search: Option<Search>,
    /// How `search` is matched (see `search::predicate`).
    pub matching: Matching,
}

impl Filter {
    /// Only the account and the status narrow it: its counts are the
    /// `ticket_counts` table's.
    pub fn is_plain(&self) -> bool {
        let c = &self.criteria;
        self.search.is_none()
            && c.category.is_none()
            && c.assignee_id.is_none()
            && c.created_from.is_none()
            && c.created_to.is_none()
    }

    pub fn apply<E: TicketTable>(&self, mut query: Select<E>) -> Select<E> {
        let c = &self.criteria;
        if let Some(account) = &self.account {
            query = query.filter(E::ACCOUNT.eq(account.as_str()));
        }
        if !self.statuses.is_empty() {
            query = query.filter(E::STATUS.is_in(self.statuses.iter().copied()));
        }
        if let Some(category) = &c.category {
            query = query.filter(E::CATEGORY.eq(category.as_str()));
        }
        if let Some(assignee) = &c.assignee_id {
            query = query.filter(E::ASSIGNEE_ID.eq(assignee.as_str()));
        }
        if let Some(from) = c.created_from {
            query = query.filter(E::CREATED_AT.gte(from));
        }
        if let Some(to) = c.created_to {
            query = query.filter(E::CREATED_AT.lt(to));
        }
        if let Some(search) = &self.search {
            query = query.filter(super::search::predicate::<E>(search, self.matching));
        }
        query
    }
}

/// The validated filters of one ticket type's lists and reports.
pub trait TicketFilter: Clone + Send + Sync + 'static {
    type Table: TicketTable;
    fn common(&mut self) -> &mut Filter;
    fn apply(&self, query: Select<Self::Table>) -> Select<Self::Table>;
    /// Nothing of its own narrows it (see `Filter::is_plain`).
    fn is_plain(&self) -> bool;
}

/// One page of the tickets `filter` matches, in (created_at, tie) order,
/// after `cursor` (the last ticket of the previous page: created_at, tie).
pub async fn page<T: Stored>(
    conn: &impl ConnectionTrait,
    filter: &T::Filter,
    descending: bool,
    cursor: Option<(i64, Tie<T>)>,
    limit: u64,
) -> Result<Vec<T>, Error> {
    let mut filter = filter.clone();
    let common = &mut filter.common().criteria;
    (common.created_from, common.created_to) = seek_range(
        common.created_from,
        common.created_to,
        cursor.as_ref().map(|(at, _)| *at),
        descending,
    );
    let mut query = filter.apply(T::Table::find());
    if let Some((at, tie)) = cursor {
        use sea_orm::sea_query::ExprTrait as _;
        // A row-value comparison, which both databases answer from the
        // (created_at, tie) index, unlike the equivalent OR of two terms.
        let key = Expr::tuple([Expr::col(T::Table::CREATED_AT), Expr::col(T::Table::TIE)]);
        let after = Expr::tuple([Expr::val(at), Expr::val(tie)]);
        query = query.filter(if descending {
            key.lt(after)
        } else {
            key.gt(after)
        });
    }
    let order = if descending { Order::Desc } else { Order::Asc };
    let query = query
        .order_by(T::Table::CREATED_AT, order.clone())
        .order_by(T::Table::TIE, order)
        .limit(limit);
    super::decoded(conn, query, T::from_row).await
}

/// How many tickets match `filter`.
pub async fn count<F: TicketFilter>(conn: &impl ConnectionTrait, filter: &F) -> Result<i64, Error>
where
    Row<F::Table>: Sync,
{
    let n = filter
        .apply(F::Table::find())
        .count(conn)
        .await
        .map_err(db_error)?;
    i64::try_from(n).map_err(|e| Error::Internal(e.into()))
}

/// How many tickets per status match `filter`.
pub async fn count_by_status<T: Stored>(
    conn: &impl ConnectionTrait,
    filter: &T::Filter,
) -> Result<Vec<(T::Status, i64)>, Error> {
    use sea_orm::sea_query::ExprTrait as _;
    let counts: Vec<(String, i64)> = filter
        .apply(T::Table::find())
        .select_only()
        .column(T::Table::STATUS)
        // COUNT(*), not COUNT(id): the order index holds the status, so a
        // date range is counted from the index alone.
        .column_as(Expr::col(sea_orm::sea_query::Asterisk).count(), "n")
        .group_by(T::Table::STATUS)
        .into_tuple()
        .all(conn)
        .await
        .map_err(db_error)?;
    counts
        .into_iter()
        .map(|(status, n)| Ok((parse_code("status", "counted", &status)?, n)))
        .collect()
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

/// Every ticket `filter` matches, in creation order, as one query whose
/// rows are decoded as they are consumed (exports: no per-page round trips,
/// nothing held but the rows in flight).
pub async fn stream<'a, T: Stored>(
    txn: &'a DatabaseTransaction,
    filter: &T::Filter,
) -> Result<RowStream<'a, T>, Error> {
    let rows = filter
        .apply(T::Table::find())
        .order_by_asc(T::Table::CREATED_AT)
        .order_by_asc(T::Table::TIE)
        .stream(txn)
        .await
        .map_err(db_error)?;
    Ok(Box::pin(
        rows.map(|row| row.map_err(db_error).and_then(T::from_row)),
    ))
}

/// Inserts a new ticket; the raw error, so that the caller can tell a
/// duplicate idempotency key from a failure.
pub async fn insert<T: Stored>(conn: &impl ConnectionTrait, ticket: &T) -> Result<(), DbErr> {
    T::Table::insert(ticket.to_row().into_active_model())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

pub async fn find<T: Stored>(
    conn: &impl ConnectionTrait,
    lookup: &Lookup,
) -> Result<Option<T>, Error> {
    let query = match lookup {
        Lookup::Id(id) => T::Table::find().filter(T::Table::ID.eq(id.as_str())),
        Lookup::Number(n) => T::Table::find().filter(T::Table::NUMBER.eq(*n)),
    };
    let row = query.one(conn).await.map_err(db_error)?;
    row.map(T::from_row).transpose()
}

pub async fn find_by_idempotency_key<T: Stored>(
    conn: &impl ConnectionTrait,
    account: &str,
    key: &str,
) -> Result<Option<T>, Error> {
    let row = T::Table::find()
        .filter(T::Table::ACCOUNT.eq(account))
        .filter(T::Table::IDEMPOTENCY_KEY.eq(key))
        .one(conn)
        .await
        .map_err(db_error)?;
    row.map(T::from_row).transpose()
}

/// Writes `ticket` (its version already bumped) if the stored version is
/// still `expected_version`; false when someone else got there first.
pub async fn update_versioned<T: Stored>(
    conn: &impl ConnectionTrait,
    ticket: &T,
    expected_version: i64,
) -> Result<bool, Error>
where
    <T::Table as EntityTrait>::ActiveModel: ActiveModelTrait<Entity = T::Table>,
{
    // Every column is written: reset_all() marks them all as set.
    let active = ticket.to_row().into_active_model().reset_all();
    let result = T::Table::update_many()
        .set(active)
        .filter(T::Table::ID.eq(ticket.header().id.as_str()))
        .filter(T::Table::VERSION.eq(expected_version))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

/// Sets the breach mark if it is still unset; false when it was already set.
pub async fn mark_breached<T: Stored>(
    conn: &impl ConnectionTrait,
    id: &str,
    at: i64,
) -> Result<bool, Error> {
    let result = T::Table::update_many()
        .col_expr(T::Table::BREACHED_AT, Expr::val(at))
        .filter(T::Table::ID.eq(id))
        .filter(T::Table::BREACHED_AT.is_null())
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

/// The earliest target an open ticket may still breach.
pub async fn next_breach<T: Stored>(conn: &impl ConnectionTrait) -> Result<Option<i64>, Error> {
    use sea_orm::sea_query::ExprTrait as _;
    let (candidates, target) = T::breach_candidates();
    let next: Option<Option<i64>> = candidates
        .select_only()
        .column_as(Expr::col(target).min(), "next")
        .into_tuple()
        .one(conn)
        .await
        .map_err(db_error)?;
    Ok(next.flatten())
}

/// Open tickets whose target has passed at `now` without a breach mark,
/// earliest first.
pub async fn due_breach<T: Stored>(
    conn: &impl ConnectionTrait,
    now: i64,
    limit: u64,
) -> Result<Vec<T>, Error> {
    let (candidates, target) = T::breach_candidates();
    let query = candidates
        .filter(target.lte(now))
        .order_by_asc(target)
        .limit(limit);
    super::decoded(conn, query, T::from_row).await
}

/// Inserts the rows (`Stored::to_row`) of tickets built outside the workflow
/// (seeding, benchmarks) in multi-row INSERTs, then moves the numbering past
/// their largest number, so that tickets filed afterwards keep counting. No
/// events are written.
pub async fn insert_many<T: Stored>(
    conn: &impl ConnectionTrait,
    rows: Vec<Row<T::Table>>,
) -> Result<(), Error> {
    use sea_orm::sea_query::{ExprTrait as _, Query, ValueType};
    use sea_orm::{Iterable, ModelTrait, QueryTrait};
    let last = rows
        .iter()
        .filter_map(|row| <Option<i64> as ValueType>::try_from(row.get(T::Table::NUMBER)).ok()?)
        .max();
    // SQLite binds at most 32,766 parameters per statement (PostgreSQL 65,535).
    let per_statement = (32_766 / <T::Table as EntityTrait>::Column::iter().count()).max(1);
    let backend = conn.get_database_backend();
    let mut rows = rows.into_iter().map(IntoActiveModel::into_active_model);
    let mut next_statement = || {
        let chunk: Vec<_> = rows.by_ref().take(per_statement).collect();
        (!chunk.is_empty()).then(|| T::Table::insert_many(chunk).build(backend))
    };
    // Each statement is built while the previous one runs: building took
    // as long as SQLite took to run it.
    let mut pending = next_statement();
    while let Some(statement) = pending {
        let (done, next) =
            futures_util::future::join(conn.execute_raw(statement), async { next_statement() })
                .await;
        done.map_err(db_error)?;
        pending = next;
    }
    let Some(last) = last else {
        return Ok(());
    };
    let value = Expr::col(super::Counters::Value);
    // CASE, not GREATEST or MAX: one spelling for both databases.
    let moved_on = Query::update()
        .table(super::Counters::Table)
        .value(
            super::Counters::Value,
            Expr::case(value.clone().lt(last), last).finally(value),
        )
        .and_where(Expr::col(super::Counters::Name).eq(T::Table::NUMBERS))
        .to_owned();
    conn.execute(&moved_on).await.map_err(db_error)?;
    Ok(())
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
