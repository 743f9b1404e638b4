//! Watch streams (WatchTicket, WatchNotifications): replay from the log, then
//! live events from the hub, in order, without gaps or repeats.
//!
//! A stream is pulled: it does work only when tonic asks for its next message,
//! which hyper does only once the previous one has gone out to the client. So
//! a client that reads nothing costs what it is (the stream's state, one
//! encoded message waiting for window), not the replay it asked for: the log
//! is read a page at a time as the client takes it, pages start at one event
//! and double while the client keeps reading, and a page kept in memory is cut
//! at [`PAGE_BYTES`]. Live events come from the hub's broadcast ring, which
//! every stream shares; a stream that is not read falls behind the ring and,
//! when read again, catches up from the log. Dropping the stream (the client
//! left) frees everything at once: there is no task of its own to wind down.
//!
//! (tonic's examples spawn a task per stream writing into a bounded channel;
//! that task runs ahead of the client by the channel's size plus whatever page
//! it is holding, which for a replay of ~9 KiB comments was megabytes per
//! stream nobody reads.)
//!
//! `cursor` is the last global sequence the stream has dealt with — sent, or
//! filtered out — so events are never sent twice, and progress messages carry
//! it as a safe point to resume from.
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::{broadcast, watch};
use tokio::time::{Interval, MissedTickBehavior};
use tonic::Status;

use super::convert;
use crate::domain::event::{Audience, Event};
use crate::domain::principal::Locale;
use crate::domain::{Error, Result};
use crate::events::{Hub, Shared};
use crate::pb::{Progress, WatchResponse, watch_response};

/// Most events read from the log per query while replaying.
const REPLAY_PAGE: u64 = 512;
/// A replay page kept in memory is cut after this many encoded bytes (the
/// rest is read again with the next page).
const PAGE_BYTES: usize = 32 * 1024;

pub type WatchStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<WatchResponse, Status>> + Send>>;

/// How streams behave; from the server settings.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// An idle stream gets a progress message this often.
    pub progress_interval: Duration,
}

/// Opens watch streams; shared by the services that serve them.
#[derive(Clone)]
pub struct Watcher {
    hub: Arc<Hub>,
    settings: WatchSettings,
}

impl Watcher {
    pub fn new(hub: Arc<Hub>, settings: WatchSettings) -> Self {
        Self { hub, settings }
    }

    /// Validates the cursor and starts a stream of the events `audience` sees.
    pub async fn open(
        &self,
        audience: Audience,
        after_sequence: u64,
        locale: Locale,
    ) -> Result<WatchStream> {
        let after = i64::try_from(after_sequence)
            .map_err(|_| Error::invalid("after_sequence", "is too large"))?;
        // Subscribe before reading the head: whatever commits afterwards is
        // in the receiver, and the cursor drops the overlap with the replay.
        let live = self.hub.subscribe();
        let head = self.hub.log_head().await?;
        if after > head {
            // The head is the platform's event count: not for a requester's eyes.
            return Err(Error::OutOfRange(format!(
                "after_sequence {after} is beyond the last event; resume from a sequence you received"
            )));
        }
        let period = self.settings.progress_interval;
        let mut idle = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let stream = Subscriber {
            hub: self.hub.clone(),
            audience,
            cursor: after,
            locale,
            live,
            stop: self.hub.stopping(),
            idle,
            replay: Some(Replay::up_to(head)),
            pending: VecDeque::new(),
            ended: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            stream,
            |mut stream| async move { stream.next().await.map(|message| (message, stream)) },
        )))
    }
}

/// A catch-up from the log in progress.
#[derive(Clone, Copy)]
struct Replay {
    /// Everything up to here is dealt with once the replay ends.
    head: i64,
    /// Events to ask for with the next page.
    page: u64,
}

impl Replay {
    fn up_to(head: i64) -> Self {
        Self { head, page: 1 }
    }
}

struct Subscriber {
    hub: Arc<Hub>,
    audience: Audience,
    cursor: i64,
    locale: Locale,
    live: broadcast::Receiver<Shared>,
    stop: watch::Receiver<bool>,
    idle: Interval,
    replay: Option<Replay>,
    /// Read from the log, not yet sent: (sequence, message); no message for
    /// a sequence that only moves the cursor (the end of a replay).
    pending: VecDeque<(i64, Option<Box<WatchResponse>>)>,
    ended: bool,
}

impl Subscriber {
    /// The stream's next message; None once it has ended.
    async fn next(&mut self) -> Option<Result<WatchResponse, Status>> {
        if self.ended {
            return None;
        }
        let next = self.produce().await;
        if next.is_err() {
            self.ended = true;
        }
        Some(next)
    }

    async fn produce(&mut self) -> Result<WatchResponse, Status> {
        loop {
            if let Some((sequence, message)) = self.pending.pop_front() {
                if self.pending.is_empty() {
                    // Give the page's memory back, not just its contents.
                    self.pending = VecDeque::new();
                }
                self.cursor = self.cursor.max(sequence);
                if let Some(message) = message {
                    self.idle.reset();
                    return Ok(*message);
                }
                continue;
            }
            if self.replay.is_some() {
                // Boxed: an idle stream must not carry the size of a query future.
                Box::pin(self.read_page()).await?;
                continue;
            }
            tokio::select! {
                biased;
                _ = self.stop.changed() => {
                    return Err(Status::unavailable(
                        "ticketd is shutting down; reconnect and resume from your last sequence",
                    ));
                }
                received = self.live.recv() => match received {
                    Ok(event) => {
                        if event.sequence <= self.cursor {
                            continue;
                        }
                        self.cursor = event.sequence;
                        if self.audience.sees(&event) {
                            self.idle.reset();
                            return Ok(self.message(&event));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "slow stream fell behind; catching up from the log");
                        let head = Box::pin(self.hub.log_head()).await?;
                        self.replay = Some(Replay::up_to(head));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Status::unavailable("event hub stopped; reconnect and resume"));
                    }
                },
                _ = self.idle.tick() => {
                    let progress = watch_response::Kind::Progress(Progress { head_sequence: self.cursor as u64 });
                    return Ok(WatchResponse { kind: Some(progress) });
                }
            }
        }
    }

    /// Reads the next page of the replay into `pending`, cut at
    /// [`PAGE_BYTES`]; at the replay's end, also moves the cursor to the head
    /// it was reading up to.
    async fn read_page(&mut self) -> Result<(), Status> {
        let Some(Replay { head, page: limit }) = self.replay else {
            return Ok(());
        };
        let page = self.hub.replay(&self.audience, self.cursor, limit).await?;
        let complete = (page.len() as u64) < limit;
        let (mut bytes, mut cut) = (0, false);
        for event in &page {
            if bytes >= PAGE_BYTES {
                cut = true;
                break;
            }
            let message = self.message(event);
            bytes += message.encoded_len();
            self.pending
                .push_back((event.sequence, Some(Box::new(message))));
        }
        self.replay = if complete && !cut {
            // Everything up to the head read before replaying has been dealt with.
            self.pending.push_back((head, None));
            None
        } else {
            Some(Replay {
                head,
                page: (limit * 2).min(REPLAY_PAGE),
            })
        };
        Ok(())
    }

    fn message(&self, event: &Event) -> WatchResponse {
        WatchResponse {
            kind: Some(watch_response::Kind::Event(convert::event(
                event,
                self.locale,
            ))),
        }
    }
}
