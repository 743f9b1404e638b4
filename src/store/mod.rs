//! Persistence: sea-orm entities and queries. The only place that speaks SQL.
pub mod catalog;
pub mod comments;
pub mod consultations;
pub mod entity;
pub mod events;
pub mod incidents;
pub mod outbox;
pub mod search;
pub mod tickets;
pub mod writer;

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use anyhow::anyhow;
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::{Expr, ExprTrait, LockType, Query};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, IsolationLevel, TransactionTrait,
};

use crate::domain::Error;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// Lists and exports (see `lists`); on SQLite the same pool as `db`.
    lists: DatabaseConnection,
    /// Signalled after every commit that appended to the event log, so that
    /// the log follower reads the new events at once instead of at its next poll.
    committed: Arc<Notify>,
    url: Arc<str>,
    /// Permits for open snapshots (see `begin_snapshot`).
    snapshots: Arc<Semaphore>,
    /// Open snapshots per owner.
    owners: Arc<Mutex<HashMap<String, usize>>>,
    /// The process's one writer (group commit); see `write`.
    writer: writer::Writer,
}

/// The options of a pool of `max` connections to `url`.
fn pool_options(url: &str, max: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .max_connections(max)
        // A pooled connection is pinged only after a quiet spell, not on
        // every checkout: the ping was a second round trip for every read
        // (a hop to SQLite's worker thread, a network round trip to
        // PostgreSQL), and a connection in use does not go stale.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // Rows cross from SQLite's worker thread through a channel
                // this deep; at the default of 50 a streamed export's
                // reader and the worker hand off every 50 rows.
                .row_buffer_size(1024)
        });
    options
}

/// What the writer needs of the store: the pool and the commit signal (not
/// the store itself, whose last clone dropping ends the writer).
#[derive(Clone, Debug)]
struct Log {
    db: DatabaseConnection,
    committed: Arc<Notify>,
}

/// Pooled connections.
pub const MAX_CONNECTIONS: u32 = 16;
/// PostgreSQL: the pool of lists and exports (its snapshots among them).
const LIST_CONNECTIONS: u32 = 8;
/// Snapshots open at once. Each pins a pooled connection for as long as its
/// reader takes (an export waits for its client), so they get a quarter of
/// the pool and writers keep the rest.
pub const MAX_SNAPSHOTS: usize = 4;
/// Snapshots one owner (an account, an agent) may hold at once, so that one
/// tenant cannot take every slot from the others.
pub const MAX_SNAPSHOTS_PER_OWNER: usize = 2;

/// A read-only transaction over one snapshot, holding one of the store's
/// snapshot permits and one of its owner's until it is dropped.
pub struct Snapshot {
    txn: DatabaseTransaction,
    _permit: OwnedSemaphorePermit,
    _owner: OwnerSlot,
}

/// One of an owner's snapshot slots; given back when dropped.
struct OwnerSlot {
    owners: Arc<Mutex<HashMap<String, usize>>>,
    owner: String,
}

impl OwnerSlot {
    fn take(owners: &Arc<Mutex<HashMap<String, usize>>>, owner: &str) -> Option<Self> {
        let mut counts = owners.lock().unwrap_or_else(|e| e.into_inner());
        let held = counts.entry(owner.to_owned()).or_default();
        if *held >= MAX_SNAPSHOTS_PER_OWNER {
            return None;
        }
        *held += 1;
        Some(Self {
            owners: owners.clone(),
            owner: owner.to_owned(),
        })
    }
}

impl Drop for OwnerSlot {
    fn drop(&mut self) {
        let mut counts = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = counts.get_mut(&self.owner) {
            *held -= 1;
            if *held == 0 {
                counts.remove(&self.owner);
            }
        }
    }
}

