//! Group commit: one writer per process. Every write request queues here;
//! the writer runs what has queued, each request in a savepoint of one
//! transaction (holding the event-log lock, see `Store::begin_write`),
//! commits once, and only then answers each request. While a batch commits
//! (its fsync), the next requests queue, so the batch grows with the load
//! and the commit cost is shared: SQLite's single writer never waits on its
//! busy handler, and PostgreSQL pays one fsync (and one hold of the event
//! counter's row lock) per batch instead of one per write.
//!
//! A request that fails rolls back its savepoint alone and gets its own
//! error at once; its neighbours are not affected. A failed commit fails
//! every request of the batch (none of them was committed). The writer
//! opens the savepoints itself, releasing one request's in the round trip
//! that opens the next one's.
//!
//! Counters (the event sequence, ticket numbers) are read and locked once
//! when a batch begins and numbered in memory (`Numbering`): a request takes
//! its values without a statement, a request that fails gives its values
//! back (the log stays gap-free), and the batch writes the counters back
//! once, just before its commit. A batch also remembers the webhook
//! endpoints it has read (`Batch`), so that its events do not each read
//! them again, and holds the outbox rows its requests write: they are
//! inserted together, in one statement just before the commit (or earlier,
//! when a request of the batch touches the outbox otherwise, see
//! `outbox::flush_deferred`). Each event's rows still commit with it, but a
//! batch of creates pays one INSERT for its notifications instead of one per
//! create: on SQLite every statement is a hop to the connection's thread and
//! back, and that hop per create put CreateIncident's p99 with notifications
//! on at 1.5–2.4× the plain server's (`ticketd-bench-hang`).
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use sea_orm::{ConnectionTrait, DatabaseTransaction};
use tokio::sync::{mpsc, oneshot};

use super::Log;
use super::outbox::{self, NewDelivery};
use crate::domain::notify::Endpoint;
use crate::domain::{Error, Result};

/// The counters of the batch being written, as read when it began and as
/// handed out since.
#[derive(Debug, Clone)]
pub(super) struct Numbering {
    /// (name, value as read, value handed out last)
    counters: Vec<(String, i64, i64)>,
}

impl Numbering {
    pub(super) fn new(read: Vec<(String, i64)>) -> Self {
        Self {
            counters: read.into_iter().map(|(name, v)| (name, v, v)).collect(),
        }
    }

    fn next(&mut self, name: &str) -> Option<i64> {
        let (_, _, last) = self.counters.iter_mut().find(|(n, ..)| n == name)?;
        *last += 1;
        Some(*last)
    }

    /// The counters that moved, with the value to write back.
    pub(super) fn moved(&self) -> Vec<(&str, i64)> {
        self.counters
            .iter()
            .filter(|(_, read, last)| last != read)
            .map(|(name, _, last)| (name.as_str(), *last))
            .collect()
    }
}

/// What a batch keeps between its requests: the counters it numbers from,
/// and the webhook endpoints of the accounts it has written events for.
/// Endpoints change only through a writer, inside its batch (which holds
/// the counters' locks), so nothing else changes them while a batch runs;
/// a request of the batch that changes one forgets them all.
#[derive(Debug)]
pub(super) struct Batch {
    numbering: Numbering,
    /// By (account, limit).
    endpoints: HashMap<(String, u64), Vec<Endpoint>>,
    /// The outbox rows the batch's requests wrote, in order; the first
    /// `flushed` of them have been inserted.
    outbox: Vec<NewDelivery>,
    flushed: usize,
}

tokio::task_local! {
    /// The batch the writer task is running.
    static BATCH: RefCell<Batch>;
}

/// The next value of counter `name` when called from a request the writer
/// is running (`None` elsewhere, or for a counter the batch did not read).
pub(super) fn next_in_batch(name: &str) -> Option<i64> {
    BATCH
        .try_with(|b| b.borrow_mut().numbering.next(name))
        .ok()
        .flatten()
}

