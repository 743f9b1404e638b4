//! Live events: WatchTicket and WatchNotifications.
use std::time::Duration;

use ticketd::pb::notification_service_client::NotificationServiceClient;
use ticketd::pb::*;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::helpers::*;
use crate::process::ServerProcess;

async fn watch_ticket(
    channel: &Channel,
    token: &str,
    id: &str,
    after: u64,
) -> Result<Streaming<WatchResponse>, tonic::Status> {
    let mut client = incident_service_client::IncidentServiceClient::new(channel.clone());
    client
        .watch_ticket(req(
            token,
            WatchTicketRequest {
                ticket_id: id.into(),
                after_sequence: after,
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn watch_all(channel: &Channel, token: &str, after: u64) -> Streaming<WatchResponse> {
    NotificationServiceClient::new(channel.clone())
        .watch_notifications(req(
            token,
            WatchNotificationsRequest {
                after_sequence: after,
            },
        ))
        .await
        .expect("watch notifications")
        .into_inner()
}

/// The next `n` events, skipping progress messages; fails after 15 s.
async fn take_events(stream: &mut Streaming<WatchResponse>, n: usize) -> Vec<TicketEvent> {
    let mut events = vec![];
    while events.len() < n {
        let message = tokio::time::timeout(Duration::from_secs(15), stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} events", events.len()))
            .expect("stream open")
            .expect("no error");
        if let Some(watch_response::Kind::Event(e)) = message.kind {
            events.push(e);
        }
    }
    events
}

async fn comment(channel: &Channel, token: &str, id: &str, body: &str, internal: bool) {
    incident_service_client::IncidentServiceClient::new(channel.clone())
        .add_comment(req(
            token,
            AddCommentRequest {
                ticket_id: id.into(),
                body: body.into(),
                internal,
            },
        ))
        .await
        .expect("comment");
}

fn sequences(events: &[TicketEvent]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

#[tokio::test]
async fn a_resumed_stream_gets_exactly_the_missing_events_in_order() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-1").await;
    let mut stream = watch_ticket(&app.channel, &store, &incident.id, 0)
        .await
        .unwrap();
    comment(&app.channel, &agent(), &incident.id, "uno", false).await;
    let first = take_events(&mut stream, 2).await;
    assert!(matches!(
        first[0].payload,
        Some(ticket_event::Payload::Created(_))
    ));
    drop(stream);
    for body in ["dos", "tres", "cuatro"] {
        comment(&app.channel, &agent(), &incident.id, body, false).await;
    }
    let last_seen = first.last().unwrap().sequence;
    let mut resumed = watch_ticket(&app.channel, &store, &incident.id, last_seen)
        .await
        .unwrap();
    let rest = take_events(&mut resumed, 3).await;
    let bodies: Vec<_> = rest
        .iter()
        .map(|e| match &e.payload {
            Some(ticket_event::Payload::CommentAdded(c)) => {
                c.comment.as_ref().unwrap().body.clone()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bodies, ["dos", "tres", "cuatro"]);
    let all: Vec<u64> = sequences(&first)
        .into_iter()
        .chain(sequences(&rest))
        .collect();
    assert_eq!(all, sequences(&events(&app, &agent(), &incident.id).await));
    // Nothing else arrives: only progress.
    let next = tokio::time::timeout(Duration::from_secs(2), resumed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        next.kind,
        Some(watch_response::Kind::Progress(Progress {
            head_sequence: *all.last().unwrap()
        }))
    );
}

#[tokio::test]
async fn streams_refuse_cursors_beyond_the_head_and_tickets_the_caller_cannot_see() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    assert_code(
        watch_ticket(&app.channel, &agent(), &incident.id, 99).await,
        Code::OutOfRange,
    );
    assert_code(
        watch_ticket(&app.channel, &requester("globex"), &incident.id, 0).await,
        Code::NotFound,
    );
    assert_code(
        watch_ticket(&app.channel, &agent(), "nope", 0).await,
        Code::InvalidArgument,
    );
    let status = NotificationServiceClient::new(app.channel.clone())
        .watch_notifications(req(
            &agent(),
            WatchNotificationsRequest { after_sequence: 50 },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
}

#[tokio::test]
async fn requester_streams_never_carry_internal_comments_or_other_accounts_events() {
    let app = TestApp::spawn().await;
    let (a, b) = (requester("acme"), requester("globex"));
    let mine = create(&app, &a, "ACME-1").await;
    let mut ticket_stream = watch_ticket(&app.channel, &a, &mine.id, 0).await.unwrap();
    let mut feed = watch_all(&app.channel, &a, 0).await;
    let mut agent_feed = watch_all(&app.channel, &agent(), 0).await;
    let theirs = create(&app, &b, "GLOBEX-1").await;
    comment(&app.channel, &agent(), &mine.id, "nota interna", true).await;
    comment(&app.channel, &agent(), &theirs.id, "para globex", false).await;
    comment(&app.channel, &agent(), &mine.id, "respuesta pública", false).await;
    // A SIMPLE consultation of acme's: recorded, but no notification.
    app.consultations()
        .create_consultation(req(
            &a,
            CreateConsultationRequest {
                category: "order_status".into(),
                description: "¿Dónde va?".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let seen_by_agent = take_events(&mut agent_feed, 5).await;
    assert_eq!(seen_by_agent.len(), 5);
    for stream in [&mut ticket_stream, &mut feed] {
        let events = take_events(stream, 2).await;
        assert!(matches!(
            events[0].payload,
            Some(ticket_event::Payload::Created(_))
        ));
        match &events[1].payload {
            Some(ticket_event::Payload::CommentAdded(c)) => {
                assert_eq!(c.comment.as_ref().unwrap().body, "respuesta pública")
            }
            other => panic!("expected the public comment, got {other:?}"),
        }
        assert!(events.iter().all(|e| e.ticket_id == mine.id));
        // Then only progress: nothing of globex, no internal note.
        let next = tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            matches!(next.kind, Some(watch_response::Kind::Progress(_))),
            "{next:?}"
        );
    }
}

#[tokio::test]
async fn eight_concurrent_writers_reach_a_watcher_in_order_without_gaps() {
    let app = TestApp::spawn().await;
    let mut feed = watch_all(&app.channel, &agent(), 0).await;
    let writers = (0..8).map(|w| {
        let mut client = app.incidents();
        let store = requester(&format!("store{w}"));
        tokio::spawn(async move {
            let mut ids = vec![];
            for i in 0..6 {
                let incident = client
                    .create_incident(req(&store, new_incident(&format!("W{w}-{i}"))))
                    .await
                    .unwrap()
                    .into_inner();
                client
                    .add_comment(req(
                        &store,
                        AddCommentRequest {
                            ticket_id: incident.id.clone(),
                            body: "x".into(),
                            internal: false,
                        },
                    ))
                    .await
                    .unwrap();
                ids.push(incident.id);
            }
            ids
        })
    });
    let ids: Vec<String> = futures::future::join_all(writers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    let received = take_events(&mut feed, 96).await;
    let got = sequences(&received);
    assert_eq!(
        got,
        (1..=96).collect::<Vec<u64>>(),
        "strictly increasing and contiguous"
    );
    let mut logged = vec![];
    for id in &ids {
        logged.extend(sequences(&events(&app, &agent(), id).await));
    }
    logged.sort();
    assert_eq!(logged, got);
}

#[tokio::test]
async fn a_stalled_subscriber_does_not_block_writers_and_catches_up_from_the_log() {
    // A tiny in-memory buffer, so that the stalled stream falls behind it.
    let app = TestApp::spawn_with(|s| s.event_buffer = 8).await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-1").await;
    let mut stalled = watch_ticket(&app.channel, &agent(), &incident.id, 0)
        .await
        .unwrap();
    let mut reader = watch_all(&app.channel, &agent(), 0).await;
    let started = std::time::Instant::now();
    for i in 0..150 {
        comment(
            &app.channel,
            &agent(),
            &incident.id,
            &format!("c{i}"),
            false,
        )
        .await;
    }
    let writing = started.elapsed();
    // The reading subscriber got everything while the other one stalled.
    assert_eq!(
        sequences(&take_events(&mut reader, 151).await),
        (1..=151).collect::<Vec<u64>>()
    );
    let got = take_events(&mut stalled, 151).await;
    assert_eq!(sequences(&got), (1..=151).collect::<Vec<u64>>());
    assert!(
        writing < Duration::from_secs(60),
        "writers were not blocked ({writing:?})"
    );
}

#[tokio::test]
async fn a_watcher_on_one_replica_sees_changes_made_through_another_live() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-1").await;
    let mut stream = watch_ticket(&replica.channel, &store, &incident.id, 1)
        .await
        .unwrap();
    comment(&app.channel, &agent(), &incident.id, "desde A", false).await;
    change(
        &app,
        &agent(),
        &get(&app, &agent(), &incident.id).await,
        IncidentStatus::InProgress,
    )
    .await
    .unwrap();
    let events = take_events(&mut stream, 2).await;
    assert!(matches!(
        events[0].payload,
        Some(ticket_event::Payload::CommentAdded(_))
    ));
    assert!(matches!(
        events[1].payload,
        Some(ticket_event::Payload::StatusChanged(_))
    ));
    assert_eq!(sequences(&events), [2, 3]);
}

#[tokio::test]
async fn a_server_killed_mid_stream_loses_nothing_once_restarted() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-1").await;
    let mut server = ServerProcess::start(&app.database_url).await;
    let mut stream = watch_ticket(&server.channel, &store, &incident.id, 0)
        .await
        .unwrap();
    comment(&server.channel, &agent(), &incident.id, "antes", false).await;
    let before = take_events(&mut stream, 2).await;
    server.kill();
    // Changes keep coming through another server while the watched one is dead.
    for body in ["durante 1", "durante 2"] {
        comment(&app.channel, &agent(), &incident.id, body, false).await;
    }
    let restarted = ServerProcess::start(&app.database_url).await;
    let mut resumed = watch_ticket(
        &restarted.channel,
        &store,
        &incident.id,
        before.last().unwrap().sequence,
    )
    .await
    .unwrap();
    comment(&restarted.channel, &agent(), &incident.id, "después", false).await;
    let after = take_events(&mut resumed, 3).await;
    let all: Vec<u64> = sequences(&before)
        .into_iter()
        .chain(sequences(&after))
        .collect();
    assert_eq!(all, [1, 2, 3, 4, 5]);
    assert_eq!(all, sequences(&events(&app, &agent(), &incident.id).await));
}

#[tokio::test]
async fn sigterm_ends_open_streams_with_unavailable_and_the_process_exits_within_the_drain_timeout()
{
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let mut server = ServerProcess::start(&app.database_url).await;
    let mut streams = vec![];
    for _ in 0..3 {
        let mut s = watch_ticket(&server.channel, &agent(), &incident.id, 0)
            .await
            .unwrap();
        take_events(&mut s, 1).await;
        streams.push(s);
    }
    let mut feed = watch_all(&server.channel, &agent(), 0).await;
    take_events(&mut feed, 1).await;
    streams.push(feed);
    let started = std::time::Instant::now();
    server.terminate();
    for mut stream in streams {
        let end = loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("stream ends")
            {
                Some(Ok(_)) => continue,
                other => break other,
            }
        };
        match end {
            Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
            other => panic!("expected UNAVAILABLE, got {other:?}"),
        }
    }
    let exit = tokio::task::spawn_blocking(move || server.wait_exit(Duration::from_secs(5)))
        .await
        .unwrap();
    let status = exit.expect("exited within the 2 s drain timeout (plus margin)");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn watch_streams_deliver_again_after_a_database_outage() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let mut stream = watch_ticket(&app.channel, &agent(), &incident.id, 0)
        .await
        .unwrap();
    let created = take_events(&mut stream, 1).await;
    if on_postgres() {
        // Every connection refused and ended for a while (SQLite, embedded, has no outage).
        app.cut_database(true).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        app.cut_database(false).await;
    }
    comment(
        &app.channel,
        &agent(),
        &incident.id,
        "after the outage",
        false,
    )
    .await;
    let after = take_events(&mut stream, 1).await;
    assert!(after[0].sequence > created[0].sequence);
    assert!(
        matches!(
            after[0].payload,
            Some(ticket_event::Payload::CommentAdded(_))
        ),
        "{after:?}"
    );
}
