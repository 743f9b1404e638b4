//! Webhook endpoints and the transactional outbox (migration
//! `m20261129_000008_outbox`). Rows are written by `service::notify` in the
//! transaction of their event and worked off by `service::dispatcher`.
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};

use super::{db_error, writer};
use crate::domain::notify::{Channel, Delivery, DeliveryFilter, DeliveryState, Endpoint, Route};
use crate::domain::{Code, Error};

pub mod endpoint {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_endpoints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub account: String,
        pub url: String,
        pub secret: String,
        /// Comma-separated; empty for every type.
        pub event_types: String,
        pub paused: bool,
        pub created_by: String,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod delivery {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub channel: String,
        pub endpoint_id: String,
        pub target: String,
        pub ticket_id: String,
        pub ticket_type: String,
        pub account: String,
        pub sequence: i64,
        pub event_type: String,
        pub payload: String,
        pub state: String,
        pub attempts: i64,
        pub next_attempt_at: i64,
        pub retry_from: i64,
        pub last_error: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
        pub delivered_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn endpoint_of(m: endpoint::Model) -> Endpoint {
    Endpoint {
        id: m.id,
        account: m.account,
        url: m.url,
        secret: m.secret,
        event_types: m
            .event_types
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        paused: m.paused,
        created_by: m.created_by,
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// A delivery's stored name that must be one of `C`'s (see `parse_stored`).
fn parse_code<C: Code>(what: &str, id: &str, text: &str) -> Result<C, Error> {
    super::parse_stored("delivery", id, what, text)
}

fn delivery_of(m: delivery::Model) -> Result<Delivery, Error> {
    let state = parse_code("state", &m.id, &m.state)?;
    let channel = parse_code("channel", &m.id, &m.channel)?;
    let ticket_type = parse_code("ticket type", &m.id, &m.ticket_type)?;
    let route = Route {
        id: m.id,
        channel,
        endpoint_id: m.endpoint_id,
        target: m.target,
        ticket_id: m.ticket_id,
        ticket_type,
        account: m.account,
        sequence: m.sequence,
        event_type: m.event_type,
    };
    Ok(Delivery {
        route,
        state,
        attempts: m.attempts,
        next_attempt_at: m.next_attempt_at,
        retry_from: m.retry_from,
        last_error: m.last_error,
        created_at: m.created_at,
        updated_at: m.updated_at,
        delivered_at: m.delivered_at,
    })
}

/// A new outbox row.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub route: Route,
    pub payload: String,
    pub state: DeliveryState,
    pub at: i64,
}

pub async fn insert_endpoint(conn: &impl ConnectionTrait, e: &Endpoint) -> Result<(), Error> {
    writer::forget_endpoints();
    let active = endpoint::ActiveModel {
        id: Set(e.id.clone()),
        account: Set(e.account.clone()),
        url: Set(e.url.clone()),
        secret: Set(e.secret.clone()),
        event_types: Set(e.event_types.join(",")),
        paused: Set(e.paused),
        created_by: Set(e.created_by.clone()),
        created_at: Set(e.created_at),
        updated_at: Set(e.updated_at),
    };
    endpoint::Entity::insert(active)
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn find_endpoint(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<Endpoint>, Error> {
    let found = endpoint::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await
        .map_err(db_error)?;
    Ok(found.map(endpoint_of))
}

/// Endpoints of `account` (all, with `None`), oldest first, at most `limit`.
pub async fn list_endpoints(
    conn: &impl ConnectionTrait,
    account: Option<&str>,
    limit: u64,
) -> Result<Vec<Endpoint>, Error> {
    if let Some(known) = account.and_then(|a| writer::endpoints_in_batch(a, limit)) {
        return Ok(known);
    }
    let mut query = endpoint::Entity::find();
    if let Some(account) = account {
        query = query.filter(endpoint::Column::Account.eq(account));
    }
    let rows = query
        .order_by_asc(endpoint::Column::CreatedAt)
        .order_by_asc(endpoint::Column::Id)
        .limit(limit)
        .all(conn)
        .await
        .map_err(db_error)?;
    let endpoints: Vec<Endpoint> = rows.into_iter().map(endpoint_of).collect();
    if let Some(account) = account {
        writer::remember_endpoints(account, limit, &endpoints);
    }
    Ok(endpoints)
}

/// How many endpoints `account` has.
pub async fn count_endpoints(conn: &impl ConnectionTrait, account: &str) -> Result<u64, Error> {
    use sea_orm::PaginatorTrait;
    endpoint::Entity::find()
        .filter(endpoint::Column::Account.eq(account))
        .count(conn)
        .await
        .map_err(db_error)
}

/// Deletes an endpoint; its rows not yet delivered become dead. False when
/// there was none.
pub async fn delete_endpoint(
    conn: &impl ConnectionTrait,
    id: &str,
    now: i64,
) -> Result<bool, Error> {
    writer::forget_endpoints();
    flush_deferred(conn).await?;
    let deleted = endpoint::Entity::delete_by_id(id.to_owned())
        .exec(conn)
        .await
        .map_err(db_error)?;
    if deleted.rows_affected == 0 {
        return Ok(false);
    }
    delivery::Entity::update_many()
        .col_expr(
            delivery::Column::State,
            Expr::value(DeliveryState::Dead.as_str()),
        )
        .col_expr(
            delivery::Column::LastError,
            Expr::value("the endpoint was deleted"),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::EndpointId.eq(id))
        .filter(delivery::Column::State.is_in([
            DeliveryState::Pending.as_str(),
            DeliveryState::Paused.as_str(),
        ]))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(true)
}

/// Pauses or resumes an endpoint, and its undelivered rows with it (a
/// resumed row is due at once). `None` when there is no such endpoint.
pub async fn set_paused(
    conn: &impl ConnectionTrait,
    id: &str,
    paused: bool,
    now: i64,
) -> Result<Option<Endpoint>, Error> {
    writer::forget_endpoints();
    flush_deferred(conn).await?;
    let updated = endpoint::Entity::update_many()
        .col_expr(endpoint::Column::Paused, Expr::value(paused))
        .col_expr(endpoint::Column::UpdatedAt, Expr::value(now))
        .filter(endpoint::Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    if updated.rows_affected == 0 {
        return Ok(None);
    }
    let (from, to) = match paused {
        true => (DeliveryState::Pending, DeliveryState::Paused),
        false => (DeliveryState::Paused, DeliveryState::Pending),
    };
    delivery::Entity::update_many()
        .col_expr(delivery::Column::State, Expr::value(to.as_str()))
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(now))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::EndpointId.eq(id))
        .filter(delivery::Column::State.eq(from.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    find_endpoint(conn, id).await
}

/// Writes outbox rows: inside a writer batch with the batch's other rows,
/// in one statement before its commit (see `writer`); elsewhere now.
pub async fn insert_deliveries(
    conn: &impl ConnectionTrait,
    rows: Vec<NewDelivery>,
) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    match writer::defer_deliveries(rows) {
        Some(rows) => write_deliveries(conn, rows).await,
        None => Ok(()),
    }
}

/// Inserts the rows the running writer batch holds, so that the statement
/// after this sees them (a no-op outside a batch). Whatever reads or updates
/// outbox rows other than by the id of a row claimed earlier calls it first.
async fn flush_deferred(conn: &impl ConnectionTrait) -> Result<(), Error> {
    write_deliveries(conn, writer::unflushed_deliveries()).await
}

/// Rows per INSERT: 18 values each, within SQLite's 32,766 bound variables
/// and PostgreSQL's 65,535 parameters.
const ROWS_PER_INSERT: usize = 1_000;
/// Bytes per INSERT on PostgreSQL, about: a statement that fits in one TLS
/// record (16 KiB), so that it leaves in one segment. sqlx (0.9) leaves
/// Nagle's algorithm on, and a larger statement goes out as two TLS writes:
/// the second waited for the server's delayed ACK of the first, 40 ms. A
/// batch of 16 creates' rows (~55 KB) in one statement had the PostgreSQL
/// bench's hanging server at ~300 creates/s, p50 52 ms, from ~1,100/s.
/// SQLite has no socket: there only the row bound applies.
const PG_BYTES_PER_INSERT: usize = 12 * 1024;

/// Inserts `rows`, in as few statements as the bounds above allow.
pub(super) async fn write_deliveries(
    conn: &impl ConnectionTrait,
    rows: Vec<NewDelivery>,
) -> Result<(), Error> {
    let max_bytes = match conn.get_database_backend() {
        DbBackend::Postgres => PG_BYTES_PER_INSERT,
        _ => usize::MAX,
    };
    for chunk in chunks(rows, max_bytes) {
        insert_now(conn, chunk).await?;
    }
    Ok(())
}

/// `rows` in order, cut into INSERTs of at most [`ROWS_PER_INSERT`] rows and
/// about `max_bytes` (a row larger than that goes alone).
fn chunks(rows: Vec<NewDelivery>, max_bytes: usize) -> Vec<Vec<NewDelivery>> {
    let mut chunks: Vec<Vec<NewDelivery>> = vec![];
    let mut bytes = 0usize;
    for row in rows {
        let fits = chunks.last().is_some_and(|chunk| {
            chunk.len() < ROWS_PER_INSERT && bytes.saturating_add(size(&row)) <= max_bytes
        });
        if !fits {
            chunks.push(vec![]);
            bytes = 0;
        }
        bytes += size(&row);
        chunks.last_mut().expect("a chunk").push(row);
    }
    chunks
}

/// About how many bytes a row takes in an INSERT.
fn size(row: &NewDelivery) -> usize {
    let r = &row.route;
    row.payload.len()
        + r.target.len()
        + r.id.len()
        + r.endpoint_id.len()
        + r.ticket_id.len()
        + r.account.len()
        + 128
}

async fn insert_now(conn: &impl ConnectionTrait, rows: Vec<NewDelivery>) -> Result<(), Error> {
    let models = rows.into_iter().map(|r| delivery::ActiveModel {
        id: Set(r.route.id),
        channel: Set(r.route.channel.as_str().to_owned()),
        endpoint_id: Set(r.route.endpoint_id),
        target: Set(r.route.target),
        ticket_id: Set(r.route.ticket_id),
        ticket_type: Set(r.route.ticket_type.as_str().to_owned()),
        account: Set(r.route.account),
        sequence: Set(r.route.sequence),
        event_type: Set(r.route.event_type),
        payload: Set(r.payload),
        state: Set(r.state.as_str().to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(r.at),
        retry_from: Set(r.at),
        last_error: Set(None),
        created_at: Set(r.at),
        updated_at: Set(r.at),
        delivered_at: Set(None),
    });
    delivery::Entity::insert_many(models)
        .exec_without_returning(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Whether any row may be due: a read, so that an idle dispatcher never
/// takes SQLite's write lock (the claim's UPDATE would, even claiming nothing).
pub async fn any_due(conn: &impl ConnectionTrait, now: i64) -> Result<bool, Error> {
    let found = delivery::Entity::find()
        .select_only()
        .column(delivery::Column::Id)
        .filter(delivery::Column::State.eq(DeliveryState::Pending.as_str()))
        .filter(delivery::Column::NextAttemptAt.lte(now))
        .limit(1)
        .into_tuple::<String>()
        .one(conn)
        .await
        .map_err(db_error)?;
    Ok(found.is_some())
}

/// A row the dispatcher has claimed: it is leased to it until the lease
/// passed to `claim`.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub channel: Channel,
    pub endpoint_id: String,
    pub payload: String,
    pub attempts: i64,
    pub retry_from: i64,
}

/// Claims up to `limit` due rows, leasing each until `lease_until` (a
/// dispatcher that dies leaves them due again then). A row is due when it
/// is PENDING, its next attempt has come, and no earlier row (by sequence)
/// of the same endpoint and ticket is still PENDING or PAUSED: that keeps
/// one ticket's deliveries to one endpoint in sequence order, one at a
/// time. One statement; on PostgreSQL the rows are picked `FOR UPDATE SKIP
/// LOCKED`, so replicas claiming at once take different rows, and the outer
/// condition is re-checked on the locked rows; on SQLite the statement holds
/// the write lock.
///
/// Never more than `limit` rows. On PostgreSQL the pick is a `MATERIALIZED`
/// CTE, run once: as `id IN (SELECT … LIMIT … SKIP LOCKED)` the planner may
/// run the subquery again for every outer row (a nested-loop semi-join; the
/// generic plan sqlx's cached statement gets when it was first planned on an
/// empty outbox), and each run skips the rows the statement has already
/// updated and picks the next ones: one claim took every due row (300 with
/// a limit of 32), the dispatcher's attempts in flight grew past its cap to
/// thousands, and when they timed out together their outcome writes queued
/// ahead of the RPCs' in the writer (`ticketd-bench-hang`: CreateIncident p99
/// 1.2 s on PostgreSQL).
pub async fn claim(
    conn: &impl ConnectionTrait,
    now: i64,
    lease_until: i64,
    limit: u64,
) -> Result<Vec<Claimed>, Error> {
    flush_deferred(conn).await?;
    let backend = conn.get_database_backend();
    // The due rows, oldest first, that no earlier row of theirs holds back.
    let pick = |at: &str, limit: &str, lock: &str| {
        format!(
            "SELECT o.id FROM outbox o \
             WHERE o.state = 'PENDING' AND o.next_attempt_at <= {at} \
               AND NOT EXISTS ( \
                 SELECT 1 FROM outbox e \
                 WHERE e.endpoint_id = o.endpoint_id AND e.ticket_id = o.ticket_id \
                   AND e.sequence < o.sequence AND e.state IN ('PENDING', 'PAUSED')) \
             ORDER BY o.next_attempt_at, o.sequence \
             LIMIT {limit} {lock}"
        )
    };
    let sql = match backend {
        // The locked rows were re-checked against the pick's conditions
        // as they were locked (FOR UPDATE), so the update needs only their ids.
        DbBackend::Postgres => format!(
            "WITH picked AS MATERIALIZED ({}) \
             UPDATE outbox SET next_attempt_at = $1, updated_at = $2 \
             FROM picked WHERE outbox.id = picked.id \
             RETURNING outbox.id, outbox.channel, outbox.endpoint_id, outbox.payload, \
               outbox.attempts, outbox.retry_from",
            pick("$2", "$3", "FOR UPDATE OF o SKIP LOCKED")
        ),
        // SQLite runs an uncorrelated `IN (SELECT …)` once, and the whole
        // statement under its write lock: the picked rows are updated by
        // their ids alone (with the pick's conditions repeated outside, the
        // planner walked every due row to test it against the few picked).
        _ => format!(
            "UPDATE outbox SET next_attempt_at = ?1, updated_at = ?2 \
             WHERE id IN ({}) \
             RETURNING id, channel, endpoint_id, payload, attempts, retry_from",
            pick("?2", "?3", "")
        ),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let values: Vec<Value> = vec![lease_until.into(), now.into(), limit.into()];
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map_err(db_error)?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("", "id").map_err(db_error)?;
        let channel: String = row.try_get("", "channel").map_err(db_error)?;
        // A corrupt row must not stop every other delivery: it is logged and
        // left leased (claimed again, and logged again, when its lease ends).
        let channel = match parse_code("channel", &id, &channel) {
            Ok(channel) => channel,
            Err(e) => {
                tracing::error!(error = %e, "an outbox row cannot be delivered");
                continue;
            }
        };
        claimed.push(Claimed {
            id,
            channel,
            endpoint_id: row.try_get("", "endpoint_id").map_err(db_error)?,
            payload: row.try_get("", "payload").map_err(db_error)?,
            attempts: row.try_get("", "attempts").map_err(db_error)?,
            retry_from: row.try_get("", "retry_from").map_err(db_error)?,
        });
    }
    Ok(claimed)
}

/// The receiver took it.
pub async fn delivered(conn: &impl ConnectionTrait, id: &str, now: i64) -> Result<(), Error> {
    delivery::Entity::update_many()
        .col_expr(
            delivery::Column::State,
            Expr::value(DeliveryState::Delivered.as_str()),
        )
        .col_expr(
            delivery::Column::Attempts,
            Expr::col(delivery::Column::Attempts).add(1),
        )
        .col_expr(delivery::Column::DeliveredAt, Expr::value(now))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            delivery::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(delivery::Column::Id.eq(id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// An attempt failed with `error`: try again at `next`, or, with `None`,
/// the row is dead. A row paused meanwhile stays paused.
pub async fn failed(
    conn: &impl ConnectionTrait,
    id: &str,
    now: i64,
    error: &str,
    next: Option<i64>,
) -> Result<(), Error> {
    let mut update = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::Attempts,
            Expr::col(delivery::Column::Attempts).add(1),
        )
        .col_expr(delivery::Column::LastError, Expr::value(error))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now));
    update = match next {
        Some(at) => update.col_expr(delivery::Column::NextAttemptAt, Expr::value(at)),
        None => update
            .col_expr(
                delivery::Column::State,
                Expr::value(DeliveryState::Dead.as_str()),
            )
            .col_expr(delivery::Column::NextAttemptAt, Expr::value(now)),
    };
    update
        .filter(delivery::Column::Id.eq(id))
        .filter(delivery::Column::State.ne(DeliveryState::Delivered.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Gives the leases of claimed rows back (their attempts were interrupted):
/// still pending, they are due at `now`.
pub async fn release(conn: &impl ConnectionTrait, ids: &[String], now: i64) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    delivery::Entity::update_many()
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(now))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::Id.is_in(ids.iter().map(String::as_str)))
        .filter(delivery::Column::State.eq(DeliveryState::Pending.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Gives a claimed row of a paused endpoint back, paused.
pub async fn park(conn: &impl ConnectionTrait, id: &str, now: i64) -> Result<(), Error> {
    delivery::Entity::update_many()
        .col_expr(
            delivery::Column::State,
            Expr::value(DeliveryState::Paused.as_str()),
        )
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(now))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::Id.eq(id))
        .filter(delivery::Column::State.eq(DeliveryState::Pending.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub async fn find_delivery(
    conn: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<Delivery>, Error> {
    flush_deferred(conn).await?;
    delivery::Entity::find_by_id(id.to_owned())
        .one(conn)
        .await
        .map_err(db_error)?
        .map(delivery_of)
        .transpose()
}

/// Deliveries `filter` picks, by id (≈ creation order), after `after`.
pub async fn list_deliveries(
    conn: &impl ConnectionTrait,
    filter: &DeliveryFilter,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Delivery>, Error> {
    flush_deferred(conn).await?;
    let mut query = delivery::Entity::find();
    if let Some(account) = &filter.account {
        query = query.filter(delivery::Column::Account.eq(account.as_str()));
    }
    if !filter.states.is_empty() {
        query =
            query.filter(delivery::Column::State.is_in(filter.states.iter().map(|s| s.as_str())));
    }
    if let Some(id) = &filter.endpoint_id {
        query = query.filter(delivery::Column::EndpointId.eq(id.as_str()));
    }
    if let Some(id) = &filter.ticket_id {
        query = query.filter(delivery::Column::TicketId.eq(id.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(delivery::Column::Id.gt(after));
    }
    let query = query.order_by_asc(delivery::Column::Id).limit(limit);
    super::decoded(conn, query, delivery_of).await
}

/// A dead row becomes due again now, with a fresh retry horizon. False when
/// it is not dead (or its endpoint is gone: nothing to send it to).
pub async fn retry(conn: &impl ConnectionTrait, id: &str, now: i64) -> Result<bool, Error> {
    let updated = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::State,
            Expr::value(DeliveryState::Pending.as_str()),
        )
        .col_expr(delivery::Column::NextAttemptAt, Expr::value(now))
        .col_expr(delivery::Column::RetryFrom, Expr::value(now))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::Id.eq(id))
        .filter(delivery::Column::State.eq(DeliveryState::Dead.as_str()))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(updated.rows_affected > 0)
}

#[cfg(test)]
pub(super) mod tests {
    use sea_orm::TransactionTrait;

    use super::super::Store;
    use super::super::tests::{on_fresh_postgres, on_fresh_sqlite};
    use super::*;
    use crate::domain::event::TicketType;

    fn row() -> delivery::Model {
        delivery::Model {
            id: "d1".into(),
            channel: "email".into(),
            endpoint_id: "email:requester".into(),
            target: "ana@example.com".into(),
            ticket_id: "t1".into(),
            ticket_type: "INCIDENT".into(),
            account: "acme".into(),
            sequence: 7,
            event_type: "created".into(),
            payload: "{}".into(),
            state: "PENDING".into(),
            attempts: 0,
            next_attempt_at: 1,
            retry_from: 1,
            last_error: None,
            created_at: 1,
            updated_at: 1,
            delivered_at: None,
        }
    }

    #[test]
    fn a_stored_delivery_is_read_into_typed_values() {
        let d = delivery_of(row()).unwrap();
        assert_eq!(d.route.channel, Channel::Email);
        assert_eq!(d.route.ticket_type, TicketType::Incident);
        assert_eq!(d.state, DeliveryState::Pending);
    }

    #[test]
    fn a_corrupt_channel_ticket_type_or_state_is_an_internal_error_naming_it() {
        let corrupt = [
            delivery::Model {
                channel: "fax".into(),
                ..row()
            },
            delivery::Model {
                ticket_type: "ORDER".into(),
                ..row()
            },
            delivery::Model {
                state: "LOST".into(),
                ..row()
            },
        ];
        for (m, what) in corrupt.into_iter().zip(["channel", "ticket type", "state"]) {
            match delivery_of(m) {
                Err(Error::Internal(e)) => assert!(e.to_string().contains(what), "{e}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    /// An outbox row of ticket `ticket` (event `sequence`), due at `sequence` µs.
    pub(crate) fn due_row(id: &str, ticket: &str, sequence: i64) -> NewDelivery {
        NewDelivery {
            route: Route {
                id: id.into(),
                channel: Channel::Webhook,
                endpoint_id: "e1".into(),
                target: "http://127.0.0.1:9/hook".into(),
                ticket_id: ticket.into(),
                ticket_type: TicketType::Incident,
                account: "acme".into(),
                sequence,
                event_type: "created".into(),
            },
            payload: "{}".into(),
            state: DeliveryState::Pending,
            at: sequence,
        }
    }

    /// `count` due webhook rows, each of a ticket of its own.
    fn rows(count: i64) -> Vec<NewDelivery> {
        (1..=count)
            .map(|n| due_row(&format!("d{n:05}"), &format!("t{n:05}"), n))
            .collect()
    }

    /// A claim never takes more than its limit, also with the plan its
    /// statement gets on a connection that ran it on an empty outbox (on
    /// PostgreSQL a generic plan after five runs; as `id IN (SELECT … LIMIT
    /// … SKIP LOCKED)` that plan ran the pick again for every row and
    /// claimed all 300 due rows).
    async fn a_claim_takes_at_most_its_limit(url: &str) {
        let store = Store::connect(url).await.expect("connect");
        store.migrate().await.expect("migrate");
        // One transaction: one connection, one cached statement.
        let txn = store.conn().begin().await.unwrap();
        for _ in 0..8 {
            assert!(claim(&txn, 0, 1, 32).await.unwrap().is_empty());
        }
        insert_deliveries(&txn, rows(300)).await.unwrap();
        let lease = 1_000_000;
        let first = claim(&txn, 1_000, lease, 32).await.unwrap();
        let ids: Vec<&str> = first.iter().map(|c| c.id.as_str()).collect();
        let expected: Vec<String> = (1..=32).map(|n| format!("d{n:05}")).collect();
        assert_eq!(ids, expected, "the 32 oldest due rows, and no more");
        let second = claim(&txn, 1_000, lease, 32).await.unwrap();
        assert_eq!(second.len(), 32);
        assert_eq!(second[0].id, "d00033", "leased rows are not claimed again");
        txn.commit().await.unwrap();
        store.close().await;
    }

    #[test]
    fn a_batch_of_rows_is_cut_by_count_and_by_bytes_in_order() {
        let sized = |n: i64, payload: usize| NewDelivery {
            payload: "x".repeat(payload),
            ..due_row(&format!("d{n:05}"), "t", n)
        };
        let ids = |chunks: &[Vec<NewDelivery>]| -> Vec<Vec<i64>> {
            chunks
                .iter()
                .map(|c| c.iter().map(|r| r.route.sequence).collect())
                .collect()
        };
        // 5 KiB payloads: two fit in 12 KiB, a third does not; a 20 KiB row goes alone.
        let rows = vec![
            sized(1, 5120),
            sized(2, 5120),
            sized(3, 5120),
            sized(4, 20_480),
            sized(5, 10),
        ];
        let cut = chunks(rows, PG_BYTES_PER_INSERT);
        assert_eq!(ids(&cut), [vec![1, 2], vec![3], vec![4], vec![5]]);
        for chunk in cut.iter().filter(|c| c.len() > 1) {
            assert!(chunk.iter().map(size).sum::<usize>() <= PG_BYTES_PER_INSERT);
        }
        // Without a byte bound (SQLite), only the row count cuts.
        let many = (1..=2_500).map(|n| sized(n, 10)).collect();
        let lens: Vec<usize> = chunks(many, usize::MAX).iter().map(Vec::len).collect();
        assert_eq!(lens, [1_000, 1_000, 500]);
        assert!(chunks(vec![], usize::MAX).is_empty());
    }

    /// A row whose stored channel is unknown is left out of the claim (and
    /// logged); the rows beside it are still claimed.
    async fn a_corrupt_row_does_not_stop_the_claim(url: &str) {
        let store = Store::connect(url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let conn = store.conn();
        insert_deliveries(conn, rows(3)).await.unwrap();
        conn.execute_unprepared("UPDATE outbox SET channel = 'fax' WHERE id = 'd00002'")
            .await
            .unwrap();
        let claimed = claim(conn, 1_000, 1_000_000, 32).await.unwrap();
        let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["d00001", "d00003"]);
        store.close().await;
    }

    #[tokio::test]
    async fn a_claim_takes_at_most_its_limit_and_skips_a_corrupt_row_on_sqlite() {
        on_fresh_sqlite(a_claim_takes_at_most_its_limit).await;
        on_fresh_sqlite(a_corrupt_row_does_not_stop_the_claim).await;
    }

    /// The same on PostgreSQL, when `TICKETD_TEST_POSTGRES_URL` names one
    /// (on a database of its own, dropped after).
    #[tokio::test]
    async fn a_claim_takes_at_most_its_limit_and_skips_a_corrupt_row_on_postgres() {
        on_fresh_postgres("ticketd_outbox", a_claim_takes_at_most_its_limit).await;
        on_fresh_postgres("ticketd_outbox", a_corrupt_row_does_not_stop_the_claim).await;
    }
}
