//! SLA rules: claim windows and the auto-close of unanswered MISSING_DATA incidents.
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

/// Polls until the incident reaches `status`, or fails after 10 s.
async fn wait_for_status(app: &TestApp, id: &str, status: IncidentStatus) -> Incident {
    wait_for(
        &format!("incident {id} to reach {status:?}"),
        TEN_SECONDS,
        || async {
            let incident = get(app, &agent(), id).await;
            (incident.status == status as i32).then_some(incident)
        },
    )
    .await
}

const TEN_SECONDS: std::time::Duration = std::time::Duration::from_secs(10);

/// Files an incident on Friday 2026-11-06 17:00 in Mexico City and asks the
/// store for missing data at once: 12 business hours later is Monday 15:00.
async fn waiting_for_data(app: &TestApp) -> Incident {
    let incident = create(app, &requester("acme"), "EST-1").await;
    change(app, &agent(), &incident, IncidentStatus::MissingData)
        .await
        .unwrap()
}

const FRIDAY_16_59: &str = "2026-11-06T22:59:00Z";
const FRIDAY_17_00: &str = "2026-11-06T23:00:00Z";
const MONDAY_14_59: &str = "2026-11-09T20:59:00Z";
const MONDAY_15_00: &str = "2026-11-09T21:00:00Z";

// The scheduler's checks below use controls rather than sleeps: a control
// ticket that is due at the instant the clock is moved to must be handled
// first, which proves a scheduler pass ran at that instant; only then is the
// ticket under test asserted, so "not yet" and "only once" cannot pass just
// because the scheduler had not run yet.

