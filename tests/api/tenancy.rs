//! Tenancy is the account, not the subject: two users of one account share
//! its tickets and its idempotency keys; admins see every account.
use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;

fn alice() -> String {
    token("requester", "alice", Some("acme"))
}

fn bob() -> String {
    token("requester", "bob", Some("acme"))
}

fn admin() -> String {
    token("admin", "root", None)
}

async fn get_incident(
    app: &TestApp,
    token: &str,
    lookup: get_incident_request::Lookup,
) -> Result<Incident, tonic::Status> {
    app.incidents()
        .get_incident(req(
            token,
            GetIncidentRequest {
                lookup: Some(lookup),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn get_consultation(
    app: &TestApp,
    token: &str,
    lookup: get_consultation_request::Lookup,
) -> Result<Consultation, tonic::Status> {
    app.consultations()
        .get_consultation(req(
            token,
            GetConsultationRequest {
                lookup: Some(lookup),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn listed_incidents(app: &TestApp, token: &str) -> (Vec<String>, i64) {
    let r = app
        .incidents()
        .list_incidents(req(token, ListIncidentsRequest::default()))
        .await
        .expect("list incidents")
        .into_inner();
    (
        r.incidents.into_iter().map(|i| i.id).collect(),
        r.total_size,
    )
}

async fn listed_consultations(app: &TestApp, token: &str) -> (Vec<String>, i64) {
    let r = app
        .consultations()
        .list_consultations(req(token, ListConsultationsRequest::default()))
        .await
        .expect("list consultations")
        .into_inner();
    (
        r.consultations.into_iter().map(|c| c.id).collect(),
        r.total_size,
    )
}

async fn watch(
    app: &TestApp,
    token: &str,
    ticket: (TicketType, &str),
) -> Result<tonic::Streaming<WatchResponse>, tonic::Status> {
    let request = req(
        token,
        WatchTicketRequest {
            ticket_id: ticket.1.into(),
            after_sequence: 0,
        },
    );
    match ticket.0 {
        TicketType::Consultation => app.consultations().watch_ticket(request).await,
        _ => app.incidents().watch_ticket(request).await,
    }
    .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_requester_sees_the_tickets_another_user_of_its_account_filed() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &alice(), "EST-1").await;
    let consultation = consult(&app, &alice(), "delivery_not_acknowledged").await;
    assert_eq!(incident.requester.as_ref().unwrap().id, "alice");
    // Another account's ticket, which neither of them sees.
    let other = create(&app, &requester("globex"), "GLOBEX-1").await;

    let bob = bob();
    for lookup in [
        get_incident_request::Lookup::Id(incident.id.clone()),
        get_incident_request::Lookup::Number(incident.number),
    ] {
        assert_eq!(
            get_incident(&app, &bob, lookup.clone()).await.unwrap(),
            incident,
            "{lookup:?}"
        );
    }
    for lookup in [
        get_consultation_request::Lookup::Id(consultation.id.clone()),
        get_consultation_request::Lookup::Number(consultation.number),
    ] {
        assert_eq!(
            get_consultation(&app, &bob, lookup.clone()).await.unwrap(),
            consultation,
            "{lookup:?}"
        );
    }
    assert_eq!(
        listed_incidents(&app, &bob).await,
        (vec![incident.id.clone()], 1)
    );
    assert_eq!(
        listed_consultations(&app, &bob).await,
        (vec![consultation.id.clone()], 1)
    );
    // Bob follows both tickets and answers on alice's incident.
    let mut incident_stream = watch(&app, &bob, (TicketType::Incident, &incident.id))
        .await
        .unwrap();
    let mut consultation_stream = watch(&app, &bob, (TicketType::Consultation, &consultation.id))
        .await
        .unwrap();
    let mut feed = notification_feed(&app.channel, &bob, 0).await;
    add_comment(
        &app,
        &bob,
        (TicketType::Incident, &incident.id),
        "Soy Bob, de acme",
        false,
    )
    .await
    .expect("bob comments on alice's incident");
    let events = next_events(&mut incident_stream, 2, "alice's incident, watched by bob").await;
    assert!(matches!(
        events[0].payload,
        Some(ticket_event::Payload::Created(_))
    ));
    assert_eq!(comment_body(&events[1]), "Soy Bob, de acme");
    assert_eq!(events[1].actor.as_ref().unwrap().id, "bob");
    let events = next_events(
        &mut consultation_stream,
        1,
        "alice's consultation, watched by bob",
    )
    .await;
    assert_eq!(events[0].ticket_id, consultation.id);
    // The feed: acme's three events (globex's creation, 3, is not acme's).
    let events = next_events(&mut feed, 3, "bob's notification feed").await;
    assert_eq!(
        events
            .iter()
            .map(|e| (e.sequence, e.ticket_id.as_str()))
            .collect::<Vec<_>>(),
        [
            (1, incident.id.as_str()),
            (2, consultation.id.as_str()),
            (4, incident.id.as_str())
        ]
    );
    // And still nothing of another account.
    assert_code(
        get_incident(&app, &bob, get_incident_request::Lookup::Id(other.id)).await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn an_idempotency_key_is_shared_by_the_users_of_an_account_and_not_across_accounts() {
    let app = TestApp::spawn().await;
    let mut request = new_incident("EST-1");
    request.idempotency_key = "pedido-1001".into();
    let create_as = |token: String, request: CreateIncidentRequest| {
        let mut client = app.incidents();
        async move {
            client
                .create_incident(req(&token, request))
                .await
                .map(|r| r.into_inner())
        }
    };
    let first = create_as(alice(), request.clone()).await.unwrap();
    // Bob's retry of the same request in the same account is the same incident.
    let retried = create_as(bob(), request.clone()).await.unwrap();
    assert_eq!(retried, first);
    assert_eq!(retried.requester.unwrap().id, "alice");
    // With another payload the key is taken, whoever of the account asks.
    let mut other_payload = request.clone();
    other_payload.description = "Otra cosa".into();
    let status = assert_code(create_as(bob(), other_payload).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["idempotency_key"]);
    // Another account has keys of its own.
    let globex = create_as(requester("globex"), request).await.unwrap();
    assert_ne!(globex.id, first.id);
    assert_eq!(globex.account, "globex");
    assert_eq!(listed_incidents(&app, &agent()).await.1, 2);

    // Consultations too.
    let consultation = CreateConsultationRequest {
        category: "delivery_not_acknowledged".into(),
        description: "No lo reciben".into(),
        order_reference: String::new(),
        idempotency_key: "chat-77".into(),
        contact_email: String::new(),
    };
    let create_as = |token: String| {
        let mut client = app.consultations();
        let request = consultation.clone();
        async move {
            client
                .create_consultation(req(&token, request))
                .await
                .expect("create consultation")
                .into_inner()
        }
    };
    let by_alice = create_as(alice()).await;
    assert_eq!(create_as(bob()).await, by_alice);
    let by_globex = create_as(requester("globex")).await;
    assert_ne!(by_globex.id, by_alice.id);
    assert_eq!(listed_consultations(&app, &agent()).await.1, 2);
}

#[tokio::test]
async fn an_admin_sees_every_accounts_tickets_and_the_internal_notes() {
    let app = TestApp::spawn().await;
    let acme = create(&app, &requester("acme"), "ACME-1").await;
    let globex = create(&app, &requester("globex"), "GLOBEX-1").await;
    let c1 = consult(&app, &requester("driver-1"), "delivery_not_acknowledged").await;
    let c2 = consult(&app, &requester("driver-2"), "earnings_difference").await;
    let note_on_acme = add_comment(
        &app,
        &agent(),
        (TicketType::Incident, &acme.id),
        "nota sobre acme",
        true,
    )
    .await
    .unwrap();
    add_comment(
        &app,
        &agent(),
        (TicketType::Consultation, &c1.id),
        "nota sobre el chofer",
        true,
    )
    .await
    .unwrap();
    let admin = admin();
    for incident in [&acme, &globex] {
        for lookup in [
            get_incident_request::Lookup::Id(incident.id.clone()),
            get_incident_request::Lookup::Number(incident.number),
        ] {
            assert_eq!(
                get_incident(&app, &admin, lookup).await.unwrap().id,
                incident.id
            );
        }
    }
    for consultation in [&c1, &c2] {
        assert_eq!(
            get_consultation(
                &app,
                &admin,
                get_consultation_request::Lookup::Id(consultation.id.clone())
            )
            .await
            .unwrap()
            .id,
            consultation.id
        );
    }
    assert_eq!(
        listed_incidents(&app, &admin).await,
        (vec![globex.id.clone(), acme.id.clone()], 2)
    );
    assert_eq!(
        listed_consultations(&app, &admin).await,
        (vec![c2.id.clone(), c1.id.clone()], 2)
    );
    let comments = app
        .incidents()
        .list_comments(req(
            &admin,
            ListCommentsRequest {
                ticket_id: acme.id.clone(),
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .comments;
    assert_eq!(comments, [note_on_acme]);
    let logged = app
        .consultations()
        .list_ticket_events(req(
            &admin,
            ListTicketEventsRequest {
                ticket_id: c1.id.clone(),
                after_sequence: 0,
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(comment_body(&logged[1]), "nota sobre el chofer");

    let mut stream = watch(&app, &admin, (TicketType::Incident, &globex.id))
        .await
        .unwrap();
    let mut consultation_stream = watch(&app, &admin, (TicketType::Consultation, &c1.id))
        .await
        .unwrap();
    let mut feed = notification_feed(&app.channel, &admin, 0).await;
    add_comment(
        &app,
        &agent(),
        (TicketType::Incident, &globex.id),
        "nota sobre globex",
        true,
    )
    .await
    .unwrap();
    let events = next_events(&mut stream, 2, "globex's incident, watched by an admin").await;
    assert_eq!(comment_body(&events[1]), "nota sobre globex");
    let events = next_events(
        &mut consultation_stream,
        2,
        "driver-1's consultation, watched by an admin",
    )
    .await;
    assert_eq!(comment_body(&events[1]), "nota sobre el chofer");
    // Every account's events, internal ones included, in order.
    let events = next_events(&mut feed, 7, "the admin's notification feed").await;
    assert_eq!(sequence_numbers(&events), (1..=7).collect::<Vec<u64>>());
    let tickets: std::collections::BTreeSet<_> =
        events.iter().map(|e| e.ticket_id.as_str()).collect();
    assert_eq!(tickets.len(), 4, "all four tickets: {events:?}");
}

#[tokio::test]
async fn an_internal_note_from_a_requester_on_another_accounts_ticket_is_not_found() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let consultation = consult(&app, &requester("acme"), "delivery_not_acknowledged").await;
    let note = |id: &str| AddCommentRequest {
        ticket_id: id.into(),
        body: "nota".into(),
        internal: true,
    };
    for (token, want) in [
        (requester("globex"), Code::NotFound),
        (requester("acme"), Code::PermissionDenied),
    ] {
        let on_incident = app
            .incidents()
            .add_comment(req(&token, note(&incident.id)))
            .await;
        assert_code(on_incident, want);
        let on_consultation = app
            .consultations()
            .add_comment(req(&token, note(&consultation.id)))
            .await;
        assert_code(on_consultation, want);
    }
}
