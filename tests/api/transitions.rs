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
    let consultation = consult(&app, &driver, "delivery_not_acknowledged").await;
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

/// Asks, as an agent, for `incident` to move to `to` with `reason`.
async fn change_with_reason(
    app: &TestApp,
    incident: &ticketd::pb::Incident,
    to: IncidentStatus,
    reason: ticketd::pb::ResolutionReason,
) -> Result<ticketd::pb::Incident, tonic::Status> {
    app.incidents()
        .change_incident_status(req(
            &agent(),
            ticketd::pb::ChangeIncidentStatusRequest {
                id: incident.id.clone(),
                status: to as i32,
                expected_version: incident.version,
                reason: reason as i32,
                comment: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// The reason of the last event of `id`, which must be a status change to `to`.
async fn last_change_reason(app: &TestApp, id: &str, to: IncidentStatus) -> i32 {
    let events = events(app, &agent(), id).await;
    match &events.last().unwrap().payload {
        Some(ticketd::pb::ticket_event::Payload::StatusChanged(c)) => {
            assert_eq!(c.to_status, to.as_str_name());
            c.reason
        }
        other => panic!("expected a status change, got {other:?}"),
    }
}

#[tokio::test]
async fn an_agent_finalizes_with_indemnified_from_in_progress_and_pre_approved() {
    use ticketd::pb::ResolutionReason::Indemnified;
    let app = TestApp::spawn().await;
    let store = requester("acme");
    for from in [InProgress, PreApproved] {
        let incident = incident_in(&app, &store, from).await;
        let finalized = change_with_reason(&app, &incident, Finalized, Indemnified)
            .await
            .unwrap_or_else(|s| panic!("{from:?} -> FINALIZED (INDEMNIFIED): {s:?}"));
        assert_eq!(finalized.status, Finalized as i32);
        assert_eq!(finalized.resolution_reason, Indemnified as i32, "{from:?}");
        assert!(finalized.resolved_at.is_some());
        assert_eq!(
            last_change_reason(&app, &incident.id, Finalized).await,
            Indemnified as i32
        );
    }
}

#[tokio::test]
async fn declining_takes_only_a_declining_reason_and_an_agent_may_decline_out_of_the_claim_window()
{
    use ticketd::pb::ResolutionReason::{self, *};
    let app = TestApp::spawn().await;
    let store = requester("acme");
    for from in [NewTicket, InProgress, PreApproved] {
        let incident = incident_in(&app, &store, from).await;
        for wrong in [
            ResolutionReason::Unspecified,
            Resolved,
            Indemnified,
            NoCustomerResponse,
        ] {
            let status = assert_code(
                change_with_reason(&app, &incident, Declined, wrong).await,
                Code::InvalidArgument,
            );
            assert_eq!(violated_fields(&status), ["reason"], "{from:?}, {wrong:?}");
        }
        assert_eq!(get(&app, &store, &incident.id).await, incident, "unchanged");
        let declined = change_with_reason(&app, &incident, Declined, OutOfClaimWindow)
            .await
            .unwrap_or_else(|s| panic!("{from:?} -> DECLINED (OUT_OF_CLAIM_WINDOW): {s:?}"));
        assert_eq!(declined.status, Declined as i32);
        assert_eq!(declined.resolution_reason, OutOfClaimWindow as i32);
        assert_eq!(
            last_change_reason(&app, &incident.id, Declined).await,
            OutOfClaimWindow as i32
        );
        let last = events(&app, &store, &incident.id).await.pop().unwrap();
        assert_eq!(
            last.actor.unwrap().role,
            ticketd::pb::ActorRole::Agent as i32,
            "declined by the agent, not the system"
        );
    }
}

/// The `assigned` payloads of a ticket's history as `token` lists it, with
/// the id of the actor of each.
fn assignments(events: &[ticketd::pb::TicketEvent]) -> Vec<(String, String, String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.payload {
            Some(ticketd::pb::ticket_event::Payload::Assigned(a)) => Some((
                a.assignee_id.clone(),
                a.assignee_name.clone(),
                a.previous_assignee_id.clone(),
                e.actor.as_ref().unwrap().id.clone(),
            )),
            _ => None,
        })
        .collect()
}

fn assigned(to: &str, name: &str, previous: &str) -> (String, String, String, String) {
    (to.into(), name.into(), previous.into(), "ana".into())
}

#[tokio::test]
async fn assigning_an_incident_logs_an_assigned_event_with_the_assignee() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let mut incident = create(&app, &store, "EST-1").await;
    for (id, name) in [("ana", "Ana López"), ("luis", ""), ("", "")] {
        incident = app
            .incidents()
            .assign_incident(req(
                &agent(),
                ticketd::pb::AssignIncidentRequest {
                    id: incident.id.clone(),
                    assignee_id: id.into(),
                    assignee_name: name.into(),
                    expected_version: incident.version,
                    assignee_email: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
    }
    let expected = [
        assigned("ana", "Ana López", ""),
        assigned("luis", "luis", "ana"),
        assigned("", "", "luis"),
    ];
    // The store sees the assignments too.
    assert_eq!(
        assignments(&events(&app, &store, &incident.id).await),
        expected
    );
}

#[tokio::test]
async fn assigning_a_consultation_logs_an_assigned_event_with_the_assignee() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-1");
    let mut consultation = consult(&app, &driver, "delivery_not_acknowledged").await;
    for (id, name) in [("ana", "Ana López"), ("luis", "Luis Pérez")] {
        consultation = app
            .consultations()
            .assign_consultation(req(
                &agent(),
                ticketd::pb::AssignConsultationRequest {
                    id: consultation.id.clone(),
                    assignee_id: id.into(),
                    assignee_name: name.into(),
                    expected_version: consultation.version,
                    assignee_email: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
    }
    assert_eq!(
        (
            consultation.assignee_id.as_str(),
            consultation.assignee_name.as_str()
        ),
        ("luis", "Luis Pérez")
    );
    let history = app
        .consultations()
        .list_ticket_events(req(
            &driver,
            ticketd::pb::ListTicketEventsRequest {
                ticket_id: consultation.id.clone(),
                after_sequence: 0,
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        assignments(&history),
        [
            assigned("ana", "Ana López", ""),
            assigned("luis", "Luis Pérez", "ana")
        ]
    );
}
