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

#[tokio::test]
async fn a_resumed_stream_gets_exactly_the_missing_events_in_order() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-1").await;
    let mut stream = watch_ticket(&app.channel, &store, &incident.id, 0)
        .await
        .unwrap();
    comment(&app.channel, &agent(), &incident.id, "uno", false).await;
    let first = next_events(&mut stream, 2, "watched events").await;
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
    let rest = next_events(&mut resumed, 3, "watched events").await;
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
    let all: Vec<u64> = sequence_numbers(&first)
        .into_iter()
        .chain(sequence_numbers(&rest))
        .collect();
    assert_eq!(
        all,
        sequence_numbers(&events(&app, &agent(), &incident.id).await)
    );
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
    let seen_by_agent = next_events(&mut agent_feed, 5, "watched events").await;
    assert_eq!(seen_by_agent.len(), 5);
    for stream in [&mut ticket_stream, &mut feed] {
        let events = next_events(stream, 2, "the ticket's events").await;
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
    let received = next_events(&mut feed, 96, "watched events").await;
    let got = sequence_numbers(&received);
    assert_eq!(
        got,
        (1..=96).collect::<Vec<u64>>(),
        "strictly increasing and contiguous"
    );
    let mut logged = vec![];
    for id in &ids {
        logged.extend(sequence_numbers(&events(&app, &agent(), id).await));
    }
    logged.sort();
    assert_eq!(logged, got);
}

/// A client whose streams get only `window` bytes of HTTP/2 flow-control
/// window: a stream it does not read stalls as soon as that much is in flight.
async fn small_window_channel(app: &TestApp, window: u32) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr()))
        .unwrap()
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .connect()
        .await
        .expect("connect")
}

