//! The deadline scheduler: sleeps until the next deadline (an auto-close, an
//! estimate or a due time to breach) or a poll interval, whichever comes
//! first, wakes early when a change sets a new deadline, and does what is due. Its state is the database's, so
//! it survives restarts, and several replicas may run it at once.
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::consultations::Consultations;
use super::incidents::Incidents;

/// When the scheduler plans to wake next, and the signal that wakes it
/// earlier. Writers ring it only for a deadline before the planned wake-up,
/// so that a busy write path does not keep the scheduler querying.
#[derive(Debug)]
pub struct Alarm {
    wake: Notify,
    /// µs since the epoch; `i64::MIN` while the scheduler is awake and
    /// planning (every new deadline rings then: it may not have been read).
    planned: AtomicI64,
}

impl Default for Alarm {
    fn default() -> Self {
        Self {
            wake: Notify::new(),
            planned: AtomicI64::new(i64::MIN),
        }
    }
}

impl Alarm {
    /// A change set a deadline at `at` (µs): wakes the scheduler if it
    /// would otherwise sleep past it.
    pub fn set(&self, at: i64) {
        let planned = self.planned.load(Ordering::SeqCst);
        if planned == i64::MIN || at < planned {
            self.wake.notify_one();
        }
    }
}

pub async fn run(
    incidents: Incidents,
    consultations: Consultations,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let alarm = incidents.deadlines();
    let mut due = None;
    loop {
        alarm.planned.store(i64::MIN, Ordering::SeqCst);
        match incidents.auto_close_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(closed = n, "auto-closed incidents left waiting for data"),
            Err(e) => tracing::warn!(error = %e, "auto-close failed; retrying"),
        }
        match incidents.flow().breach_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(breached = n, "incidents passed their estimate"),
            Err(e) => tracing::warn!(error = %e, "incident SLA breach check failed; retrying"),
        }
        match consultations.flow().breach_due().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(breached = n, "consultations passed their due time"),
            Err(e) => tracing::warn!(error = %e, "consultation SLA breach check failed; retrying"),
        }
        let now = incidents.flow().now();
        if let Some(late) = due.take().map(|at| now - at).filter(|late| *late >= 0) {
            metrics::histogram!("ticketd_scheduler_lag_seconds").record(late as f64 / 1e6);
        }
        let next = async {
            Ok::<_, crate::domain::Error>(
                incidents
                    .next_deadline()
                    .await?
                    .into_iter()
                    .chain(consultations.flow().next_breach().await?)
                    .min(),
            )
        };
        let sleep = match next.await {
            Ok(Some(at)) => {
                due = Some(at);
                Duration::from_micros(u64::try_from(at - now).unwrap_or(0)).min(poll)
            }
            Ok(None) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next deadline");
                poll
            }
        };
        let wake_at = now.saturating_add(i64::try_from(sleep.as_micros()).unwrap_or(i64::MAX));
        alarm.planned.store(wake_at, Ordering::SeqCst);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = alarm.wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rings(alarm: &Alarm) -> bool {
        let woken = alarm.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable()
    }

    #[tokio::test]
    async fn the_alarm_rings_for_deadlines_before_the_planned_wake_up_only() {
        let alarm = Alarm::default();
        alarm.set(500);
        assert!(rings(&alarm), "while planning, every deadline rings");
        alarm.planned.store(1_000, Ordering::SeqCst);
        alarm.set(2_000);
        assert!(
            !rings(&alarm),
            "after the planned wake-up: it will be read then"
        );
        alarm.set(999);
        assert!(rings(&alarm), "before it: the scheduler must wake early");
    }
}