#[tokio::test]
async fn an_unanswered_missing_data_incident_is_finalized_after_12_business_hours() {
    let clock = ManualClock::at(FRIDAY_16_59);
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    // Asked for data a minute earlier: due Monday 14:59.
    let control = waiting_for_data(&app).await;
    clock.set(FRIDAY_17_00);
    let incident = waiting_for_data(&app).await;
    clock.set(MONDAY_14_59);
    wait_for_status(&app, &control.id, IncidentStatus::Finalized).await;
    assert_eq!(
        get(&app, &agent(), &incident.id).await.status,
        IncidentStatus::MissingData as i32,
        "not yet due at 14:59, although a scheduler pass ran then"
    );
    clock.set(MONDAY_15_00);
    let closed = wait_for_status(&app, &incident.id, IncidentStatus::Finalized).await;
    assert_eq!(
        closed.resolution_reason,
        ResolutionReason::NoCustomerResponse as i32
    );
    assert_eq!(
        closed.resolved_at.unwrap().seconds,
        chrono::DateTime::parse_from_rfc3339(MONDAY_15_00)
            .unwrap()
            .timestamp()
    );
    let events = events(&app, &agent(), &incident.id).await;
    let last = events.last().unwrap();
    assert_eq!(last.actor.as_ref().unwrap().role, ActorRole::System as i32);
    match &last.payload {
        Some(ticket_event::Payload::StatusChanged(s)) => {
            assert_eq!(
                (s.from_status.as_str(), s.to_status.as_str()),
                ("INCIDENT_STATUS_MISSING_DATA", "INCIDENT_STATUS_FINALIZED")
            );
            assert_eq!(s.reason, ResolutionReason::NoCustomerResponse as i32);
        }
        other => panic!("expected the auto-close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_requester_comment_before_the_deadline_cancels_the_auto_close() {
    let clock = ManualClock::at(FRIDAY_17_00);
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let incident = waiting_for_data(&app).await;
    // Asked at the same time, never answered.
    let control = waiting_for_data(&app).await;
    clock.set(MONDAY_14_59);
    app.incidents()
        .add_comment(req(
            &requester("acme"),
            AddCommentRequest {
                ticket_id: incident.id.clone(),
                body: "Aquí está la foto".into(),
                internal: false,
            },
        ))
        .await
        .unwrap();
    clock.set("2026-11-20T21:00:00Z");
    wait_for_status(&app, &control.id, IncidentStatus::Finalized).await;
    assert_eq!(
        get(&app, &agent(), &incident.id).await.status,
        IncidentStatus::NewTicket as i32,
        "answered in time: not closed, although the unanswered one was"
    );
}

#[tokio::test]
async fn two_replicas_finalize_an_incident_exactly_once() {
    // Each replica has a clock of its own, so that a control only one of
    // them can see as due proves that that replica ran after the others were due.
    let clock = ManualClock::at(FRIDAY_17_00);
    let replica_clock = ManualClock::at(FRIDAY_17_00);
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let _replica = app.replica_with(|s| s.clock = replica_clock.clone()).await;
    let mut ids = vec![];
    for _ in 0..5 {
        ids.push(waiting_for_data(&app).await.id);
    }
    // Asked for data at 17:30 and 17:45: due Monday 15:30 and 15:45.
    clock.set("2026-11-06T23:30:00Z");
    let first_control = waiting_for_data(&app).await;
    clock.set("2026-11-06T23:45:00Z");
    let replica_control = waiting_for_data(&app).await;
    // Both replicas race for the five; only the first sees its control due.
    replica_clock.set(MONDAY_15_00);
    clock.set("2026-11-09T21:35:00Z");
    wait_for_status(&app, &first_control.id, IncidentStatus::Finalized).await;
    // Then only the replica sees its own control due: it ran after the five were due.
    replica_clock.set("2026-11-09T21:50:00Z");
    wait_for_status(&app, &replica_control.id, IncidentStatus::Finalized).await;
    for id in &ids {
        let closes = events(&app, &agent(), id)
            .await
            .into_iter()
            .filter(|e| matches!(&e.payload, Some(ticket_event::Payload::StatusChanged(s)) if s.to_status == "INCIDENT_STATUS_FINALIZED"))
            .count();
        assert_eq!(closes, 1, "incident {id}");
    }
}

fn seconds(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp()
}

#[tokio::test]
async fn the_estimated_resolution_pauses_while_waiting_for_the_stores_data() {
    let clock = ManualClock::at(FRIDAY_17_00);
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-1").await;
    // "Paquete dañado" has a 21-day target.
    let estimate = seconds("2026-11-27T23:00:00Z");
    assert_eq!(incident.estimated_resolution_at.unwrap().seconds, estimate);
    assert_eq!(incident.sla_remaining_seconds, 21 * 86_400);
    let waiting = change(&app, &agent(), &incident, IncidentStatus::MissingData)
        .await
        .unwrap();
    assert!(waiting.sla_paused);
    // Saturday 10:00 local: still within the 12 business hours; the store answers.
    clock.set("2026-11-07T16:00:00Z");
    app.incidents()
        .add_comment(req(
            &store,
            AddCommentRequest {
                ticket_id: incident.id.clone(),
                body: "Foto adjunta".into(),
                internal: false,
            },
        ))
        .await
        .unwrap();
    let back = get(&app, &store, &incident.id).await;
    assert!(!back.sla_paused);
    assert_eq!(
        back.estimated_resolution_at.unwrap().seconds,
        estimate + 17 * 3600,
        "moved by the 17 h spent waiting"
    );
}

/// A COLLABORATIVE consultation (due 6 h after filing).
async fn file_consultation(app: &TestApp, driver: &str) -> Consultation {
    consult(app, driver, "delivery_not_acknowledged").await
}

/// Waits until the consultation `id` is marked breached, as an agent sees it.
async fn consultation_breached(app: &TestApp, id: &str, what: &str) {
    wait_for(what, TEN_SECONDS, || async {
        let read = app
            .consultations()
            .get_consultation(req(
                &agent(),
                GetConsultationRequest {
                    lookup: Some(get_consultation_request::Lookup::Id(id.to_owned())),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        read.sla_breached.then_some(())
    })
    .await
}

/// The sla_breached events of a ticket.
fn breaches(events: &[TicketEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e.payload, Some(ticket_event::Payload::SlaBreached(_))))
        .count()
}

#[tokio::test]
async fn a_consultation_past_its_due_time_gets_exactly_one_breach_event_even_with_two_replicas() {
    let clock = ManualClock::at("2026-11-10T16:00:00Z");
    let replica_clock = ManualClock::at("2026-11-10T16:00:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let _replica = app.replica_with(|s| s.clock = replica_clock.clone()).await;
    let driver = requester("driver-1");
    let consultation = file_consultation(&app, &driver).await;
    let list = |id: String| {
        let mut client = app.consultations();
        async move {
            client
                .list_ticket_events(req(
                    &agent(),
                    ListTicketEventsRequest {
                        ticket_id: id,
                        after_sequence: 0,
                        page_size: 0,
                        page_token: String::new(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .events
        }
    };
    let breached = |id: String| {
        let list = &list;
        wait_for("a breach event", TEN_SECONDS, move || {
            let id = id.clone();
            async move { (breaches(&list(id).await) > 0).then_some(()) }
        })
    };
    // Controls filed 1 minute earlier and 5 and 10 minutes later: due at
    // 21:59, 22:05 and 22:10.
    let control_at = |at: &str| {
        clock.set(at);
        file_consultation(&app, &driver)
    };
    let early = control_at("2026-11-10T15:59:00Z").await;
    let first_control = control_at("2026-11-10T16:05:00Z").await;
    let replica_control = control_at("2026-11-10T16:10:00Z").await;
    clock.set("2026-11-10T21:59:00Z");
    replica_clock.set("2026-11-10T21:59:00Z");
    breached(early.id).await;
    assert_eq!(
        breaches(&list(consultation.id.clone()).await),
        0,
        "due at 22:00, not at 21:59"
    );
    // Both replicas race; then each sees a control of its own due, which
    // proves it ran after the consultation was due.
    replica_clock.set("2026-11-10T22:00:01Z");
    clock.set("2026-11-10T22:07:00Z");
    breached(first_control.id).await;
    replica_clock.set("2026-11-10T22:12:00Z");
    breached(replica_control.id).await;
    let events = list(consultation.id.clone()).await;
    assert_eq!(breaches(&events), 1);
    match &events.last().unwrap().payload {
        Some(ticket_event::Payload::SlaBreached(b)) => assert_eq!(b.due_at, consultation.due_at),
        other => panic!("{other:?}"),
    }
    let read = app
        .consultations()
        .get_consultation(req(
            &driver,
            GetConsultationRequest {
                lookup: Some(get_consultation_request::Lookup::Id(consultation.id)),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(read.sla_breached);
}

#[tokio::test]
async fn an_incident_past_its_estimate_gets_one_breach_event_and_a_resolved_one_none() {
    let clock = ManualClock::at(FRIDAY_17_00);
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let store = requester("acme");
    let open = create(&app, &store, "EST-1").await;
    let resolved = create(&app, &store, "EST-2").await;
    // Filed two hours later: its estimate passes at 01:00.
    clock.set("2026-11-07T01:00:00Z");
    let control = create(&app, &store, "EST-3").await;
    let resolved = change(&app, &agent(), &resolved, IncidentStatus::InProgress)
        .await
        .unwrap();
    change(&app, &agent(), &resolved, IncidentStatus::Finalized)
        .await
        .unwrap();
    let breached = |id: String| {
        let app = &app;
        wait_for("an incident marked breached", TEN_SECONDS, move || {
            let id = id.clone();
            async move { Some(get(app, &agent(), &id).await).filter(|i| i.sla_breached) }
        })
    };
    clock.set("2026-11-28T00:00:00Z");
    let breached_one = breached(open.id.clone()).await;
    assert!(breached_one.sla_remaining_seconds < 0);
    // A later pass, with the first still past its estimate, must not mark it again.
    clock.set("2026-11-28T02:00:00Z");
    breached(control.id).await;
    assert_eq!(breaches(&events(&app, &agent(), &open.id).await), 1);
    assert_eq!(breaches(&events(&app, &agent(), &resolved.id).await), 0);
}

#[tokio::test]
async fn consultation_due_times_can_count_business_hours() {
    let clock = ManualClock::at(FRIDAY_17_00);
    let app = TestApp::spawn_with(|s| {
        s.clock = clock.clone();
        s.consultation_targets.business_hours = true;
    })
    .await;
    let consultation = file_consultation(&app, &requester("driver-1")).await;
    // 6 business hours from Friday 17:00: Friday 17–18, Saturday 09–14.
    assert_eq!(
        consultation.due_at.unwrap().seconds,
        seconds("2026-11-07T20:00:00Z")
    );
}

#[test]
fn a_bad_calendar_file_stops_the_server_at_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calendar.json");
    std::fs::write(
        &file,
        r#"{"hours": {"mon": ["09:00-13:00", "12:00-18:00"]}}"#,
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .arg("--calendar-file")
        .arg(&file)
        .env("TICKETD_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // A server that accepted the file would serve forever: wait a bounded time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ticketd started with an invalid calendar file and was still running after 30 s"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success());
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("calendar.json") && stderr.contains("overlap"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_categorys_own_claim_window_overrides_the_carriers() {
    let clock = ManualClock::at("2026-11-25T18:00:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let mut request = new_incident("EST-1");
    // Estafeta allows 30 days, but overweight disputes only 15.
    request.kind = IncidentKind::AdditionalCharge as i32;
    request.category = "overweight".into();
    request.shipped_at = shipped("2026-11-05T18:00:00Z");
    let incident = app
        .incidents()
        .create_incident(req(&requester("acme"), request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(incident.status, IncidentStatus::Declined as i32);
    assert!(
        incident.resolution_note.contains("15 días"),
        "{}",
        incident.resolution_note
    );
    let categories = app
        .incidents()
        .list_categories(req(
            &agent(),
            ListCategoriesRequest {
                incident_kind: IncidentKind::AdditionalCharge as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .categories;
    assert!(categories.iter().all(|c| c.claim_window_days == 15));
}

#[tokio::test]
async fn the_scheduler_sleeps_until_the_next_deadline_not_until_its_poll() {
    // Every scheduler polls once an hour: a deadline is met in time only if
    // the scheduler computed it and slept until it. The deadlines are filed
    // through the first server, whose clock stays on Friday; each is then met
    // by a replica started two seconds before it, whose first pass handles
    // a control due a second earlier (so it has run and is about to sleep)
    // before its clock moves past the deadline.
    let hour = std::time::Duration::from_secs(3600);
    let clock = ManualClock::at("2026-11-06T22:59:57Z");
    let app = TestApp::spawn_with(|s| {
        s.clock = clock.clone();
        s.scheduler_poll = hour;
    })
    .await;
    let driver = requester("driver-1");
    // Filed a few seconds apart at Friday 17:00 local: due 6 h later.
    let early_consultation = file_consultation(&app, &driver).await;
    let early_incident = waiting_for_data(&app).await;
    clock.set(FRIDAY_17_00);
    let consultation = file_consultation(&app, &driver).await;
    let incident = waiting_for_data(&app).await;

    let replica_clock = ManualClock::at("2026-11-07T04:59:58Z");
    let _replica = app
        .replica_with(|s| {
            s.clock = replica_clock.clone();
            s.scheduler_poll = hour;
        })
        .await;
    consultation_breached(&app, &early_consultation.id, "the control's breach").await;
    replica_clock.set("2026-11-07T05:00:01Z");
    consultation_breached(&app, &consultation.id, "the breach at the due time").await;

    let other_clock = ManualClock::at("2026-11-09T20:59:58Z");
    let _other = app
        .replica_with(|s| {
            s.clock = other_clock.clone();
            s.scheduler_poll = hour;
        })
        .await;
    wait_for_status(&app, &early_incident.id, IncidentStatus::Finalized).await;
    other_clock.set(MONDAY_15_00);
    let closed = wait_for_status(&app, &incident.id, IncidentStatus::Finalized).await;
    assert_eq!(
        closed.version,
        incident.version + 1,
        "the auto-close is one change"
    );
}

#[tokio::test]
async fn a_new_consultations_due_time_wakes_the_scheduler() {
    // Real time, an hour's poll, TECHNOLOGY due 2 s after filing: a breach
    // comes in time only if filing the consultation woke the scheduler. The
    // first one's breach also shows the scheduler has done its start-up pass
    // and gone to sleep with nothing due, before the second is filed.
    let app = TestApp::spawn_with(|s| {
        s.scheduler_poll = std::time::Duration::from_secs(3600);
        s.consultation_targets.technology_due = std::time::Duration::from_secs(2);
    })
    .await;
    let driver = requester("driver-1");
    for which in ["first", "second"] {
        // TECHNOLOGY: due `technology_due` after filing.
        let consultation = consult(&app, &driver, "earnings_difference").await;
        let what = format!("the {which} consultation's breach, 2 s after filing");
        consultation_breached(&app, &consultation.id, &what).await;
    }
}
