//! The database ending connections under load (PostgreSQL: an administrator's
//! pg_terminate_backend, a restart, a failover).
use std::time::Duration;

use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;
use crate::process::ServerProcess;

#[tokio::test]
async fn connections_ended_mid_request_are_unavailable_logged_in_one_line_and_the_pool_heals() {
    if !postgres_only("requests whose database connection is ended by the server") {
        return;
    }
    let app = TestApp::spawn().await;
    let server = ServerProcess::start(&app.database_url).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = vec![];
    for client in 0..8 {
        let channel = server.channel.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut incidents = incident_service_client::IncidentServiceClient::new(channel);
            let token = requester("acme");
            let (mut ok, mut failures) = (0, vec![]);
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let created = incidents
                    .create_incident(req(&token, new_incident(&format!("EST-{client}-{n}"))))
                    .await
                    .map(|_| ());
                let listed = incidents
                    .list_incidents(req(&agent(), ListIncidentsRequest::default()))
                    .await
                    .map(|_| ());
                for result in [created, listed] {
                    match result {
                        Ok(()) => ok += 1,
                        Err(status) => failures.push(status),
                    }
                }
            }
            (ok, failures)
        }));
    }
    let mut ended = 0;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        ended += app.end_connections().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failures) = (0, vec![]);
    for client in clients {
        let (o, f) = client.await.unwrap();
        ok += o;
        failures.extend(f);
    }
    assert!(ended >= 6, "ended only {ended} connections");
    assert!(ok > 0, "no call succeeded");
    assert!(
        !failures.is_empty(),
        "no call failed: the test ended no connection mid-request ({ok} calls)"
    );
    for l in server.log() {
        if l.contains("ERROR") || l.contains("WARN") {
            eprintln!("LOG {l}")
        }
    }
    for status in &failures {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    // The pool heals: calls succeed again without the server restarting.
    let mut incidents = incident_service_client::IncidentServiceClient::new(server.channel.clone());
    for n in 0..20 {
        incidents
            .create_incident(req(
                &requester("acme"),
                new_incident(&format!("EST-AFTER-{n}")),
            ))
            .await
            .expect("a call after the connections were ended");
    }
    // Each failure is one WARN line; nothing is logged as an internal error
    // or with a backtrace.
    let log = server.log();
    let unavailable = log
        .iter()
        .filter(|l| l.contains("database unavailable"))
        .count();
    assert!(
        unavailable >= failures.len(),
        "{unavailable} lines for {} failures",
        failures.len()
    );
    for line in &log {
        assert!(
            !line.contains("ERROR")
                && !line.contains("internal error")
                && !line.contains("backtrace"),
            "{line}"
        );
    }
    eprintln!(
        "{} calls served, {} UNAVAILABLE, {ended} connections ended",
        ok,
        failures.len()
    );
}
