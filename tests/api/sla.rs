//! SLA rules that are built: claim windows.
use ticketd::pb::*;

use crate::helpers::*;

fn shipped(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let at = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
    Some(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

#[tokio::test]
async fn an_incident_filed_inside_the_carriers_claim_window_is_a_new_ticket() {
    let clock = ManualClock::at("2026-11-25T18:00:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let mut request = new_incident("EST-1");
    // Estafeta accepts claims for 30 days: shipped 29 days ago.
    request.shipped_at = shipped("2026-10-27T18:00:00Z");
    let incident = app
        .incidents()
        .create_incident(req(&requester("acme"), request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(incident.status, IncidentStatus::NewTicket as i32);
    assert_eq!(
        incident.resolution_reason,
        ResolutionReason::Unspecified as i32
    );
}

#[tokio::test]
async fn an_incident_filed_after_the_claim_window_is_created_declined_with_the_reason() {
    let clock = ManualClock::at("2026-11-25T18:00:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let store = requester("acme");
    let mut request = new_incident("EST-1");
    request.shipped_at = shipped("2026-10-20T18:00:00Z");
    let incident = app
        .incidents()
        .create_incident(req(&store, request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(incident.status, IncidentStatus::Declined as i32);
    assert_eq!(incident.status_label, "Declinado");
    assert_eq!(
        incident.resolution_reason,
        ResolutionReason::OutOfClaimWindow as i32
    );
    assert!(incident.resolved_at.is_some());
    for part in [
        "Estafeta",
        "30 días",
        "2026-10-20",
        "2026-11-19",
        "2026-11-25",
    ] {
        assert!(
            incident.resolution_note.contains(part),
            "{part} in {:?}",
            incident.resolution_note
        );
    }
    let events = events(&app, &store, &incident.id).await;
    assert_eq!(events.len(), 2);
    match (&events[0].payload, &events[1].payload) {
        (
            Some(ticket_event::Payload::Created(c)),
            Some(ticket_event::Payload::StatusChanged(s)),
        ) => {
            assert_eq!(c.status, "INCIDENT_STATUS_NEW_TICKET");
            assert_eq!(s.to_status, "INCIDENT_STATUS_DECLINED");
            assert_eq!(s.reason, ResolutionReason::OutOfClaimWindow as i32);
        }
        other => panic!("created then declined, got {other:?}"),
    }
    assert_eq!(
        events[1].actor.as_ref().unwrap().role,
        ActorRole::System as i32
    );
}
