//! Live fan-out of committed events.
//!
//! One follower task per process tails the log: it is woken by local commits
//! (`Store::committed`), by PostgreSQL NOTIFY from other replicas, and by a
//! periodic poll that covers a lost notification. It reads the new events once,
//! in sequence order, and broadcasts them to every open stream, so delivery
//! costs one query per wake-up for the whole process, not one per subscriber.
//! The log stays the truth: a stream that falls behind the broadcast ring
//! re-reads what it missed from the log.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sea_orm::DbBackend;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};

use crate::domain::Result;
use crate::domain::event::{Audience, Event};
use crate::store::events as log;
use crate::store::{LOG_CHANNEL, Store};

/// Events read from the log per query.
const BATCH: u64 = 1000;

/// A committed event as broadcast: decoded once, shared by every stream.
pub type Shared = Arc<Event>;

pub struct Hub {
    store: Store,
    tx: broadcast::Sender<Shared>,
    /// The last sequence broadcast.
    head: AtomicI64,
    /// How often the follower reads the log without a wake-up.
    poll: Duration,
    stop: watch::Receiver<bool>,
}

impl Hub {
    /// Starts the follower at the current end of the log. It stops when
    /// `stop` turns true. `buffer` events are kept for streams that fall
    /// behind; a stream further behind re-reads the log. Without a wake-up
    /// the follower reads the log every `poll`.
    pub async fn start(
        store: Store,
        buffer: usize,
        poll: Duration,
        stop: watch::Receiver<bool>,
    ) -> Result<Arc<Self>> {
        let head = log::head(store.conn()).await?;
        let (tx, _) = broadcast::channel(buffer.max(1));
        let hub = Arc::new(Self {
            store,
            tx,
            head: AtomicI64::new(head),
            poll,
            stop,
        });
        tokio::spawn(hub.clone().follow());
        Ok(hub)
    }

    /// A receiver of every event broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Shared> {
        self.tx.subscribe()
    }

    /// The last committed sequence, read from the database.
    pub async fn log_head(&self) -> Result<i64> {
        log::head(self.store.conn()).await
    }

    /// Events after `after` that `audience` sees, from the log.
    pub async fn replay(&self, audience: &Audience, after: i64, limit: u64) -> Result<Vec<Event>> {
        log::list_after(self.store.conn(), audience, after, limit).await
    }

    /// Resolves when the server starts shutting down.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    async fn follow(self: Arc<Self>) {
        let committed = self.store.committed();
        let mut stop = self.stop.clone();
        let mut listener = None;
        loop {
            if listener.is_none() && self.store.backend() == DbBackend::Postgres {
                listener = self.listen().await;
                if listener.is_some() {
                    // What other replicas committed while nobody listened
                    // (at start, or during an outage) sent its NOTIFY to no one.
                    self.catch_up_or_warn().await;
                }
            }
            tokio::select! {
                _ = committed.notified() => {}
                notification = next_notification(&mut listener) => {
                    if let Err(e) = notification {
                        tracing::warn!(error = %e, "lost the LISTEN connection; polling until it is back");
                        listener = None;
                    }
                }
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.changed() => return,
            }
            self.catch_up_or_warn().await;
        }
    }

    async fn catch_up_or_warn(&self) {
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, "could not read the event log; retrying");
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let connect = async {
            let mut listener = PgListener::connect(self.store.url()).await?;
            listener.listen(LOG_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        match connect.await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for other replicas' events; polling instead");
                None
            }
        }
    }

    /// Broadcasts every committed event after the head, in order.
    async fn catch_up(&self) -> Result<()> {
        let everything = Audience::everything();
        loop {
            let head = self.head.load(Ordering::Acquire);
            let batch = log::list_after(self.store.conn(), &everything, head, BATCH).await?;
            let Some(last) = batch.last().map(|e| e.sequence) else {
                return Ok(());
            };
            for event in batch {
                // No receivers is fine: nobody is watching.
                let _ = self.tx.send(Arc::new(event));
            }
            self.head.store(last, Ordering::Release);
        }
    }
}

async fn next_notification(listener: &mut Option<PgListener>) -> Result<(), sea_orm::sqlx::Error> {
    match listener {
        Some(l) => l.recv().await.map(drop),
        None => std::future::pending().await,
    }
}