/// The endpoints of `account` this batch has read already.
pub(super) fn endpoints_in_batch(account: &str, limit: u64) -> Option<Vec<Endpoint>> {
    BATCH
        .try_with(|b| {
            b.borrow()
                .endpoints
                .get(&(account.to_owned(), limit))
                .cloned()
        })
        .ok()
        .flatten()
}

/// Remembers the endpoints of `account` for the rest of the batch.
pub(super) fn remember_endpoints(account: &str, limit: u64, endpoints: &[Endpoint]) {
    let _ = BATCH.try_with(|b| {
        b.borrow_mut()
            .endpoints
            .insert((account.to_owned(), limit), endpoints.to_vec())
    });
}

/// Forgets the endpoints the batch has read (one of them changed).
pub(super) fn forget_endpoints() {
    let _ = BATCH.try_with(|b| b.borrow_mut().endpoints.clear());
}

/// Keeps `rows` for the batch's one INSERT when called from a request the
/// writer is running (`None`); gives them back elsewhere, to be inserted now.
pub(super) fn defer_deliveries(rows: Vec<NewDelivery>) -> Option<Vec<NewDelivery>> {
    if BATCH.try_with(|_| ()).is_err() {
        return Some(rows);
    }
    BATCH.with(|b| b.borrow_mut().outbox.extend(rows));
    None
}

/// The rows of this batch not inserted yet, counted as inserted from now
/// (empty outside a batch). A request that fails after this gives the count
/// back with its savepoint (see `give_back`).
pub(super) fn unflushed_deliveries() -> Vec<NewDelivery> {
    BATCH
        .try_with(|b| {
            let mut batch = b.borrow_mut();
            let rows = batch.outbox[batch.flushed..].to_vec();
            batch.flushed = batch.outbox.len();
            rows
        })
        .unwrap_or_default()
}

/// What a request may give back if it fails: the last number of each
/// counter before it ran, and how many outbox rows the batch held and had
/// inserted (a few integers, not a copy of the batch).
struct Mark {
    lasts: Vec<i64>,
    outbox: usize,
    flushed: usize,
}

fn mark() -> Option<Mark> {
    BATCH
        .try_with(|b| {
            let batch = b.borrow();
            Mark {
                lasts: batch.numbering.counters.iter().map(|c| c.2).collect(),
                outbox: batch.outbox.len(),
                flushed: batch.flushed,
            }
        })
        .ok()
}

/// Undoes in the batch what a request that failed did: the numbers it took
/// are handed out again, its outbox rows dropped, the rows its savepoint's
/// rollback took out of the database counted as not inserted again (it may
/// have flushed its neighbours' rows), and the endpoints read so far are
/// forgotten (it may have changed one; forgetting is always safe).
fn give_back(mark: Option<Mark>) {
    if let Some(mark) = mark {
        BATCH.with(|b| {
            let mut batch = b.borrow_mut();
            for (counter, last) in batch.numbering.counters.iter_mut().zip(mark.lasts) {
                counter.2 = last;
            }
            batch.outbox.truncate(mark.outbox);
            batch.flushed = mark.flushed;
            batch.endpoints.clear();
        });
    }
}

/// A future borrowing the batch's transaction.
pub type TxnFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// At most this many requests share one commit.
pub const MAX_BATCH: usize = 256;
/// Requests waiting for the writer; past this, callers wait to enqueue.
const QUEUE: usize = 4096;

/// What the writer does with a request once its batch has been committed
/// (or has failed to commit).
type Settle = Box<dyn FnOnce(&std::result::Result<(), String>) + Send>;

/// A request's answer when it failed: its own error, sent once its
/// savepoint has been rolled back.
type Refuse = Box<dyn FnOnce() + Send>;

/// A queued write, its type erased.
trait Job: Send {
    /// Runs the request on `txn`, inside the savepoint the writer opened
    /// for it: `Ok`, how to answer it once the batch's commit is known;
    /// `Err`, how to answer it now.
    fn run<'a>(
        self: Box<Self>,
        txn: &'a DatabaseTransaction,
    ) -> TxnFuture<'a, std::result::Result<Settle, Refuse>>;
    /// Answers a request that never ran.
    fn fail(self: Box<Self>, error: Error);
}

