//! The deadline scheduler: sleeps until the next auto-close deadline (or a
//! poll interval, whichever comes first), wakes early when a change sets a
//! new deadline, and finalizes what is due. Its state is the database's, so
//! it survives restarts, and several replicas may run it at once.
use std::time::Duration;

use tokio::sync::watch;

use super::incidents::Incidents;
use super::to_micros;

pub async fn run(incidents: Incidents, poll: Duration, mut stop: watch::Receiver<bool>) {
    let wake = incidents.deadlines();
    loop {
        if let Err(e) = incidents.auto_close_due().await {
            tracing::warn!(error = %e, "auto-close failed; retrying");
        }
        let now = to_micros(incidents.clock().now());
        let sleep = match incidents.next_deadline().await {
            Ok(Some(at)) => Duration::from_micros(u64::try_from(at - now).unwrap_or(0)).min(poll),
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
