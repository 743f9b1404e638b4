//! The outbox dispatcher: a background task per process (like the deadline
//! scheduler) that claims due outbox rows, POSTs them to their webhook
//! endpoints, and records the outcome — delivered, or a retry at the next
//! back-off step, or dead past the retry horizon. It never touches the RPC
//! that wrote the rows: they were committed with their event, and whatever
//! happens to a delivery happens here, later.
//!
//! At least once, in order per (endpoint, ticket): a claim leases a row
//! (moves its `next_attempt_at` past the attempt's timeout) and only picks a
//! row with no earlier undelivered, undead row of its endpoint and ticket
//! (`store::outbox::claim`). A process that dies mid-attempt leaves its rows
//! leased; they become due again when the lease ends, on any replica. A
//! receiver may then see a delivery twice (the first attempt may have
//! arrived): the delivery id tells the copies apart.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DbBackend;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinSet;

use super::mail::Mailer;
use super::webhook::WebhookClient;
use crate::config::NotifyArgs;
use crate::domain::clock::Clock;
use crate::domain::notify::{Channel, RetryPolicy};
use crate::store::Store;
use crate::store::outbox::{self, Claimed};

/// Attempts in flight at once, per process.
const IN_FLIGHT: usize = 32;
/// The longest wait between two attempts of one row.
const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Longest `last_error` kept.
const MAX_ERROR: usize = 500;

