//! Deadlines across replicas and restarts, and the configured TECHNOLOGY due time.
use std::time::Duration;

use ticketd::pb::*;

use crate::helpers::*;
use crate::process::ServerProcess;

/// Friday 2026-11-06 17:00 in Mexico City.
const FRIDAY_17_00: &str = "2026-11-06T23:00:00Z";
/// 12 business hours after FRIDAY_17_00.
const MONDAY_15_00: &str = "2026-11-09T21:00:00Z";
/// Past the 21-day estimate of incidents filed at FRIDAY_17_00 (2026-11-27 23:00Z).
const AFTER_THE_ESTIMATE: &str = "2026-11-28T00:00:00Z";

fn count(events: &[TicketEvent], wanted: impl Fn(&ticket_event::Payload) -> bool) -> usize {
    events
        .iter()
        .filter(|e| e.payload.as_ref().is_some_and(&wanted))
        .count()
}

fn is_breach(p: &ticket_event::Payload) -> bool {
    matches!(p, ticket_event::Payload::SlaBreached(_))
}

fn is_auto_close(p: &ticket_event::Payload) -> bool {
    matches!(p, ticket_event::Payload::StatusChanged(s)
        if s.to_status == "INCIDENT_STATUS_FINALIZED"
            && s.reason == ResolutionReason::NoCustomerResponse as i32)
}

/// Every incident, as an agent lists them.
async fn all_incidents(app: &TestApp) -> Vec<Incident> {
    app.incidents()
        .list_incidents(req(
            &agent(),
            ListIncidentsRequest {
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .expect("list incidents")
        .into_inner()
        .incidents
}

#[tokio::test]
async fn two_replicas_record_exactly_one_breach_per_incident_past_its_estimate() {
    let clock = ManualClock::at(FRIDAY_17_00);
    // Both schedulers poll often, so that they wake together when the clock
    // jumps and race for the same incidents.
    let poll = Duration::from_millis(10);
    let mut app = TestApp::spawn_with(|s| {
        s.clock = clock.clone();
        s.scheduler_poll = poll;
    })
    .await;
    let mut replica = app
        .replica_with(|s| {
            s.clock = clock.clone();
            s.scheduler_poll = poll;
        })
        .await;
    let store = requester("acme");
    let mut ids = vec![];
    for i in 0..40 {
        ids.push(create(&app, &store, &format!("EST-{i}")).await.id);
    }
    clock.set(AFTER_THE_ESTIMATE);
    wait_for(
        "all 40 incidents to be marked breached",
        Duration::from_secs(20),
        || async {
            all_incidents(&app)
                .await
                .iter()
                .all(|i| i.sla_breached)
                .then_some(())
        },
    )
    .await;
    // Once both servers have stopped, neither can write another breach.
    replica.stop().await;
    app.restart_with(|s| s.clock = clock.clone()).await;
    for id in &ids {
        let events = events(&app, &agent(), id).await;
        assert_eq!(count(&events, is_breach), 1, "incident {id}: {events:?}");
    }
}

#[tokio::test]
async fn deadlines_that_pass_while_the_server_is_down_are_met_once_after_a_restart() {
    let clock = ManualClock::at(FRIDAY_17_00);
    let mut app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let store = requester("acme");
    let waiting = create(&app, &store, "EST-1").await;
    let waiting = change(&app, &agent(), &waiting, IncidentStatus::MissingData)
        .await
        .unwrap();
    let open = create(&app, &store, "EST-2").await;

    // Down over the auto-close deadline.
    app.stop().await;
    clock.set(MONDAY_15_00);
    app.restart_with(|s| s.clock = clock.clone()).await;
    let closed = wait_for(
        "the auto-close after the restart",
        Duration::from_secs(10),
        || async {
            let read = get(&app, &agent(), &waiting.id).await;
            (read.status == IncidentStatus::Finalized as i32).then_some(read)
        },
    )
    .await;
    assert_eq!(
        closed.resolution_reason,
        ResolutionReason::NoCustomerResponse as i32
    );

    // Down over the other incident's estimate.
    app.stop().await;
    clock.set(AFTER_THE_ESTIMATE);
    app.restart_with(|s| s.clock = clock.clone()).await;
    wait_for(
        "the breach after the restart",
        Duration::from_secs(10),
        || async {
            get(&app, &agent(), &open.id)
                .await
                .sla_breached
                .then_some(())
        },
    )
    .await;

    // Stopped, then read back: each deadline was met exactly once.
    app.restart_with(|s| s.clock = clock.clone()).await;
    let history = events(&app, &agent(), &waiting.id).await;
    assert_eq!(count(&history, is_auto_close), 1, "{history:?}");
    let history = events(&app, &agent(), &open.id).await;
    assert_eq!(count(&history, is_breach), 1, "{history:?}");
}

#[tokio::test]
async fn the_technology_due_setting_of_a_server_process_sets_technology_due_times() {
    let app = TestApp::spawn().await;
    let server =
        ServerProcess::start_with_env(&app.database_url, &[("TICKETD_TECHNOLOGY_DUE", "72h")])
            .await;
    let mut client =
        consultation_service_client::ConsultationServiceClient::new(server.channel.clone());
    let driver = requester("driver-1");
    let mut due_after = vec![];
    for category in ["earnings_difference", "delivery_not_acknowledged"] {
        let filed = client
            .create_consultation(req(
                &driver,
                CreateConsultationRequest {
                    category: category.into(),
                    description: "Ayuda".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let (created, due) = (filed.created_at.unwrap(), filed.due_at.unwrap());
        due_after.push((due.seconds - created.seconds, due.nanos - created.nanos));
    }
    assert_eq!(
        due_after,
        [(72 * 3600, 0), (6 * 3600, 0)],
        "TECHNOLOGY is due 72 h after filing; COLLABORATIVE keeps its 6 h"
    );
    let classified = client
        .classify_consultation(req(
            &driver,
            ClassifyConsultationRequest {
                category: "earnings_difference".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(classified.due_in_minutes, 72 * 60);
    let categories = client
        .list_categories(req(&driver, ListCategoriesRequest { incident_kind: 0 }))
        .await
        .unwrap()
        .into_inner()
        .categories;
    for category in categories
        .iter()
        .filter(|c| c.complexity == Complexity::Technology as i32)
    {
        assert_eq!(category.target_minutes, 72 * 60, "{}", category.code);
    }
}
