//! The deadline scheduler: sleeps until the next deadline (an auto-close, an
//! estimate or a due time to breach) or a poll interval, whichever comes
//! first, wakes early when a change sets a new deadline, and does what is due. Its state is the database's, so
//! it survives restarts, and several replicas may run it at once.
use std::time::Duration;

use tokio::sync::watch;

use super::consultations::Consultations;
use super::incidents::Incidents;

pub async fn run(
    incidents: Incidents,
    consultations: Consultations,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let wake = incidents.deadlines();
    let mut due = None;
    loop {
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
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
