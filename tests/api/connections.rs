//! Connections that do nothing are closed, and a capped server still serves
//! real clients while such connections fill it.
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::helpers::*;
use crate::process::ServerProcess;

/// Waits until the server closes `tcp` (end of input or a reset); None if it
/// is still open after `limit`.
async fn closed_within(mut tcp: tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {} // the server's SETTINGS, a GOAWAY
            }
        }
    })
    .await
    .ok()
}

#[tokio::test]
async fn silent_connections_are_closed_at_the_handshake_timeout_and_real_calls_are_still_served() {
    let app = TestApp::spawn().await;
    let server = ServerProcess::start_with_env(
        &app.database_url,
        &[
            ("TICKETD_MAX_CONNECTIONS", "20"),
            ("TICKETD_HANDSHAKE_TIMEOUT", "1s"),
        ],
    )
    .await;
    // Twice the cap: connections that never send a byte, and some that send
    // the HTTP/2 preface one byte at a time (slowloris).
    let mut silent = vec![];
    for n in 0..40 {
        let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        if n % 4 == 0 {
            use tokio::io::AsyncWriteExt;
            tcp.write_all(b"P").await.unwrap();
        }
        silent.push(tcp);
    }
    // A real client gets served while they hold (or wait for) every slot.
    let started = Instant::now();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr()))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("a real client connects");
    create_over(&channel, "EST-REAL").await;
    eprintln!("real call served after {:?}", started.elapsed());
    // Every silent connection is closed by the server, about a second after
    // it got a slot (the second half waited for the first half's slots).
    let closed = futures::future::join_all(
        silent
            .into_iter()
            .map(|tcp| closed_within(tcp, Duration::from_secs(8))),
    )
    .await;
    let open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        open, 0,
        "{open} of 40 silent connections still open: {closed:?}"
    );
}

async fn create_over(channel: &tonic::transport::Channel, tracking: &str) {
    ticketd::pb::incident_service_client::IncidentServiceClient::new(channel.clone())
        .create_incident(req(&requester("acme"), new_incident(tracking)))
        .await
        .expect("a real call");
}

#[tokio::test]
async fn connections_without_a_call_are_closed_at_the_idle_timeout_and_busy_ones_are_not() {
    let app = TestApp::spawn_with(|s| s.limits.idle_timeout = Duration::from_secs(1)).await;
    // A finished handshake and nothing more.
    let tcp = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    let (_client, idle) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let idle = tokio::spawn(idle);
    // A connection whose only call is an open watch stream stays.
    let busy = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let mut stream = incident_service_client(&busy)
        .watch_ticket(req(
            &requester("acme"),
            ticketd::pb::WatchTicketRequest {
                ticket_id: incident.id.clone(),
                after_sequence: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    next_events(&mut stream, 1, "the created event").await;
    let ended = tokio::time::timeout(Duration::from_secs(5), idle).await;
    assert!(ended.is_ok(), "an idle connection was still open after 5 s");
    // 2 s past the idle timeout, the stream still delivers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    add_comment(
        &app,
        &agent(),
        (ticketd::pb::TicketType::Incident, &incident.id),
        "sigue",
        false,
    )
    .await
    .unwrap();
    next_events(&mut stream, 1, "a comment on the busy connection").await;
}

fn incident_service_client(
    channel: &tonic::transport::Channel,
) -> ticketd::pb::incident_service_client::IncidentServiceClient<tonic::transport::Channel> {
    ticketd::pb::incident_service_client::IncidentServiceClient::new(channel.clone())
}
