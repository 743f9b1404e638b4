//! Every (from, to, role) status pair of DESIGN §3, through ChangeIncidentStatus.
use ticketd::pb::IncidentStatus::{self, *};
use tonic::Code;

use crate::helpers::*;

const STATUSES: [IncidentStatus; 7] = [
    NewTicket,
    MissingData,
    InProgress,
    PreApproved,
    Finalized,
    Declined,
    Cancelled,
];

/// The design's table, written out independently of the code under test.
fn expected(from: IncidentStatus, to: IncidentStatus, role: &str) -> Code {
    let agent_only = matches!(
        (from, to),
        (NewTicket, MissingData)
            | (InProgress, MissingData)
            | (NewTicket, InProgress)
            | (InProgress, PreApproved)
            | (InProgress, Finalized)
            | (PreApproved, Finalized)
            | (NewTicket, Declined)
            | (InProgress, Declined)
            | (PreApproved, Declined)
    );
    let anyone = matches!(
        (from, to),
        (
            NewTicket | MissingData | InProgress | PreApproved,
            Cancelled
        )
    );
    match role {
        _ if anyone => Code::Ok,
        "agent" if agent_only => Code::Ok,
        // Requesters may only cancel: anything else is refused as not theirs
        // to do, before the status is looked at.
        "requester" if to != Cancelled => Code::PermissionDenied,
        _ => Code::FailedPrecondition,
    }
}

#[tokio::test]
async fn every_status_pair_follows_the_design_table_for_every_role() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let mut failures = vec![];
    for from in STATUSES {
        for to in STATUSES {
            for (role, token) in [("agent", agent()), ("requester", store.clone())] {
                let incident = incident_in(&app, &store, from).await;
                let result = change(&app, &token, &incident, to).await;
                let want = expected(from, to, role);
                let got = result.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
                if got != want {
                    failures.push(format!(
                        "{from:?} -> {to:?} by {role}: want {want:?}, got {got:?} ({result:?})"
                    ));
                    continue;
                }
                match result {
                    Ok(updated) => {
                        assert_eq!(updated.status, to as i32);
                        assert_eq!(updated.version, incident.version + 1);
                        let terminal = matches!(to, Finalized | Declined | Cancelled);
                        assert_eq!(
                            updated.resolved_at.is_some(),
                            terminal,
                            "{from:?} -> {to:?}"
                        );
                    }
                    Err(status) if want == Code::FailedPrecondition => {
                        let (f, t) = (from.as_str_name(), to.as_str_name());
                        let (f, t) = (
                            f.trim_start_matches("INCIDENT_STATUS_"),
                            t.trim_start_matches("INCIDENT_STATUS_"),
                        );
                        assert!(
                            status.message().contains(f) && status.message().contains(t),
                            "message names both statuses: {}",
                            status.message()
                        );
                    }
                    Err(_) => {}
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn asking_for_missing_data_requires_a_comment() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let status = assert_code(
        app.incidents()
            .change_incident_status(req(
                &agent(),
                ticketd::pb::ChangeIncidentStatusRequest {
                    id: incident.id,
                    status: MissingData as i32,
                    expected_version: 1,
                    reason: 0,
                    comment: String::new(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["comment"]);
}

#[tokio::test]
async fn finalizing_requires_a_reason_of_the_target_status() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let incident = incident_in(&app, &store, InProgress).await;
    for reason in [0, ticketd::pb::ResolutionReason::CarrierRejected as i32] {
        let status = assert_code(
            app.incidents()
                .change_incident_status(req(
                    &agent(),
                    ticketd::pb::ChangeIncidentStatusRequest {
                        id: incident.id.clone(),
                        status: Finalized as i32,
                        expected_version: incident.version,
                        reason,
                        comment: String::new(),
                    },
                ))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["reason"]);
    }
}

#[tokio::test]
async fn a_requester_comment_returns_a_missing_data_incident_to_where_it_came_from() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    for origin in [NewTicket, InProgress] {
        let incident = incident_in(&app, &store, origin).await;
        let waiting = change(&app, &agent(), &incident, MissingData)
            .await
            .unwrap();
        app.incidents()
            .add_comment(req(
                &store,
                ticketd::pb::AddCommentRequest {
                    ticket_id: waiting.id.clone(),
                    body: "Adjunto la foto".into(),
                    internal: false,
                },
            ))
            .await
            .unwrap();
        let back = get(&app, &store, &waiting.id).await;
        assert_eq!(back.status, origin as i32, "returns to {origin:?}");
        assert_eq!(back.version, waiting.version + 1);
        let events = events(&app, &agent(), &waiting.id).await;
        let last = events.last().unwrap();
        assert_eq!(
            last.actor.as_ref().unwrap().role,
            ticketd::pb::ActorRole::System as i32
        );
        match &last.payload {
            Some(ticketd::pb::ticket_event::Payload::StatusChanged(c)) => {
                assert_eq!(c.from_status, "INCIDENT_STATUS_MISSING_DATA");
                assert_eq!(c.to_status, origin.as_str_name());
            }
            other => panic!("expected a status change, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_agent_comment_does_not_move_a_missing_data_incident() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let waiting = incident_in(&app, &store, MissingData).await;
    app.incidents()
        .add_comment(req(
            &agent(),
            ticketd::pb::AddCommentRequest {
                ticket_id: waiting.id.clone(),
                body: "Seguimos esperando".into(),
                internal: false,
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        get(&app, &store, &waiting.id).await.status,
        MissingData as i32
    );
}

#[tokio::test]
async fn a_requester_asking_for_what_it_may_never_do_is_denied_before_its_version_is_checked() {
    use ticketd::pb::*;
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-1").await;
    // A stale version: were the version checked first, this would be ABORTED,
    // and the store would retry only to be denied.
    let stale = Incident {
        version: incident.version + 7,
        ..incident.clone()
    };
    let status = assert_code(
        change(&app, &store, &stale, InProgress).await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("only cancel"), "{status:?}");
    // What it may do, with the same stale version, is refused as stale.
    assert_code(change(&app, &store, &stale, Cancelled).await, Code::Aborted);

    let driver = requester("driver-1");
    let consultation = app
        .consultations()
        .create_consultation(req(
            &driver,
            CreateConsultationRequest {
                category: "delivery_not_acknowledged".into(),
                description: "Ayuda".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let moved = app
        .consultations()
        .change_consultation_status(req(
            &driver,
            ChangeConsultationStatusRequest {
                id: consultation.id.clone(),
                status: ConsultationStatus::InProgress as i32,
                expected_version: consultation.version + 7,
                comment: String::new(),
            },
        ))
        .await;
    assert_code(moved, Code::PermissionDenied);
}