impl Deref for Snapshot {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl Store {
    /// Opens the database at `url` (`sqlite://…` or `postgres://…`). SQLite
    /// files are created on first use, in WAL mode.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let open = |options: ConnectOptions| async move {
            Database::connect(options)
                .await
                .map_err(|e| anyhow!("cannot open database {}: {e}", redact(url)))
        };
        let db = open(pool_options(url, MAX_CONNECTIONS)).await?;
        let lists = match db.get_database_backend() {
            // Plan each execution for its values. A prepared statement's
            // generic plan cannot tell a rare search term from a common one:
            // it took the trigram index for both, so a common word's probe
            // built a bitmap of 600,000 matches to read 10,001 of them
            // (137 ms at 1M rows, against 13 ms walking the table). Only
            // lists and exports get this pool: planning every get and every
            // write again cost them their cached plans.
            DbBackend::Postgres => {
                let mut options = pool_options(url, LIST_CONNECTIONS);
                options.map_sqlx_postgres_opts(|o| {
                    o.options([("plan_cache_mode", "force_custom_plan")])
                });
                open(options).await?
            }
            _ => db.clone(),
        };
        let committed = Arc::new(Notify::new());
        let log = Log {
            db: db.clone(),
            committed: committed.clone(),
        };
        Ok(Self {
            db,
            lists,
            committed,
            url: url.into(),
            snapshots: Arc::new(Semaphore::new(MAX_SNAPSHOTS)),
            owners: Arc::default(),
            writer: writer::Writer::start(log),
        })
    }

    /// Snapshots (report slots) held now, for metrics.
    pub fn snapshots_in_use(&self) -> usize {
        MAX_SNAPSHOTS - self.snapshots.available_permits()
    }

    /// Applies pending migrations, in one transaction, so that replicas
    /// starting together neither race nor leave a half-applied schema: on
    /// PostgreSQL they queue on an advisory lock; on SQLite the loser of the
    /// write lock retries and finds nothing left to do.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        const ATTEMPTS: u32 = 20;
        let mut attempt = 1;
        loop {
            let result = async {
                let txn = self.db.begin().await?;
                if self.backend() == DbBackend::Postgres {
                    txn.execute_unprepared("SELECT pg_advisory_xact_lock(7426511)")
                        .await?;
                }
                Migrator::up(&txn, None).await?;
                txn.commit().await
            }
            .await;
            match result {
                Ok(()) => return search::reindex(&self.db).await,
                Err(e) if attempt < ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "migration attempt failed; retrying");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(anyhow!("migrations failed: {e}")),
            }
        }
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connections lists and exports read on: on PostgreSQL a pool of
    /// its own whose statements are planned for their values every time.
    pub fn lists(&self) -> &DatabaseConnection {
        &self.lists
    }

    /// The URL the store was opened with (for LISTEN connections).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Starts a read-only transaction that sees one snapshot of the database
    /// for as long as it lives (PostgreSQL: REPEATABLE READ; SQLite in WAL
    /// mode: a deferred transaction, whose snapshot is fixed at its first
    /// read). Exports count and read their rows in one, so the header's row
    /// count is the number of rows written, whatever commits meanwhile.
    /// At most [`MAX_SNAPSHOTS`] are open at once, and
    /// [`MAX_SNAPSHOTS_PER_OWNER`] for one `owner`; past that RESOURCE_EXHAUSTED.
    pub async fn begin_snapshot(&self, owner: &str) -> Result<Snapshot, Error> {
        let owner = OwnerSlot::take(&self.owners, owner).ok_or_else(|| {
            Error::ResourceExhausted(format!(
                "{MAX_SNAPSHOTS_PER_OWNER} of your reports are already being exported; \
                 retry when one has finished"
            ))
        })?;
        let permit = self.snapshots.clone().try_acquire_owned().map_err(|_| {
            Error::ResourceExhausted(format!(
                "{MAX_SNAPSHOTS} reports are already being exported; retry when one has finished"
            ))
        })?;
        let (isolation, access) = match self.backend() {
            DbBackend::Postgres => (
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            ),
            _ => (None, None),
        };
        let txn = self
            .lists
            .begin_with_config(isolation, access)
            .await
            .map_err(db_error)?;
        Ok(Snapshot {
            txn,
            _permit: permit,
            _owner: owner,
        })
    }

    /// Runs `work` in the writer's next batch (see `writer`): in a savepoint
    /// of a transaction that holds the event-log lock, answered once that
    /// transaction has committed.
    pub async fn write<F, R>(&self, work: F) -> Result<R, Error>
    where
        F: for<'a> FnOnce(&'a DatabaseTransaction) -> writer::TxnFuture<'a, Result<R, Error>>
            + Send
            + 'static,
        R: Send + 'static,
    {
        self.writer.write(work).await
    }

    /// The in-process signal `commit` raises.
    pub fn committed(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// Whether the database answers (one round trip on a pooled connection).
    pub async fn ping(&self) -> Result<(), Error> {
        self.db.ping().await.map_err(db_error)
    }

    /// Closes the pool.
    pub async fn close(self) {
        let _ = self.lists.close().await;
        let _ = self.db.close().await;
    }
}

