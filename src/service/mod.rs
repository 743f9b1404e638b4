//! Use cases: load, apply the domain rule, persist with its event in one
//! transaction.
pub mod consultations;
pub mod dispatcher;
pub mod export;
pub mod incidents;
pub mod mail;
pub mod notify;
pub mod scheduler;
pub mod thread;
pub mod tickets;
pub mod webhook;

use chrono::{DateTime, Utc};

use crate::domain::Result;
use crate::store::Store;

/// Whether ticketd can do its work now: the database answers. What health
/// reports follows it.
#[derive(Clone)]
pub struct Readiness {
    store: Store,
}

impl Readiness {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn check(&self) -> Result<()> {
        self.store.ping().await
    }
}

/// Microseconds since the Unix epoch, the stored form of an instant.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}
