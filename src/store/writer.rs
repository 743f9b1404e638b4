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
//! every request of the batch (none of them was committed).
use std::future::Future;
use std::pin::Pin;

use sea_orm::{DatabaseTransaction, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use super::{Log, db_error};
use crate::domain::{Error, Result};

/// A future borrowing the batch's transaction.
pub type TxnFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// At most this many requests share one commit.
pub const MAX_BATCH: usize = 256;
/// Requests waiting for the writer; past this, callers wait to enqueue.
const QUEUE: usize = 4096;

/// What the writer does with a request once its batch has been committed
/// (or has failed to commit).
type Settle = Box<dyn FnOnce(&std::result::Result<(), String>) + Send>;

/// A queued write, its type erased.
trait Job: Send {
    /// Runs the request in a savepoint of `txn`; returns how to answer it
    /// once the batch's commit is known (`None`: already answered).
    fn run<'a>(self: Box<Self>, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Option<Settle>>;
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
    fn run<'a>(self: Box<Self>, txn: &'a DatabaseTransaction) -> TxnFuture<'a, Option<Settle>> {
        let Request { work, reply } = *self;
        Box::pin(async move {
            let savepoint = match txn.begin().await {
                Ok(s) => s,
                Err(e) => {
                    let _ = reply.send(Err(db_error(e)));
                    return None;
                }
            };
            let outcome = work(&savepoint).await;
            let outcome = match outcome {
                Ok(value) => savepoint.commit().await.map(|()| value).map_err(db_error),
                Err(e) => {
                    // Nothing of this request stays; its neighbours do.
                    let _ = savepoint.rollback().await;
                    Err(e)
                }
            };
            match outcome {
                Ok(value) => Some(
                    Box::new(move |committed: &std::result::Result<(), String>| {
                        let _ = reply.send(match committed {
                            Ok(()) => Ok(value),
                            Err(why) => Err(Error::Unavailable(format!(
                                "the write was not committed: {why}; retry"
                            ))),
                        });
                    }) as Settle,
                ),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    None
                }
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
        let txn = match log.begin_write().await {
            Ok(txn) => txn,
            Err(e) => {
                let why = e.to_string();
                for job in batch.drain(..) {
                    job.fail(Error::Unavailable(format!("cannot start a write: {why}")));
                }
                continue;
            }
        };
        let mut settles = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            settles.extend(job.run(&txn).await);
        }
        let committed = log.commit(txn).await.map_err(|e| {
            tracing::warn!(error = %e, requests = settles.len(), "a batch of writes failed to commit");
            e.to_string()
        });
        for settle in settles {
            settle(&committed);
        }
    }
}