impl Log {
    /// Starts a write transaction holding the event-log lock, and reads the
    /// counters its batch will number from (`writer::Numbering`). Every
    /// counter row is locked until commit, so writers serialize here: on
    /// PostgreSQL this is what makes sequences become visible in order (a
    /// smaller sequence can never commit after a larger one); on SQLite it
    /// takes the write lock up front, where the busy timeout applies.
    async fn begin_write(&self) -> Result<(DatabaseTransaction, writer::Numbering), Error> {
        let txn = self.db.begin().await.map_err(db_error)?;
        let rows = match self.db.get_database_backend() {
            // Locked in one order (by name), so that two replicas never
            // deadlock on the rows.
            DbBackend::Postgres => {
                let lock = Query::select()
                    .columns([Counters::Name, Counters::Value])
                    .from(Counters::Table)
                    .order_by(Counters::Name, sea_orm::Order::Asc)
                    .lock(LockType::Update)
                    .to_owned();
                txn.query_all(&lock).await
            }
            // SQLite locks the database, not rows: a write takes its lock.
            _ => {
                let lock = Query::update()
                    .table(Counters::Table)
                    .value(Counters::Value, Expr::col(Counters::Value))
                    .returning(Query::returning().columns([Counters::Name, Counters::Value]))
                    .to_owned();
                txn.query_all(&lock).await
            }
        }
        .map_err(db_error)?;
        let counters = rows
            .iter()
            .map(|row| Ok((row.try_get("", "name")?, row.try_get("", "value")?)))
            .collect::<Result<Vec<(String, i64)>, DbErr>>()
            .map_err(db_error)?;
        Ok((txn, writer::Numbering::new(counters)))
    }

    /// Writes back the counters `numbering` moved, then commits a
    /// transaction opened with `begin_write` and signals that the log grew:
    /// in this process through `committed`, and on PostgreSQL to every
    /// replica with NOTIFY (delivered only if the transaction commits).
    async fn commit(
        &self,
        txn: DatabaseTransaction,
        numbering: &writer::Numbering,
    ) -> Result<(), Error> {
        let moved = numbering.moved();
        if !moved.is_empty() {
            let mut value = Expr::case(Expr::col(Counters::Name).eq(moved[0].0), moved[0].1);
            for (name, next) in &moved[1..] {
                value = value.case(Expr::col(Counters::Name).eq(*name), *next);
            }
            let write_back = Query::update()
                .table(Counters::Table)
                .value(Counters::Value, value.finally(Expr::col(Counters::Value)))
                .and_where(Expr::col(Counters::Name).is_in(moved.iter().map(|(name, _)| *name)))
                .to_owned();
            txn.execute(&write_back).await.map_err(db_error)?;
        }
        if self.db.get_database_backend() == DbBackend::Postgres {
            txn.execute_unprepared(&format!("NOTIFY {LOG_CHANNEL}"))
                .await
                .map_err(db_error)?;
        }
        txn.commit().await.map_err(db_error)?;
        self.committed.notify_one();
        Ok(())
    }
}

/// The PostgreSQL NOTIFY channel that wakes other replicas' log followers.
pub const LOG_CHANNEL: &str = "ticketd_events";
pub(crate) const EVENT_SEQUENCE: &str = "event_sequence";
pub(crate) const INCIDENT_NUMBER: &str = "incident_number";
pub(crate) const CONSULTATION_NUMBER: &str = "consultation_number";

#[derive(sea_orm::DeriveIden)]
enum Counters {
    Table,
    Name,
    Value,
}

/// Increments a counter inside `txn` and returns its new value. The row stays
/// locked until the transaction ends, so values are handed out in commit order.
/// Inside the writer's batches the value comes from the batch's numbering,
/// in memory (the rows were locked and read when the batch began).
pub(crate) async fn next_value(conn: &impl ConnectionTrait, name: &str) -> Result<i64, Error> {
    if let Some(value) = writer::next_in_batch(name) {
        return Ok(value);
    }
    let stmt = Query::update()
        .table(Counters::Table)
        .value(Counters::Value, Expr::col(Counters::Value).add(1))
        .and_where(Expr::col(Counters::Name).eq(name))
        .returning_col(Counters::Value)
        .to_owned();
    counter(conn, &stmt, name).await
}

/// Reads a counter's current value.
pub(crate) async fn current_value(conn: &impl ConnectionTrait, name: &str) -> Result<i64, Error> {
    let stmt = Query::select()
        .column(Counters::Value)
        .from(Counters::Table)
        .and_where(Expr::col(Counters::Name).eq(name))
        .to_owned();
    counter(conn, &stmt, name).await
}

/// The value `stmt` returns for counter `name`.
async fn counter(
    conn: &impl ConnectionTrait,
    stmt: &impl sea_orm::StatementBuilder,
    name: &str,
) -> Result<i64, Error> {
    let row = conn
        .query_one(stmt)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::Internal(anyhow!("counter {name} is missing")))?;
    row.try_get::<i64>("", "value").map_err(db_error)
}

/// The rows `query` selects, each made into a `T` by `decode` (the one
/// place a table's rows become domain values).
pub(crate) async fn decoded<E: sea_orm::EntityTrait, T>(
    conn: &impl ConnectionTrait,
    query: sea_orm::Select<E>,
    decode: impl Fn(E::Model) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let rows = query.all(conn).await.map_err(db_error)?;
    rows.into_iter().map(decode).collect()
}

