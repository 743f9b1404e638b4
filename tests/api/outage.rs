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
    let ended = end_connections_six_times(&app, 400, &stop).await;
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

/// Reads `stream` until a progress message at or past `until` (or, with
/// `until` 0, the first progress message: the replay is over); returns the
/// events' sequences.
async fn read_to(
    stream: &mut tonic::Streaming<WatchResponse>,
    until: u64,
    what: &str,
) -> Result<Vec<u64>, tonic::Status> {
    use tokio_stream::StreamExt;
    let mut sequences = vec![];
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(message) = stream.next().await {
            match message?.kind {
                Some(watch_response::Kind::Event(e)) => sequences.push(e.sequence),
                Some(watch_response::Kind::Progress(p)) if p.head_sequence >= until => {
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(tonic::Status::aborted(format!(
            "the stream of {what} ended"
        )))
    })
    .await;
    read.unwrap_or_else(|_| panic!("waited 60 s for {what}"))?;
    Ok(sequences)
}

#[tokio::test]
async fn writes_acknowledged_while_connections_are_ended_are_all_kept_in_gap_free_order_and_watched()
 {
    if !postgres_only("write durability while the database ends connections") {
        return;
    }
    let app = TestApp::spawn().await;
    let server = ServerProcess::start(&app.database_url).await;
    let mut feed = notification_feed(&server.channel, &agent(), 0).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = vec![];
    for client in 0..8 {
        let channel = server.channel.clone();
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut incidents = incident_service_client::IncidentServiceClient::new(channel);
            let token = requester("acme");
            // (incident id, acknowledged comment ids)
            let mut acknowledged: Vec<(String, Vec<String>)> = vec![];
            let mut failures = vec![];
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                match incidents
                    .create_incident(req(&token, new_incident(&format!("EST-{client}-{n}"))))
                    .await
                {
                    Ok(created) => acknowledged.push((created.into_inner().id, vec![])),
                    Err(status) => failures.push(status),
                }
                let Some((id, comments)) = acknowledged.last_mut() else {
                    continue;
                };
                let comment = incidents
                    .add_comment(req(
                        &token,
                        AddCommentRequest {
                            ticket_id: id.clone(),
                            body: format!("comentario {client}-{n}"),
                            internal: false,
                        },
                    ))
                    .await;
                match comment {
                    Ok(c) => comments.push(c.into_inner().id),
                    Err(status) => failures.push(status),
                }
            }
            (acknowledged, failures)
        }));
    }
    let ended = end_connections_six_times(&app, 500, &stop).await;
    let (mut acknowledged, mut failures) = (vec![], vec![]);
    for client in clients {
        let (a, f) = client.await.unwrap();
        acknowledged.extend(a);
        failures.extend(f);
    }
    assert!(ended >= 6, "ended only {ended} connections");
    assert!(
        !failures.is_empty(),
        "no write failed: no connection was ended mid-request"
    );
    for status in &failures {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    // Every acknowledged write is there.
    let mut incidents = incident_service_client::IncidentServiceClient::new(server.channel.clone());
    let comments: usize = acknowledged.iter().map(|(_, c)| c.len()).sum();
    for (id, acked) in &acknowledged {
        incidents
            .get_incident(req(
                &agent(),
                GetIncidentRequest {
                    lookup: Some(get_incident_request::Lookup::Id(id.clone())),
                },
            ))
            .await
            .unwrap_or_else(|s| panic!("acknowledged incident {id} is missing: {s:?}"));
        let stored = incidents
            .list_comments(req(
                &agent(),
                ListCommentsRequest {
                    ticket_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list comments")
            .into_inner()
            .comments;
        for c in acked {
            assert!(
                stored.iter().any(|s| &s.id == c),
                "acknowledged comment {c} of {id} is missing"
            );
        }
    }
    // The log, read afresh from the start, is gap-free …
    let mut log = notification_feed(&server.channel, &agent(), 0).await;
    let logged = read_to(&mut log, 0, "the log").await.expect("the log");
    let expected: Vec<u64> = (1..=logged.len() as u64).collect();
    assert_eq!(logged, expected, "the log has gaps or is out of order");
    assert!(logged.len() >= acknowledged.len() + comments);
    // … and the stream that was open throughout received every event of it.
    let head = *logged.last().unwrap();
    let watched = read_to(&mut feed, head, "the open stream")
        .await
        .expect("the stream open during the outages ended with an error");
    assert_eq!(watched, logged, "the open stream missed or repeated events");
    eprintln!(
        "{} incidents and {comments} comments acknowledged, {} writes UNAVAILABLE, {ended} connections ended, {} events",
        acknowledged.len(),
        failures.len(),
        logged.len()
    );
}

/// Ends the server's database connections six times, `gap_ms` apart, while
/// the writers run, then tells them to stop; how many connections ended.
async fn end_connections_six_times(
    app: &TestApp,
    gap_ms: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> usize {
    let mut ended = 0;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
        ended += app.end_connections().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ended
}
