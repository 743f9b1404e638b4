//! Group commit: concurrent writes share commits, yet each request succeeds
//! or fails on its own, retries find their first attempt, and nothing
//! acknowledged is lost when the process dies right after.
use std::collections::{HashMap, HashSet};

use ticketd::pb::incident_service_client::IncidentServiceClient;
use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;
use crate::process::ServerProcess;

/// One burst of requests that land in the same few batches: creates (two
/// of them the same idempotent request), 16 status changes that all read
/// version 1 of one incident, and comments on a ticket of another account.
#[tokio::test]
async fn requests_batched_together_succeed_or_fail_each_on_their_own() {
    let app = TestApp::spawn().await;
    let acme = requester("acme");
    let target = create(&app, &acme, "EST-TARGET").await;
    let mut calls = vec![];
    for i in 0..24 {
        let (mut client, token) = (app.incidents(), acme.clone());
        let mut request = new_incident(&format!("EST-{i:03}"));
        // Requests 0 and 1 are one request sent twice with one key.
        request.idempotency_key = format!("key-{}", i.max(1));
        if i == 0 {
            request.tracking_number = "EST-001".into();
        }
        calls.push(tokio::spawn(async move {
            let r = client.create_incident(req(&token, request)).await;
            ("create", r.map(|r| r.into_inner().id))
        }));
    }
    for _ in 0..16 {
        let (mut client, id) = (app.incidents(), target.id.clone());
        calls.push(tokio::spawn(async move {
            let change = ChangeIncidentStatusRequest {
                id,
                status: IncidentStatus::InProgress as i32,
                expected_version: 1,
                ..Default::default()
            };
            let r = client.change_incident_status(req(&agent(), change)).await;
            ("change", r.map(|r| r.into_inner().id))
        }));
    }
    for _ in 0..8 {
        let (mut client, id) = (app.incidents(), target.id.clone());
        calls.push(tokio::spawn(async move {
            let comment = AddCommentRequest {
                ticket_id: id,
                body: "not yours".into(),
                internal: false,
            };
            let r = client.add_comment(req(&requester("globex"), comment)).await;
            ("foreign comment", r.map(|r| r.into_inner().id))
        }));
    }
    let mut outcomes: HashMap<(&str, Result<(), Code>), usize> = HashMap::new();
    let mut created = HashSet::new();
    for call in futures::future::join_all(calls).await {
        let (what, result) = call.unwrap();
        if what == "create" {
            created.insert(result.as_ref().expect("every create succeeds").clone());
        }
        *outcomes
            .entry((what, result.map(|_| ()).map_err(|s| s.code())))
            .or_default() += 1;
    }
    // 24 creates, two of them one request: 23 incidents, the retry got the first's.
    assert_eq!(outcomes[&("create", Ok(()))], 24);
    assert_eq!(created.len(), 23);
    // Exactly one of the 16 changes from version 1 wins; the rest are told to reread.
    assert_eq!(outcomes[&("change", Ok(()))], 1, "{outcomes:?}");
    assert_eq!(
        outcomes[&("change", Err(Code::Aborted))],
        15,
        "{outcomes:?}"
    );
    assert_eq!(outcomes[&("foreign comment", Err(Code::NotFound))], 8);
    // The winner's change and nothing of the losers' is in the incident and its log.
    let after = get(&app, &agent(), &target.id).await;
    assert_eq!(
        (after.version, after.status),
        (2, IncidentStatus::InProgress as i32)
    );
    let log = events(&app, &agent(), &target.id).await;
    assert_eq!(log.len(), 2, "created + one status change: {log:?}");
    assert_eq!(
        incident_count(&app).await,
        24,
        "23 new incidents and the target"
    );
    // The global log has no gaps: each batch numbered its events in order,
    // and no failed request left one behind.
    let mut sequences = vec![];
    for id in created.iter().chain([&target.id]) {
        sequences.extend(sequence_numbers(&events(&app, &agent(), id).await));
    }
    sequences.sort_unstable();
    let expected: Vec<u64> = (1..=25).collect();
    assert_eq!(sequences, expected, "23 + 1 created, 1 status change");
}

/// Creates acknowledged by a server that is killed (SIGKILL) right after
/// are all there when it comes back.
#[tokio::test]
async fn acknowledged_writes_survive_a_kill_right_after_their_batch() {
    let app = TestApp::spawn().await;
    let mut server = ServerProcess::start(&app.database_url).await;
    let acme = requester("acme");
    let calls = (0..64).map(|i| {
        let mut client = IncidentServiceClient::new(server.channel.clone());
        let token = acme.clone();
        tokio::spawn(async move {
            let request = new_incident(&format!("KILL-{i:03}"));
            client
                .create_incident(req(&token, request))
                .await
                .map(|r| r.into_inner().id)
        })
    });
    let acknowledged: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("created"))
        .collect();
    server.kill();
    let restarted = ServerProcess::start(&app.database_url).await;
    let mut client = IncidentServiceClient::new(restarted.channel.clone());
    for id in &acknowledged {
        let found = client
            .get_incident(req(
                &acme,
                GetIncidentRequest {
                    lookup: Some(get_incident_request::Lookup::Id(id.clone())),
                },
            ))
            .await;
        assert!(
            found.is_ok(),
            "acknowledged incident {id} is gone: {found:?}"
        );
    }
    assert_eq!(acknowledged.len(), 64);
}