struct Request<F, R> {
    work: F,
    reply: oneshot::Sender<Result<R>>,
}

impl<F, R> Job for Request<F, R>
where
    F: for<'a> FnOnce(&'a DatabaseTransaction) -> TxnFuture<'a, Result<R>> + Send + 'static,
    R: Send + 'static,
{
    fn run<'a>(
        self: Box<Self>,
        txn: &'a DatabaseTransaction,
    ) -> TxnFuture<'a, std::result::Result<Settle, Refuse>> {
        let Request { work, reply } = *self;
        Box::pin(async move {
            match work(txn).await {
                Ok(value) => Ok(
                    Box::new(move |committed: &std::result::Result<(), String>| {
                        let _ = reply.send(match committed {
                            Ok(()) => Ok(value),
                            Err(why) => Err(Error::Unavailable(format!(
                                "the write was not committed: {why}; retry"
                            ))),
                        });
                    }) as Settle,
                ),
                Err(e) => Err(Box::new(move || {
                    let _ = reply.send(Err(e));
                }) as Refuse),
            }
        })
    }

    fn fail(self: Box<Self>, error: Error) {
        let _ = self.reply.send(Err(error));
    }
}

/// The handle requests are queued through; cheap to clone.
#[derive(Clone, Debug)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Writer {
    /// Starts the writer task; it ends when the last handle is dropped.
    pub(super) fn start(log: Log) -> Self {
        let (queue, requests) = mpsc::channel(QUEUE);
        tokio::spawn(run(log, requests));
        Self { queue }
    }

    /// Runs `work` in the next batch and answers after its commit.
    pub async fn write<F, R>(&self, work: F) -> Result<R>
    where
        F: for<'a> FnOnce(&'a DatabaseTransaction) -> TxnFuture<'a, Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Request { work, reply });
        self.queue
            .send(job)
            .await
            .map_err(|_| Error::Unavailable("ticketd is shutting down".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the writer stopped; retry".into()))?
    }
}

async fn run(log: Log, mut requests: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (txn, numbering) = match log.begin_write().await {
            Ok(begun) => begun,
            Err(e) => {
                let why = e.to_string();
                for job in batch.drain(..) {
                    job.fail(Error::Unavailable(format!("cannot start a write: {why}")));
                }
                continue;
            }
        };
        let begun = Batch {
            numbering,
            endpoints: HashMap::new(),
            outbox: Vec::new(),
            flushed: 0,
        };
        let (settles, numbering) = BATCH
            .scope(RefCell::new(begun), run_batch(&txn, &mut batch))
            .await;
        let committed = match numbering {
            Ok(numbering) => log.commit(txn, &numbering).await,
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
        .map_err(|e| {
            tracing::warn!(error = %e, requests = settles.len(), "a batch of writes failed to commit");
            e.to_string()
        });
        for settle in settles {
            settle(&committed);
        }
    }
}

/// Opens a request's savepoint, releasing the previous request's in the
/// same round trip (COMMIT releases the last one).
const NEXT_SAVEPOINT: &str = "RELEASE SAVEPOINT request; SAVEPOINT request";
const FIRST_SAVEPOINT: &str = "SAVEPOINT request";
/// Undoes a failed request's writes and closes its savepoint.
const UNDO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT request; RELEASE SAVEPOINT request";

