//! Concurrent writers: idempotent creates, optimistic versions, ordered sequences.
use std::collections::HashSet;

use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn ten_concurrent_creates_with_one_key_make_one_incident() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let mut request = new_incident("EST-1");
    request.idempotency_key = "retry-storm".into();
    let calls = (0..10).map(|_| {
        let mut client = app.incidents();
        let (store, request) = (store.clone(), request.clone());
        tokio::spawn(async move {
            client
                .create_incident(req(&store, request))
                .await
                .map(|r| r.into_inner())
        })
    });
    let results = futures::future::join_all(calls).await;
    let ids: HashSet<_> = results
        .into_iter()
        .map(|r| r.unwrap().expect("every retry succeeds").id)
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(incident_count(&app).await, 1);
}

#[tokio::test]
async fn two_concurrent_transitions_from_one_version_let_exactly_one_win() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let attempts = [IncidentStatus::InProgress, IncidentStatus::Declined].map(|to| {
        let mut client = app.incidents();
        let id = incident.id.clone();
        tokio::spawn(async move {
            let reason = if to == IncidentStatus::Declined {
                ResolutionReason::CarrierRejected as i32
            } else {
                0
            };
            client
                .change_incident_status(req(
                    &agent(),
                    ChangeIncidentStatusRequest {
                        id,
                        status: to as i32,
                        expected_version: 1,
                        reason,
                        comment: String::new(),
                    },
                ))
                .await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let codes: Vec<Code> = results
        .into_iter()
        .map(|r| r.unwrap().map_or_else(|s| s.code(), |_| Code::Ok))
        .collect();
    assert_eq!(
        codes.iter().filter(|c| **c == Code::Ok).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == Code::Aborted).count(),
        1,
        "{codes:?}"
    );
    assert_eq!(get(&app, &agent(), &incident.id).await.version, 2);
}

#[tokio::test]
async fn a_stale_expected_version_is_aborted() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    change(&app, &agent(), &incident, IncidentStatus::InProgress)
        .await
        .unwrap();
    let status = assert_code(
        change(&app, &agent(), &incident, IncidentStatus::InProgress).await,
        Code::Aborted,
    );
    assert!(
        status.message().contains("version 2"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn eight_concurrent_writers_leave_a_contiguous_event_sequence() {
    let app = TestApp::spawn().await;
    let writers = (0..8).map(|w| {
        let mut client = app.incidents();
        let store = requester(&format!("store{}", w % 3));
        tokio::spawn(async move {
            let mut ids = vec![];
            for i in 0..5 {
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
                            body: format!("c{i}"),
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
    assert_eq!(ids.len(), 40);
    let mut sequences = vec![];
    for id in &ids {
        let events = events(&app, &agent(), id).await;
        assert_eq!(events.len(), 2);
        sequences.extend(events.iter().map(|e| e.sequence));
    }
    sequences.sort();
    assert_eq!(
        sequences,
        (1..=80).collect::<Vec<u64>>(),
        "sequences are contiguous, without gaps or repeats"
    );
    let numbers: HashSet<i64> = futures::future::join_all(ids.iter().map(|id| {
        let app = &app;
        async move { get(app, &agent(), id).await.number }
    }))
    .await
    .into_iter()
    .collect();
    assert_eq!(numbers, (1..=40).collect());
}