#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    timeout: Duration,
    poll: Duration,
    /// Rung when rows become due without an event (retry, resume).
    wake: Arc<Notify>,
    /// Sends e-mail rows; without it (no `--smtp-url`) they fail and are
    /// retried until the horizon, as for a receiver that is down.
    mailer: Option<Arc<Mailer>>,
    /// Posts webhook rows (http, and https with `--webhook-ca-file`'s roots).
    webhooks: WebhookClient,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        args: &NotifyArgs,
        wake: Arc<Notify>,
        mailer: Option<Arc<Mailer>>,
        webhooks: WebhookClient,
    ) -> Self {
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Self {
            store,
            clock,
            policy: RetryPolicy {
                base: micros(args.retry_base),
                max_delay: micros(MAX_DELAY),
                horizon: micros(args.retry_horizon),
            },
            timeout: args.timeout,
            poll: args.poll,
            wake,
            mailer,
            webhooks,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }

    /// A claimed row is the claimer's for an attempt's timeout, and as long
    /// again for recording the outcome; after that another may take it.
    fn lease(&self) -> i64 {
        i64::try_from(self.timeout.as_micros().saturating_mul(2))
            .unwrap_or(i64::MAX)
            .max(1_000_000)
    }

    /// Runs until `stop`: claims what is due whenever an event commits (any
    /// replica's, through `events`), a delivery ends (the next row of its
    /// ticket may be due), `wake` rings, or `poll` passes.
    pub async fn run<E: Clone>(
        self,
        mut events: broadcast::Receiver<E>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut in_flight = JoinSet::new();
        // The ids being attempted, by task, to give their leases back at a stop.
        let mut leased: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut events_open = true;
        loop {
            // Saturating: should a claim ever hand back more rows than it
            // was asked for, the dispatcher claims nothing more until its
            // attempts are back under the cap (a wrapped `room` claimed
            // every due row, again and again).
            let room = IN_FLIGHT.saturating_sub(in_flight.len());
            if room > 0 {
                let now = self.now();
                let claimed = match outbox::any_due(self.store.conn(), now).await {
                    Ok(true) => self.claim(now, room as u64).await,
                    Ok(false) => Ok(vec![]),
                    Err(e) => Err(e),
                };
                match claimed {
                    Ok(rows) => {
                        for row in rows {
                            let (me, id) = (self.clone(), row.id.clone());
                            let task = in_flight.spawn(async move { me.attempt(row).await });
                            leased.insert(task.id(), id);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot claim outbox rows; retrying"),
                }
            }
            tokio::select! {
                Some(done) = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                    // Attempts that time out together end together (their
                    // outcomes commit in one batch): take every one that has
                    // ended, so that the next claim is one for all of their
                    // room, not one claim (one writer request) per attempt.
                    let mut done = Some(done);
                    while let Some(ended) = done.take().or_else(|| in_flight.try_join_next_with_id()) {
                        let task = match ended {
                            Ok((task, ())) => task,
                            Err(e) => e.id(),
                        };
                        leased.remove(&task);
                    }
                }
                received = events.recv(), if events_open => {
                    if let Err(broadcast::error::RecvError::Closed) = received {
                        events_open = false;
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.changed() => break,
            }
        }
        // Attempts still running are dropped and their leases given back, so
        // that the next server (or a replica) takes them at once. Should that
        // fail (the database is going away too), the leases run out by themselves.
        in_flight.abort_all();
        let ids: Vec<String> = leased.into_values().collect();
        let now = self.now();
        let released = self
            .store
            .write(move |txn| Box::pin(async move { outbox::release(txn, &ids, now).await }))
            .await;
        if let Err(e) = released {
            tracing::debug!(error = %e, "cannot give back the leases of interrupted deliveries");
        }
    }

    /// Claims up to `limit` due rows. On SQLite through the process's one
    /// writer, like every write of the dispatcher's (see `failed`). On
    /// PostgreSQL beside it, as one statement of its own: its rows are
    /// picked `FOR UPDATE SKIP LOCKED` (as a replica's claim beside this
    /// one's writer is), it needs none of the batch's counters, and so a
    /// claim, however long, never holds up a batch of RPC writes. It runs on
    /// the pool whose statements are planned for their values every time
    /// (`Store::lists`): the generic plan of a statement first run on an
    /// empty outbox joins every due row with every pending one (5 s for a
    /// claim at 5,000 due rows, 50 ms planned for them).
    async fn claim(&self, now: i64, limit: u64) -> Result<Vec<Claimed>, crate::domain::Error> {
        let lease = now + self.lease();
        match self.store.backend() {
            DbBackend::Postgres => outbox::claim(self.store.lists(), now, lease, limit).await,
            _ => {
                self.store
                    .write(move |txn| {
                        Box::pin(async move { outbox::claim(txn, now, lease, limit).await })
                    })
                    .await
            }
        }
    }

    /// One attempt of a claimed row, and its outcome recorded.
    async fn attempt(&self, row: Claimed) {
        let channel = row.channel;
        let sent = match channel {
            Channel::Email => self.mail(&row).await,
            Channel::Webhook => match self.post(&row).await {
                Some(sent) => sent,
                // Nothing was attempted (a deleted or paused endpoint).
                None => return,
            },
        };
        let now = self.now();
        let recorded = match &sent {
            Ok(()) => {
                count(channel, "delivered");
                let id = row.id.clone();
                self.store
                    .write(move |txn| {
                        Box::pin(async move { outbox::delivered(txn, &id, now).await })
                    })
                    .await
            }
            Err(why) => {
                let failed = row.attempts + 1;
                let next = self.policy.next_attempt(failed, row.retry_from, now);
                let outcome = match next {
                    Some(_) => "retry",
                    None => "dead",
                };
                count(channel, outcome);
                tracing::debug!(delivery = %row.id, channel = channel.as_str(), error = %why, failed, outcome, "delivery attempt failed");
                if next.is_none() {
                    tracing::warn!(delivery = %row.id, channel = channel.as_str(), target = %row.endpoint_id, error = %why, "delivery is dead: its retry horizon has passed");
                }
                self.failed(&row.id, now, why.chars().take(MAX_ERROR).collect(), next)
                    .await
            }
        };
        if let Err(e) = recorded {
            // The lease runs out and the row is attempted again: at least once.
            tracing::warn!(error = %e, delivery = %row.id, "cannot record a delivery's outcome");
        }
    }

    /// Records a failed attempt: due again at `next`, or dead. Like every
    /// write of the dispatcher's, through the process's one writer (group
    /// commit), never beside it: on SQLite a second writer waits in the busy
    /// handler and stalls the RPCs' batches behind it (measured with
    /// `ticketd-bench-hang`: 32 hanging attempts timing out together put
    /// CreateIncident's p999 at 0.44–0.55 s, p99 up to 5.4× the plain server's).
    async fn failed(
        &self,
        id: &str,
        now: i64,
        why: String,
        next: Option<i64>,
    ) -> Result<(), crate::domain::Error> {
        let id = id.to_owned();
        self.store
            .write(move |txn| {
                Box::pin(async move { outbox::failed(txn, &id, now, &why, next).await })
            })
            .await
    }

    /// An e-mail row: one SMTP attempt.
    async fn mail(&self, row: &Claimed) -> Result<(), String> {
        match &self.mailer {
            Some(mailer) => mailer.send(&row.id, &row.payload).await,
            None => Err("e-mail is off on this server (no --smtp-url)".into()),
        }
    }

    /// A webhook row: one signed POST to its endpoint; `None` when nothing
    /// was attempted (the endpoint is gone or paused, recorded here).
    async fn post(&self, row: &Claimed) -> Option<Result<(), String>> {
        let conn = self.store.conn();
        let endpoint = match outbox::find_endpoint(conn, &row.endpoint_id).await {
            Ok(Some(e)) => e,
            Ok(None) => {
                let now = self.now();
                let gone = self.failed(&row.id, now, "the endpoint was deleted".into(), None);
                if let Err(e) = gone.await {
                    tracing::warn!(error = %e, delivery = %row.id, "cannot record a delivery");
                }
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, delivery = %row.id, "cannot read its endpoint");
                return None;
            }
        };
        if endpoint.paused {
            let (id, now) = (row.id.clone(), self.now());
            let parked = self
                .store
                .write(move |txn| Box::pin(async move { outbox::park(txn, &id, now).await }))
                .await;
            if let Err(e) = parked {
                tracing::warn!(error = %e, delivery = %row.id, "cannot park a delivery");
            }
            return None;
        }
        let sent = self
            .webhooks
            .post(
                &endpoint.url,
                &endpoint.secret,
                &row.id,
                row.payload.clone(),
            )
            .await;
        Some(sent)
    }
}

/// Counts an attempt's outcome, per channel.
fn count(channel: Channel, outcome: &'static str) {
    match channel {
        Channel::Email => {
            metrics::counter!("ticketd_email_deliveries_total", "outcome" => outcome).increment(1)
        }
        Channel::Webhook => {
            metrics::counter!("ticketd_webhook_deliveries_total", "outcome" => outcome).increment(1)
        }
    }
}