/// Runs the batch's requests one after another on `txn`, each in a
/// savepoint, and answers those that fail. Returns how to answer the others
/// and the numbering to write back, or why the batch must not be committed
/// (a failed request's writes could not be undone: every request of the
/// batch is then refused, none committed).
async fn run_batch(
    txn: &DatabaseTransaction,
    batch: &mut Vec<Box<dyn Job>>,
) -> (Vec<Settle>, Result<Numbering>) {
    let mut settles = Vec::with_capacity(batch.len());
    let mut open = false;
    let mut jobs = batch.drain(..);
    while let Some(job) = jobs.next() {
        let savepoint = if open {
            NEXT_SAVEPOINT
        } else {
            FIRST_SAVEPOINT
        };
        if let Err(e) = txn.execute_unprepared(savepoint).await {
            let why = format!("cannot open a savepoint: {e}");
            for job in std::iter::once(job).chain(jobs) {
                job.fail(Error::Unavailable(format!("{why}; retry")));
            }
            return (settles, Err(Error::Unavailable(why)));
        }
        let taken = mark();
        match job.run(txn).await {
            Ok(settle) => {
                settles.push(settle);
                open = true;
            }
            Err(refuse) => {
                // Nothing of this request stays (its numbers neither); its
                // neighbours do.
                give_back(taken);
                let undone = txn.execute_unprepared(UNDO_SAVEPOINT).await;
                refuse();
                open = false;
                if let Err(e) = undone {
                    let why = format!("a failed write could not be undone: {e}");
                    for job in jobs {
                        job.fail(Error::Unavailable(format!("{why}; retry")));
                    }
                    return (settles, Err(Error::Unavailable(why)));
                }
            }
        }
    }
    // The outbox rows of the requests that stay, in one statement.
    let rows = BATCH.with(|b| {
        let mut batch = b.borrow_mut();
        let flushed = batch.flushed;
        batch.outbox.split_off(flushed)
    });
    if let Err(e) = outbox::write_deliveries(txn, rows).await {
        let why = format!("cannot write the batch's outbox rows: {e}");
        return (settles, Err(Error::Unavailable(why)));
    }
    (settles, Ok(BATCH.with(|b| b.borrow().numbering.clone())))
}

#[cfg(test)]
mod tests {
    use sea_orm::ConnectionTrait;

    use super::super::{
        CONSULTATION_NUMBER, EVENT_SEQUENCE, Store, current_value, next_value, outbox,
    };
    use crate::domain::Error;
    use crate::domain::notify::Endpoint;

    /// Takes two event sequences and bumps a counter no batch numbers;
    /// then fails if asked to.
    async fn take(store: &Store, fail: bool) -> Result<(i64, i64), Error> {
        store
            .write(move |txn| {
                Box::pin(async move {
                    let first = next_value(txn, EVENT_SEQUENCE).await?;
                    let second = next_value(txn, EVENT_SEQUENCE).await?;
                    txn.execute_unprepared(
                        "UPDATE counters SET value = value + 100 WHERE name = 'consultation_number'",
                    )
                    .await
                    .map_err(super::super::db_error)?;
                    match fail {
                        true => Err(Error::FailedPrecondition("asked to fail".into())),
                        false => Ok((first, second)),
                    }
                })
            })
            .await
    }