/// A public comment about as long as the API allows, different each time.
fn long_comment(i: usize) -> String {
    let line = format!("comentario {i}: el paquete llegó abierto y falta una pieza. ");
    line.repeat(9_000 / line.len()).trim_end().to_owned()
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_falls_behind_the_buffer_and_still_gets_every_event_once() {
    // A tiny in-memory ring, a client that grants almost no window and
    // comments of ~9 KB: the stream's HTTP/2 buffer and channel fill, its
    // task blocks, the ring overwrites what it had not taken, and the stream
    // must catch up from the log (the Lagged branch of the watch task).
    let app = TestApp::spawn_with(|s| s.event_buffer = 8).await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let stalled_channel = small_window_channel(&app, 4096).await;
    let mut stalled = watch_ticket(&stalled_channel, &agent(), &incident.id, 0)
        .await
        .unwrap();
    const COMMENTS: usize = 200;
    let total = COMMENTS + 1;
    // Another subscriber reads as events come.
    let mut reader = watch_all(&app.channel, &agent(), 0).await;
    let reading =
        tokio::spawn(async move { next_events(&mut reader, total, "watched events").await });
    let writing = async {
        for i in 0..COMMENTS {
            comment(
                &app.channel,
                &agent(),
                &incident.id,
                &long_comment(i),
                false,
            )
            .await;
        }
    };
    // Writers finish and the other subscriber gets everything while the
    // stalled one has not read a byte: neither waits for it.
    tokio::time::timeout(Duration::from_secs(60), writing)
        .await
        .expect("writers were blocked by a subscriber that does not read");
    let read = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .expect("the reading subscriber was held back by the stalled one")
        .unwrap();
    assert_eq!(
        sequence_numbers(&read),
        (1..=total as u64).collect::<Vec<u64>>()
    );
    // Now it reads: every sequence exactly once, in order, with the bodies.
    let got = next_events(&mut stalled, total, "watched events").await;
    assert_eq!(
        sequence_numbers(&got),
        (1..=total as u64).collect::<Vec<u64>>()
    );
    for (i, event) in got[1..].iter().enumerate() {
        match &event.payload {
            Some(ticket_event::Payload::CommentAdded(c)) => assert!(
                c.comment.as_ref().unwrap().body == long_comment(i),
                "event {} carries comment {i}",
                event.sequence
            ),
            other => panic!("event {}: {other:?}", event.sequence),
        }
    }
    let next = tokio::time::timeout(Duration::from_secs(2), stalled.next())
        .await
        .expect("a progress message")
        .unwrap()
        .unwrap();
    assert!(
        matches!(next.kind, Some(watch_response::Kind::Progress(_))),
        "nothing after the last event but progress: {next:?}"
    );
}

/// The follower's poll, so long that only a wake-up delivers within a test.
const NO_POLL: Duration = Duration::from_secs(3600);
/// How soon a woken follower must have delivered.
const WOKEN_WITHIN: Duration = Duration::from_secs(2);

/// Comments on `id` through `writer`, three times, and requires each comment
/// on `stream` within `WOKEN_WITHIN`.
async fn each_comment_arrives_promptly(
    writer: &Channel,
    stream: &mut Streaming<WatchResponse>,
    id: &str,
) {
    for body in ["uno", "dos", "tres"] {
        comment(writer, &agent(), id, body, false).await;
        // One deadline: progress messages must not extend it.
        let deadline = tokio::time::Instant::now() + WOKEN_WITHIN;
        let event = loop {
            let message = tokio::time::timeout_at(deadline, stream.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("comment {body:?} did not arrive within {WOKEN_WITHIN:?}: no wake-up")
                })
                .expect("stream open")
                .expect("no error");
            if let Some(watch_response::Kind::Event(e)) = message.kind {
                break e;
            }
        };
        match event.payload {
            Some(ticket_event::Payload::CommentAdded(c)) => {
                assert_eq!(c.comment.unwrap().body, body)
            }
            other => panic!("expected comment {body:?}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_local_commit_wakes_the_follower_without_waiting_for_its_poll() {
    let app = TestApp::spawn_with(|s| s.event_poll = NO_POLL).await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let mut stream = watch_ticket(&app.channel, &agent(), &incident.id, 1)
        .await
        .unwrap();
    each_comment_arrives_promptly(&app.channel, &mut stream, &incident.id).await;
}

#[tokio::test]
async fn another_replicas_commit_wakes_the_follower_through_listen_notify() {
    if !postgres_only("replicas wake each other with PostgreSQL LISTEN/NOTIFY") {
        return;
    }
    let app = TestApp::spawn_with(|s| s.event_poll = NO_POLL).await;
    let replica = app.replica_with(|s| s.event_poll = NO_POLL).await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let mut stream = watch_ticket(&replica.channel, &agent(), &incident.id, 1)
        .await
        .unwrap();
    each_comment_arrives_promptly(&app.channel, &mut stream, &incident.id).await;
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
    let events = next_events(&mut stream, 2, "watched events").await;
    assert!(matches!(
        events[0].payload,
        Some(ticket_event::Payload::CommentAdded(_))
    ));
    assert!(matches!(
        events[1].payload,
        Some(ticket_event::Payload::StatusChanged(_))
    ));
    assert_eq!(sequence_numbers(&events), [2, 3]);
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
    let before = next_events(&mut stream, 2, "watched events").await;
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
    let after = next_events(&mut resumed, 3, "watched events").await;
    let all: Vec<u64> = sequence_numbers(&before)
        .into_iter()
        .chain(sequence_numbers(&after))
        .collect();
    assert_eq!(all, [1, 2, 3, 4, 5]);
    assert_eq!(
        all,
        sequence_numbers(&events(&app, &agent(), &incident.id).await)
    );
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
        next_events(&mut s, 1, "watched events").await;
        streams.push(s);
    }
    let mut feed = watch_all(&server.channel, &agent(), 0).await;
    next_events(&mut feed, 1, "watched events").await;
    streams.push(feed);
    let started = std::time::Instant::now();
    server.terminate();
    // One deadline for all: progress messages must not extend it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    for mut stream in streams {
        let end = loop {
            match tokio::time::timeout_at(deadline, stream.next())
                .await
                .expect("every stream ends within 5 s of SIGTERM")
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
    let created = next_events(&mut stream, 1, "watched events").await;
    if postgres_only("a watch stream delivering again after the database was away") {
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
    let after = next_events(&mut stream, 1, "watched events").await;
    assert!(after[0].sequence > created[0].sequence);
    assert!(
        matches!(
            after[0].payload,
            Some(ticket_event::Payload::CommentAdded(_))
        ),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_replay_longer_than_one_page_of_the_log_arrives_whole() {
    // The watch task reads the log 500 events at a time: 620 events take
    // two pages, and the second must not be skipped.
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let writers = (0..4).map(|w| {
        let channel = app.channel.clone();
        let id = incident.id.clone();
        tokio::spawn(async move {
            for i in 0..155 {
                comment(&channel, &agent(), &id, &format!("w{w}-{i}"), false).await;
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.unwrap();
    }
    let total = 1 + 4 * 155;
    let mut stream = watch_ticket(&app.channel, &agent(), &incident.id, 0)
        .await
        .unwrap();
    let got = next_events(&mut stream, total, "watched events").await;
    assert_eq!(
        sequence_numbers(&got),
        (1..=total as u64).collect::<Vec<u64>>()
    );
    let mut feed = watch_all(&app.channel, &agent(), 0).await;
    let got = next_events(&mut feed, total, "watched events").await;
    assert_eq!(
        sequence_numbers(&got),
        (1..=total as u64).collect::<Vec<u64>>()
    );
}

#[tokio::test]
async fn a_cursor_beyond_the_end_does_not_tell_a_requester_how_many_events_the_platform_has() {
    let app = TestApp::spawn().await;
    // Other accounts' activity makes the platform's count differ from what acme sees.
    for n in 0..3 {
        create(&app, &requester("globex"), &format!("GLX-{n}")).await;
    }
    let mine = create(&app, &requester("acme"), "ACME-1").await;
    let head = events(&app, &agent(), &mine.id)
        .await
        .last()
        .unwrap()
        .sequence;
    assert!(head >= 4);
    for after in [1_000_000, head + 1] {
        let status = NotificationServiceClient::new(app.channel.clone())
            .watch_notifications(req(
                &requester("acme"),
                WatchNotificationsRequest {
                    after_sequence: after,
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
        // Only the cursor the caller sent may appear in the message.
        let rest = status.message().replace(&after.to_string(), "");
        assert!(
            !rest.chars().any(|c| c.is_ascii_digit()),
            "the message names a figure besides the caller's cursor: {:?}",
            status.message()
        );
    }
}