/// A stored name that must be one of `C`'s; anything else is a corrupt row
/// (the `row` kind `id`, e.g. "ticket", "delivery"), INTERNAL naming it.
pub(crate) fn parse_stored<C: crate::domain::Code>(
    row: &str,
    id: &str,
    what: &str,
    text: &str,
) -> Result<C, Error> {
    C::parse(text).ok_or_else(|| {
        Error::Internal(anyhow::anyhow!("{row} {id} has an unknown {what} {text:?}"))
    })
}

/// Maps a database error: losing the connection is UNAVAILABLE (the call is
/// safe to retry, and the pool replaces the dead connection), everything else
/// is INTERNAL and logged by the gRPC layer with its cause.
pub(crate) fn db_error(err: DbErr) -> Error {
    /// Whether the connection failed rather than the statement: none to be
    /// had (the pool timed out or is closed), the socket broke (reset,
    /// closed, EOF), or PostgreSQL ended the session — SQLSTATE class 08
    /// (connection exception) or 57P01–57P03 (terminated by an administrator,
    /// crash shutdown, cannot connect now), as a restart or a failover does.
    fn connection_lost(err: &DbErr) -> bool {
        use sea_orm::{RuntimeErr, sqlx};
        let cause = match err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
            DbErr::Exec(RuntimeErr::SqlxError(cause))
            | DbErr::Query(RuntimeErr::SqlxError(cause)) => cause,
            _ => return false,
        };
        match cause.as_ref() {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
            }),
            _ => false,
        }
    }
    if connection_lost(&err) {
        Error::Unavailable(err.to_string())
    } else {
        Error::Internal(anyhow::Error::new(err))
    }
}

/// Whether `err` is a unique-constraint violation.
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    /// The bundled SQLite is built as `.cargo/config.toml` asks: without
    /// ENABLE_QPSG every statement with a bound LIMIT is planned again on
    /// each execution, without DEFAULT_MEMSTATUS=0 allocations take a mutex.
    #[tokio::test]
    async fn the_bundled_sqlite_has_the_build_flags_ticketd_needs() {
        let store = super::Store::connect("sqlite::memory:").await.unwrap();
        for option in ["ENABLE_QPSG", "DEFAULT_MEMSTATUS=0", "ENABLE_FTS5"] {
            let found = store
                .conn()
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    format!(
                        "SELECT 1 FROM pragma_compile_options WHERE compile_options = '{option}'"
                    ),
                ))
                .await
                .unwrap();
            assert!(found.is_some(), "SQLite is built without {option}");
        }
    }

    /// The PostgreSQL server the tests may use (`TICKETD_TEST_POSTGRES_URL`),
    /// or `None` after saying the test is skipped.
    pub(crate) fn postgres_url() -> Option<String> {
        let url = std::env::var("TICKETD_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty());
        if url.is_none() {
            eprintln!("SKIPPED: set TICKETD_TEST_POSTGRES_URL to run it on PostgreSQL");
        }
        url
    }

    /// Runs `test` on a SQLite file of its own, in a directory removed after.
    pub(crate) async fn on_fresh_sqlite(test: impl AsyncFnOnce(&str)) {
        let dir = tempfile::tempdir().unwrap();
        test(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("t.db").display()
        ))
        .await;
    }

    /// Runs `test` on a PostgreSQL database of its own, created beside
    /// `TICKETD_TEST_POSTGRES_URL` and dropped after; skipped (saying so)
    /// when that is not set.
    pub(crate) async fn on_fresh_postgres(prefix: &str, test: impl AsyncFnOnce(&str)) {
        let Some(admin_url) = postgres_url() else {
            return;
        };
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .expect("connect");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (base, _) = admin_url.rsplit_once('/').expect("a database in the URL");
        test(&format!("{base}/{name}")).await;
        admin
            .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .unwrap();
    }

    async fn plan_cache_mode(conn: &impl ConnectionTrait) -> String {
        let row = conn
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SHOW plan_cache_mode",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "plan_cache_mode").unwrap()
    }

    /// On PostgreSQL lists and exports plan every execution for its values
    /// (a search term's frequency decides the plan), while gets and writes
    /// keep their cached generic plans.
    #[tokio::test]
    async fn only_lists_plan_every_execution_on_postgres() {
        let Some(url) = postgres_url() else {
            return;
        };
        let store = super::Store::connect(&url).await.unwrap();
        assert_eq!(plan_cache_mode(store.lists()).await, "force_custom_plan");
        assert_eq!(plan_cache_mode(store.conn()).await, "auto");
        let snapshot = store.begin_snapshot("test").await.unwrap();
        let exports = plan_cache_mode(&*snapshot).await;
        assert_eq!(
            exports, "force_custom_plan",
            "exports read on the lists' pool"
        );
        drop(snapshot);
        store.close().await;
    }
}
