//! Watch streams (WatchTicket, WatchNotifications): replay from the log, then
//! live events from the hub, in order, without gaps or repeats.
//!
//! Each stream is one task writing to a small bounded channel (tonic's
//! streaming pattern). `cursor` is the last global sequence the stream has
//! dealt with — sent, or filtered out — so events are never sent twice, and
//! progress messages carry it as a safe point to resume from.
//!
//! A server holds thousands of idle streams, so what each one keeps is small:
//! the channel carries boxed messages (tokio allocates a channel's slots 32 at
//! a time, so inline ones would cost 32 `WatchResponse`s, about 9 KiB, per
//! stream), and the replay is boxed, so that the task's future does not carry
//! the size of its database futures while the stream is live.
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::convert;
use crate::domain::event::{Audience, Event};
use crate::domain::principal::Locale;
use crate::domain::{Error, Result};
use crate::events::Hub;
use crate::pb::{Progress, WatchResponse, watch_response};

/// Messages buffered per stream before the task waits for the client.
const BUFFER: usize = 32;
/// Events read from the log per query while replaying.
const REPLAY_PAGE: u64 = 500;

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
        open(&self.hub, self.settings, audience, after_sequence, locale).await
    }
}

async fn open(
    hub: &Arc<Hub>,
    settings: WatchSettings,
    audience: Audience,
    after_sequence: u64,
    locale: Locale,
) -> Result<WatchStream> {
    let after = i64::try_from(after_sequence)
        .map_err(|_| Error::invalid("after_sequence", "is too large"))?;
    let head = hub.log_head().await?;
    if after > head {
        // The head is the platform's event count: not for a requester's eyes.
        return Err(Error::OutOfRange(format!(
            "after_sequence {after} is beyond the last event; resume from a sequence you received"
        )));
    }
    let (tx, rx) = mpsc::channel(BUFFER);
    let stream = Subscriber {
        hub: hub.clone(),
        audience,
        cursor: after,
        locale,
        tx,
        settings,
    };
    tokio::spawn(stream.run());
    Ok(Box::pin(
        ReceiverStream::new(rx).map(|message| message.map(|boxed| *boxed)),
    ))
}

struct Subscriber {
    hub: Arc<Hub>,
    audience: Audience,
    cursor: i64,
    locale: Locale,
    tx: mpsc::Sender<Result<Box<WatchResponse>, Status>>,
    settings: WatchSettings,
}

/// Why a stream's task ends.
enum End {
    ClientGone,
    Failed(Status),
}

impl Subscriber {
    async fn run(mut self) {
        let mut stop = self.hub.stopping();
        // Subscribe before replaying: whatever commits meanwhile is either in
        // the replay or in the receiver, and the cursor drops the overlap.
        let mut live = self.hub.subscribe();
        let result: Result<(), End> = async {
            Box::pin(self.replay()).await?;
            let mut idle = tokio::time::interval(self.settings.progress_interval);
            idle.reset();
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => {
                        return Err(End::Failed(Status::unavailable(
                            "ticketd is shutting down; reconnect and resume from your last sequence",
                        )));
                    }
                    received = live.recv() => match received {
                        Ok(event) => {
                            if event.sequence <= self.cursor {
                                continue;
                            }
                            if self.audience.sees(&event) {
                                self.send_event(&event).await?;
                                idle.reset();
                            }
                            self.cursor = event.sequence;
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, "slow stream fell behind; catching up from the log");
                            Box::pin(self.replay()).await?;
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            return Err(End::Failed(Status::unavailable("event hub stopped; reconnect and resume")));
                        }
                    },
                    _ = idle.tick() => {
                        let progress = watch_response::Kind::Progress(Progress { head_sequence: self.cursor as u64 });
                        self.send(WatchResponse { kind: Some(progress) }).await?;
                    }
                }
            }
        }
        .await;
        if let Err(End::Failed(status)) = result {
            let _ = self.tx.send(Err(status)).await;
        }
    }

    /// Sends every logged event after the cursor that the audience sees.
    async fn replay(&mut self) -> Result<(), End> {
        let head = self
            .hub
            .log_head()
            .await
            .map_err(|e| End::Failed(e.into()))?;
        loop {
            let page = self
                .hub
                .replay(&self.audience, self.cursor, REPLAY_PAGE)
                .await
                .map_err(|e| End::Failed(e.into()))?;
            for event in &page {
                self.send_event(event).await?;
                self.cursor = event.sequence;
            }
            if (page.len() as u64) < REPLAY_PAGE {
                break;
            }
        }
        // Everything up to the head read before replaying has been dealt with.
        self.cursor = self.cursor.max(head);
        Ok(())
    }

    async fn send_event(&self, event: &Event) -> Result<(), End> {
        let event = convert::event(event, self.locale);
        self.send(WatchResponse {
            kind: Some(watch_response::Kind::Event(event)),
        })
        .await
    }

    async fn send(&self, message: WatchResponse) -> Result<(), End> {
        self.tx
            .send(Ok(Box::new(message)))
            .await
            .map_err(|_| End::ClientGone)
    }
}
