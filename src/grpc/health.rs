//! What the gRPC health service reports, for load balancers and operators:
//! SERVING while the database answers; NOT_SERVING once it has failed two
//! checks in a row (SERVING again when it answers), and from the shutdown
//! signal on, while open streams drain. Overall ("") and per service alike.
use std::time::Duration;

use tokio::sync::watch;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::consultation_api::ConsultationApi;
use super::incident_api::IncidentApi;
use super::notification_api::NotificationApi;
use super::webhook_api::WebhookApi;
use crate::pb::consultation_service_server::ConsultationServiceServer;
use crate::pb::incident_service_server::IncidentServiceServer;
use crate::pb::notification_service_server::NotificationServiceServer;
use crate::pb::webhook_service_server::WebhookServiceServer;
use crate::service::Readiness;

/// The names health is reported under.
const SERVICES: [&str; 5] = [
    "",
    <IncidentServiceServer<IncidentApi> as NamedService>::NAME,
    <ConsultationServiceServer<ConsultationApi> as NamedService>::NAME,
    <NotificationServiceServer<NotificationApi> as NamedService>::NAME,
    <WebhookServiceServer<WebhookApi> as NamedService>::NAME,
];

/// A name that is SERVING for as long as the process answers, database or
/// not, draining or not: what a liveness probe asks (restarting a replica
/// does not bring a database back, nor finish a drain sooner).
pub const LIVENESS: &str = "liveness";

/// Failed checks in a row before the server reports NOT_SERVING (one slow
/// check under load is not an outage).
const FAILURES: u32 = 2;

async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    for service in SERVICES {
        reporter.set_service_status(service, status).await;
    }
}

/// Reports SERVING, then checks the database every `interval` in a task of
/// its own until `stop`.
pub async fn start(
    reporter: HealthReporter,
    readiness: Readiness,
    interval: Duration,
    stop: watch::Receiver<bool>,
) {
    set_all(&reporter, ServingStatus::Serving).await;
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
    tokio::spawn(watch_database(reporter, readiness, interval, stop));
}

async fn watch_database(
    reporter: HealthReporter,
    readiness: Readiness,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let (mut failures, mut serving) = (0, true);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let check = tokio::time::timeout(interval.max(Duration::from_secs(1)), readiness.check());
        match check.await {
            Ok(Ok(())) => {
                failures = 0;
                if !serving {
                    tracing::info!("the database answers again: SERVING");
                    set_all(&reporter, ServingStatus::Serving).await;
                    serving = true;
                }
            }
            failed => {
                failures += 1;
                if serving && failures >= FAILURES {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {interval:?}"),
                    };
                    tracing::warn!(%error, "the database does not answer: NOT_SERVING");
                    set_all(&reporter, ServingStatus::NotServing).await;
                    serving = false;
                }
            }
        }
    }
    set_all(&reporter, ServingStatus::NotServing).await;
}

/// Asks the server at `addr` for the health of `service` ("" for the whole
/// server), as `ticketd health` does. An unspecified address is asked on
/// loopback.
pub async fn probe(
    mut addr: std::net::SocketAddr,
    service: &str,
    timeout: Duration,
) -> anyhow::Result<ServingStatus> {
    use anyhow::Context as _;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response};
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let ask = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .with_context(|| format!("{addr} did not answer the health check"))?;
        Ok(
            match health_check_response::ServingStatus::try_from(response.into_inner().status) {
                Ok(health_check_response::ServingStatus::Serving) => ServingStatus::Serving,
                Ok(health_check_response::ServingStatus::NotServing) => ServingStatus::NotServing,
                _ => ServingStatus::Unknown,
            },
        )
    };
    tokio::time::timeout(timeout, ask)
        .await
        .with_context(|| format!("no answer from {addr} within {timeout:?}"))?
}