    /// The three requests queue before the writer runs (a current-thread
    /// runtime), so they share one batch: the middle one fails after taking
    /// numbers and writing, and its neighbours keep a gap-free sequence.
    async fn a_failed_request_gives_its_numbers_back(url: &str) {
        let store = Store::connect(url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let (ok, failed, next) =
            tokio::join!(take(&store, false), take(&store, true), take(&store, false));
        assert_eq!(ok.expect("first request"), (1, 2));
        assert!(matches!(failed, Err(Error::FailedPrecondition(_))));
        assert_eq!(
            next.expect("third request"),
            (3, 4),
            "the failed request's numbers"
        );
        let conn = store.conn();
        assert_eq!(current_value(conn, EVENT_SEQUENCE).await.unwrap(), 4);
        // The two requests that succeeded wrote; the failed one did not.
        assert_eq!(current_value(conn, CONSULTATION_NUMBER).await.unwrap(), 200);
        // The next batch numbers on from what the last one wrote back.
        assert_eq!(take(&store, false).await.expect("next batch"), (5, 6));
        store.close().await;
    }

    /// The webhook endpoints of `account` as a request of the batch sees them.
    async fn endpoints(store: &Store, account: &'static str) -> Vec<String> {
        let listed = store
            .write(move |txn| {
                Box::pin(async move { outbox::list_endpoints(txn, Some(account), 20).await })
            })
            .await
            .expect("list endpoints");
        listed.into_iter().map(|e| e.id).collect()
    }

    /// A batch remembers the endpoints it read, and forgets them when one
    /// of its requests registers another: the request after it sees it.
    async fn a_batch_sees_an_endpoint_registered_inside_it(url: &str) {
        let store = Store::connect(url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let register = store.write(|txn| {
            Box::pin(async move {
                let endpoint = Endpoint {
                    id: "e1".into(),
                    account: "acme".into(),
                    url: "http://127.0.0.1:9/hook".into(),
                    secret: "s".repeat(16),
                    event_types: vec![],
                    paused: false,
                    created_by: "root".into(),
                    created_at: 0,
                    updated_at: 0,
                };
                outbox::insert_endpoint(txn, &endpoint).await
            })
        });
        let (before, (), after) = tokio::join!(
            endpoints(&store, "acme"),
            async { register.await.expect("register") },
            endpoints(&store, "acme")
        );
        assert_eq!(before, Vec::<String>::new());
        assert_eq!(after, vec!["e1".to_owned()]);
        store.close().await;
    }

    /// An outbox row of ticket `ticket`, due at once.
    fn delivery(id: &str, ticket: &str) -> outbox::NewDelivery {
        outbox::tests::due_row(id, ticket, 1)
    }

    /// A batch holds its requests' outbox rows for one INSERT before its
    /// commit; a request that reads or updates the outbox sees its
    /// neighbours' rows first. Here the middle request flushes the first
    /// one's row (pausing an endpoint does) and then fails: the rollback of
    /// its savepoint takes the row out of the database again, and the batch
    /// must insert it again, while the failed request's own row is dropped.
    async fn a_batch_writes_its_outbox_rows_once(url: &str) {
        let store = Store::connect(url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let first = store.write(|txn| {
            Box::pin(async move { outbox::insert_deliveries(txn, vec![delivery("a", "t1")]).await })
        });
        let failed = store.write(|txn| {
            Box::pin(async move {
                outbox::insert_deliveries(txn, vec![delivery("b", "t2")]).await?;
                outbox::set_paused(txn, "e1", true, 2).await?;
                Err::<(), _>(Error::FailedPrecondition("asked to fail".into()))
            })
        });
        let seen = store.write(|txn| {
            Box::pin(async move {
                outbox::insert_deliveries(txn, vec![delivery("c", "t3")]).await?;
                Ok(outbox::find_delivery(txn, "a").await?.is_some())
            })
        });
        let (first, failed, seen) = tokio::join!(first, failed, seen);
        first.expect("first request");
        assert!(matches!(failed, Err(Error::FailedPrecondition(_))));
        assert!(
            seen.expect("third request"),
            "a row written earlier in the batch"
        );
        let conn = store.conn();
        for (id, kept) in [("a", true), ("b", false), ("c", true)] {
            let found = outbox::find_delivery(conn, id).await.unwrap();
            assert_eq!(found.is_some(), kept, "row {id}");
        }
        store.close().await;
    }

    #[tokio::test]
    async fn a_failed_request_gives_its_numbers_back_on_sqlite() {
        use super::super::tests::on_fresh_sqlite;
        on_fresh_sqlite(a_failed_request_gives_its_numbers_back).await;
        on_fresh_sqlite(a_batch_sees_an_endpoint_registered_inside_it).await;
        on_fresh_sqlite(a_batch_writes_its_outbox_rows_once).await;
    }

    /// The same on PostgreSQL, when `TICKETD_TEST_POSTGRES_URL` names one
    /// (on a database of its own, dropped after).
    #[tokio::test]
    async fn a_failed_request_gives_its_numbers_back_on_postgres() {
        use super::super::tests::on_fresh_postgres;
        on_fresh_postgres("ticketd_writer", a_failed_request_gives_its_numbers_back).await;
        on_fresh_postgres(
            "ticketd_writer",
            a_batch_sees_an_endpoint_registered_inside_it,
        )
        .await;
        on_fresh_postgres("ticketd_writer", a_batch_writes_its_outbox_rows_once).await;
    }
}
