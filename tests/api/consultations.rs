//! ConsultationService end to end.
use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;

/// The seeded categories and the complexity DESIGN §3 gives them.
const SEEDED: &[(&str, Complexity)] = &[
    ("remove_orders_from_route", Complexity::Simple),
    ("cancel_or_pause_orders", Complexity::Simple),
    ("order_status", Complexity::Simple),
    ("delivery_not_acknowledged", Complexity::Collaborative),
    ("badly_assembled_on_route", Complexity::Collaborative),
    ("unreported_time_limit", Complexity::Collaborative),
    ("check_address_or_contact", Complexity::Collaborative),
    ("earnings_difference", Complexity::Technology),
    ("category_or_service_level", Complexity::Technology),
];

fn new_consultation(category: &str) -> CreateConsultationRequest {
    CreateConsultationRequest {
        category: category.into(),
        description: "El cliente no está en el domicilio".into(),
        order_reference: "PED-1234".into(),
        idempotency_key: String::new(),
        contact_email: String::new(),
    }
}

async fn file(app: &TestApp, token: &str, category: &str) -> Consultation {
    app.consultations()
        .create_consultation(req(token, new_consultation(category)))
        .await
        .expect("create consultation")
        .into_inner()
}

fn hours_between(from: &prost_types::Timestamp, to: &prost_types::Timestamp) -> f64 {
    (to.seconds - from.seconds) as f64 / 3600.0
}

#[tokio::test]
async fn every_seeded_category_classifies_to_its_complexity_and_target() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    let listed = app
        .consultations()
        .list_categories(req(&driver, ListCategoriesRequest { incident_kind: 0 }))
        .await
        .unwrap()
        .into_inner()
        .categories;
    assert_eq!(listed.len(), SEEDED.len());
    for (code, complexity) in SEEDED {
        let category = listed
            .iter()
            .find(|c| c.code == *code)
            .unwrap_or_else(|| panic!("{code} is listed"));
        assert_eq!(category.complexity, *complexity as i32, "{code}");
        assert!(!category.name.is_empty());
        let (min, max, due, ticket) = match complexity {
            Complexity::Simple => (0, 60, 60, false),
            Complexity::Collaborative => (60, 360, 360, true),
            Complexity::Technology => (360, 0, 48 * 60, true),
            Complexity::Unspecified => unreachable!(),
        };
        assert_eq!(category.target_minutes, due, "{code}");
        let answer = app
            .consultations()
            .classify_consultation(req(
                &driver,
                ClassifyConsultationRequest {
                    category: code.to_string(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.complexity, *complexity as i32, "{code}");
        assert_eq!(
            (answer.target_min_minutes, answer.target_max_minutes),
            (min, max),
            "{code}"
        );
        assert_eq!(answer.due_in_minutes, due);
        assert_eq!(answer.creates_ticket, ticket, "{code}");
        // What the chat bot tells the driver names the promise of the complexity.
        let promise = match complexity {
            Complexity::Simple => "menos de 1 hora; no se genera ticket",
            Complexity::Collaborative => "1 a 6 horas",
            _ => "tecnología; lo resolvemos en un máximo de 48 horas",
        };
        assert!(
            answer.message.contains(promise),
            "{code}: {}",
            answer.message
        );
        assert_eq!(answer.category.unwrap().name, category.name);
    }
}

#[tokio::test]
async fn the_classification_message_comes_in_english_when_asked_for() {
    let app = TestApp::spawn().await;
    let mut request = req(
        &requester("driver-7"),
        ClassifyConsultationRequest {
            category: "earnings_difference".into(),
        },
    );
    request
        .metadata_mut()
        .insert("accept-language", "en".parse().unwrap());
    let answer = app
        .consultations()
        .classify_consultation(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.message,
        "A ticket is created for the technology team; we solve it within 48 hours."
    );
}

#[tokio::test]
async fn simple_consultations_get_no_number_and_ticketed_ones_get_their_own_sequence() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    // An incident first: consultation numbers are a separate sequence.
    create(&app, &requester("acme"), "EST-1").await;
    let simple = file(&app, &driver, "order_status").await;
    let collaborative = file(&app, &driver, "delivery_not_acknowledged").await;
    let technology = file(&app, &driver, "earnings_difference").await;
    assert_eq!(
        (simple.number, collaborative.number, technology.number),
        (0, 1, 2)
    );
    assert_eq!(simple.title, "Consultar el estado de un pedido");
    assert_eq!(collaborative.status_label, "Recepcionado");
    assert_eq!(collaborative.complexity_label, "Colaborativa");
    assert_eq!(collaborative.order_reference, "PED-1234");
    for (c, hours) in [(&simple, 1.0), (&collaborative, 6.0), (&technology, 48.0)] {
        assert_eq!(
            hours_between(c.created_at.as_ref().unwrap(), c.due_at.as_ref().unwrap()).round(),
            hours
        );
    }
    let by_number = app
        .consultations()
        .get_consultation(req(
            &driver,
            GetConsultationRequest {
                lookup: Some(get_consultation_request::Lookup::Number(2)),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_number.id, technology.id);
}

#[tokio::test]
async fn reclassifying_a_simple_consultation_upward_gives_it_a_number_and_a_new_due_time() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    file(&app, &driver, "earnings_difference").await;
    let simple = file(&app, &driver, "cancel_or_pause_orders").await;
    let reclassified = app
        .consultations()
        .reclassify_consultation(req(
            &agent(),
            ReclassifyConsultationRequest {
                id: simple.id.clone(),
                complexity: Complexity::Collaborative as i32,
                expected_version: 1,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reclassified.number, 2);
    assert_eq!(reclassified.complexity, Complexity::Collaborative as i32);
    assert_eq!(reclassified.version, 2);
    let created = reclassified.created_at.as_ref().unwrap();
    assert_eq!(
        hours_between(created, reclassified.due_at.as_ref().unwrap()).round(),
        6.0
    );
    let events = app
        .consultations()
        .list_ticket_events(req(
            &driver,
            ListTicketEventsRequest {
                ticket_id: simple.id.clone(),
                after_sequence: 0,
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    match &events.last().unwrap().payload {
        Some(ticket_event::Payload::Reclassified(r)) => {
            assert_eq!(
                (r.from, r.to, r.number),
                (
                    Complexity::Simple as i32,
                    Complexity::Collaborative as i32,
                    2
                )
            );
            assert_eq!(r.due_at, reclassified.due_at);
        }
        other => panic!("expected reclassified, got {other:?}"),
    }
    assert_eq!(events.last().unwrap().ticket_number, 2);
    // Down again keeps the number; the same complexity is refused.
    let down = app
        .consultations()
        .reclassify_consultation(req(
            &agent(),
            ReclassifyConsultationRequest {
                id: simple.id.clone(),
                complexity: Complexity::Simple as i32,
                expected_version: 2,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(down.number, 2);
    assert_code(
        app.consultations()
            .reclassify_consultation(req(
                &agent(),
                ReclassifyConsultationRequest {
                    id: simple.id.clone(),
                    complexity: Complexity::Simple as i32,
                    expected_version: 3,
                },
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_code(
        app.consultations()
            .reclassify_consultation(req(
                &driver,
                ReclassifyConsultationRequest {
                    id: simple.id,
                    complexity: Complexity::Technology as i32,
                    expected_version: 3,
                },
            ))
            .await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn every_state_pair_follows_the_design_for_every_role() {
    use ConsultationStatus::*;
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    let mut failures = vec![];
    for from in [Received, InProgress, Solved] {
        for to in [Received, InProgress, Solved] {
            for (role, token) in [("agent", agent()), ("requester", driver.clone())] {
                let mut c = file(&app, &driver, "delivery_not_acknowledged").await;
                let path: &[ConsultationStatus] = match from {
                    Received => &[],
                    InProgress => &[InProgress],
                    Solved => &[InProgress, Solved],
                    Unspecified => unreachable!(),
                };
                for step in path {
                    c = app
                        .consultations()
                        .change_consultation_status(req(
                            &agent(),
                            ChangeConsultationStatusRequest {
                                id: c.id.clone(),
                                status: *step as i32,
                                expected_version: c.version,
                                comment: String::new(),
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner();
                }
                let legal = matches!((from, to), (Received, InProgress) | (InProgress, Solved));
                // Drivers never change a consultation's state: refused
                // before the state is looked at.
                let want = match (legal, role) {
                    (_, "requester") => Code::PermissionDenied,
                    (false, _) => Code::FailedPrecondition,
                    (true, _) => Code::Ok,
                };
                let result = app
                    .consultations()
                    .change_consultation_status(req(
                        &token,
                        ChangeConsultationStatusRequest {
                            id: c.id.clone(),
                            status: to as i32,
                            expected_version: c.version,
                            comment: "Revisado con el cliente".into(),
                        },
                    ))
                    .await;
                let got = result.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
                if got != want {
                    failures.push(format!(
                        "{from:?} -> {to:?} by {role}: want {want:?}, got {got:?}"
                    ));
                } else if let Ok(updated) = result {
                    let updated = updated.into_inner();
                    assert_eq!(updated.status, to as i32);
                    assert_eq!(updated.solved_at.is_some(), to == Solved);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_state_change_with_a_comment_posts_it_and_records_the_event() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    let c = file(&app, &driver, "delivery_not_acknowledged").await;
    let moved = app
        .consultations()
        .change_consultation_status(req(
            &agent(),
            ChangeConsultationStatusRequest {
                id: c.id.clone(),
                status: ConsultationStatus::InProgress as i32,
                expected_version: 1,
                comment: "Llamamos al cliente".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.status_label, "En curso");
    assert_code(
        app.consultations()
            .change_consultation_status(req(
                &agent(),
                ChangeConsultationStatusRequest {
                    id: c.id.clone(),
                    status: ConsultationStatus::Solved as i32,
                    expected_version: 1,
                    comment: String::new(),
                },
            ))
            .await,
        Code::Aborted,
    );
    let comments = app
        .consultations()
        .list_comments(req(
            &driver,
            ListCommentsRequest {
                ticket_id: c.id.clone(),
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .comments;
    assert_eq!(
        comments.iter().map(|c| c.body.as_str()).collect::<Vec<_>>(),
        ["Llamamos al cliente"]
    );
    let events = app
        .consultations()
        .list_ticket_events(req(
            &driver,
            ListTicketEventsRequest {
                ticket_id: c.id,
                after_sequence: 0,
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let last = events.last().unwrap();
    assert_eq!(last.ticket_type, TicketType::Consultation as i32);
    match &last.payload {
        Some(ticket_event::Payload::StatusChanged(s)) => {
            assert_eq!(
                (s.from_status.as_str(), s.to_status.as_str()),
                (
                    "CONSULTATION_STATUS_RECEIVED",
                    "CONSULTATION_STATUS_IN_PROGRESS"
                )
            );
            assert_eq!(
                (s.from_label.as_str(), s.to_label.as_str()),
                ("Recepcionado", "En curso")
            );
        }
        other => panic!("expected status change, got {other:?}"),
    }
}

#[tokio::test]
async fn lists_filter_count_and_search_without_accents() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    let a = file(&app, &driver, "order_status").await;
    let mut r = new_consultation("earnings_difference");
    r.description = "La quincena llegó con diferencia en el depósito".into();
    let b = app
        .consultations()
        .create_consultation(req(&driver, r))
        .await
        .unwrap()
        .into_inner();
    app.consultations()
        .change_consultation_status(req(
            &agent(),
            ChangeConsultationStatusRequest {
                id: b.id.clone(),
                status: ConsultationStatus::InProgress as i32,
                expected_version: 1,
                comment: String::new(),
            },
        ))
        .await
        .unwrap();
    app.consultations()
        .assign_consultation(req(
            &agent(),
            AssignConsultationRequest {
                id: a.id.clone(),
                assignee_id: "ana".into(),
                assignee_name: "Ana Núñez".into(),
                expected_version: 1,
                assignee_email: String::new(),
            },
        ))
        .await
        .unwrap();
    let list = |request: ListConsultationsRequest| {
        let mut client = app.consultations();
        async move {
            client
                .list_consultations(req(&agent(), request))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let all = list(ListConsultationsRequest::default()).await;
    assert_eq!(all.total_size, 2);
    assert_eq!(
        all.status_counts,
        Some(StatusCounts {
            all: 2,
            received: 1,
            in_progress: 1,
            solved: 0
        })
    );
    let ids = |r: ListConsultationsResponse| {
        r.consultations
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(list(ListConsultationsRequest {
            query: "deposito".into(),
            ..Default::default()
        })
        .await),
        [b.id.as_str()]
    );
    assert_eq!(
        ids(list(ListConsultationsRequest {
            query: "NUNEZ".into(),
            ..Default::default()
        })
        .await),
        [a.id.as_str()]
    );
    assert_eq!(
        ids(list(ListConsultationsRequest {
            complexities: vec![Complexity::Technology as i32],
            ..Default::default()
        })
        .await),
        [b.id.as_str()]
    );
    assert_eq!(
        ids(list(ListConsultationsRequest {
            statuses: vec![ConsultationStatus::Received as i32],
            ..Default::default()
        })
        .await),
        [a.id.as_str()]
    );
    assert_eq!(
        ids(list(ListConsultationsRequest {
            category: "order_status".into(),
            ..Default::default()
        })
        .await),
        [a.id.as_str()]
    );
    assert_eq!(
        ids(list(ListConsultationsRequest {
            assignee_id: "ana".into(),
            ..Default::default()
        })
        .await),
        [a.id.as_str()]
    );
    let first = list(ListConsultationsRequest {
        page_size: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(first.consultations[0].id, b.id, "newest first");
    let second = list(ListConsultationsRequest {
        page_size: 1,
        page_token: first.next_page_token,
        ..Default::default()
    })
    .await;
    assert_eq!(ids(second.clone()), [a.id]);
    assert!(second.next_page_token.is_empty());
}

#[tokio::test]
async fn a_driver_never_reaches_another_drivers_consultation() {
    let app = TestApp::spawn().await;
    let (mine, theirs) = (requester("driver-1"), requester("driver-2"));
    file(&app, &mine, "order_status").await;
    let other = file(&app, &theirs, "delivery_not_acknowledged").await;
    let id = other.id.clone();
    let mut c = app.consultations();
    let results: Vec<(&str, Result<(), tonic::Status>)> = vec![
        (
            "GetConsultation",
            c.get_consultation(req(
                &mine,
                GetConsultationRequest {
                    lookup: Some(get_consultation_request::Lookup::Id(id.clone())),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "GetConsultation by number",
            c.get_consultation(req(
                &mine,
                GetConsultationRequest {
                    lookup: Some(get_consultation_request::Lookup::Number(other.number)),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ChangeConsultationStatus",
            c.change_consultation_status(req(
                &mine,
                ChangeConsultationStatusRequest {
                    id: id.clone(),
                    status: 2,
                    expected_version: 1,
                    comment: String::new(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "AddComment",
            c.add_comment(req(
                &mine,
                AddCommentRequest {
                    ticket_id: id.clone(),
                    body: "hola".into(),
                    internal: false,
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ListComments",
            c.list_comments(req(
                &mine,
                ListCommentsRequest {
                    ticket_id: id.clone(),
                    page_size: 0,
                    page_token: String::new(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ListTicketEvents",
            c.list_ticket_events(req(
                &mine,
                ListTicketEventsRequest {
                    ticket_id: id.clone(),
                    after_sequence: 0,
                    page_size: 0,
                    page_token: String::new(),
                },
            ))
            .await
            .map(drop),
        ),
    ];
    for (rpc, result) in results {
        assert_eq!(result.map_err(|s| s.code()), Err(Code::NotFound), "{rpc}");
    }
    for query in ["", "cliente", "1"] {
        let listed = c
            .list_consultations(req(
                &mine,
                ListConsultationsRequest {
                    query: query.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(
            listed.consultations.iter().all(|c| c.account == "driver-1"),
            "{query:?}"
        );
        assert!(listed.status_counts.unwrap().all <= 1);
    }
    // An incident id is not a consultation, and vice versa.
    let incident = create(&app, &requester("acme"), "EST-1").await;
    assert_code(
        c.get_consultation(req(
            &agent(),
            GetConsultationRequest {
                lookup: Some(get_consultation_request::Lookup::Id(incident.id)),
            },
        ))
        .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn bad_consultation_input_names_the_field() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    type Edit = Box<dyn Fn(&mut CreateConsultationRequest)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|r| r.category = "aliens".into()), "category"),
        (Box::new(|r| r.category = "damaged".into()), "category"),
        (Box::new(|r| r.category = String::new()), "category"),
        (Box::new(|r| r.description = "  ".into()), "description"),
        (
            Box::new(|r| r.description = "x".repeat(10_001)),
            "description",
        ),
        (
            Box::new(|r| r.order_reference = "x".repeat(65)),
            "order_reference",
        ),
        (
            Box::new(|r| r.idempotency_key = "x".repeat(129)),
            "idempotency_key",
        ),
    ];
    for (edit, field) in cases {
        let mut request = new_consultation("order_status");
        edit(&mut request);
        let status = assert_code(
            app.consultations()
                .create_consultation(req(&driver, request))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), [field], "{}", status.message());
    }
    let status = assert_code(
        app.consultations()
            .classify_consultation(req(
                &driver,
                ClassifyConsultationRequest {
                    category: "nope".into(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["category"]);
    let c = file(&app, &driver, "order_status").await;
    let status = assert_code(
        app.consultations()
            .reclassify_consultation(req(
                &agent(),
                ReclassifyConsultationRequest {
                    id: c.id.clone(),
                    complexity: 9,
                    expected_version: 1,
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["complexity"]);
    let status = assert_code(
        app.consultations()
            .list_consultations(req(
                &agent(),
                ListConsultationsRequest {
                    statuses: vec![7],
                    page_size: -1,
                    ..Default::default()
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["statuses[0]", "page_size"]);
    assert_code(
        app.consultations()
            .create_consultation(req(&agent(), new_consultation("order_status")))
            .await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn an_idempotent_consultation_retry_returns_the_same_consultation() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    let mut request = new_consultation("delivery_not_acknowledged");
    request.idempotency_key = "chat-msg-991".into();
    let calls = (0..5).map(|_| {
        let mut client = app.consultations();
        let (driver, request) = (driver.clone(), request.clone());
        tokio::spawn(async move {
            client
                .create_consultation(req(&driver, request))
                .await
                .map(|r| r.into_inner().id)
        })
    });
    let ids: std::collections::HashSet<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    request.description = "otra".into();
    let status = assert_code(
        app.consultations()
            .create_consultation(req(&driver, request))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["idempotency_key"]);
}

/// The bodies of a consultation's comments as `token` lists them, with their
/// `internal` flags.
async fn listed_comments(app: &TestApp, token: &str, id: &str) -> Vec<(String, bool)> {
    app.consultations()
        .list_comments(req(
            token,
            ListCommentsRequest {
                ticket_id: id.into(),
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .expect("list comments")
        .into_inner()
        .comments
        .into_iter()
        .map(|c| (c.body, c.internal))
        .collect()
}

/// The bodies of a consultation's comment_added events as `token` lists them.
async fn commented_events(app: &TestApp, token: &str, id: &str) -> Vec<String> {
    app.consultations()
        .list_ticket_events(req(
            token,
            ListTicketEventsRequest {
                ticket_id: id.into(),
                after_sequence: 0,
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .expect("list events")
        .into_inner()
        .events
        .iter()
        .filter(|e| matches!(e.payload, Some(ticket_event::Payload::CommentAdded(_))))
        .map(|e| comment_body(e).to_owned())
        .collect()
}

async fn watch_consultation(
    app: &TestApp,
    token: &str,
    id: &str,
    after: u64,
) -> Result<tonic::Streaming<WatchResponse>, tonic::Status> {
    app.consultations()
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

#[tokio::test]
async fn consultation_comments_are_stored_and_listed_with_internal_notes_for_agents_only() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    let c = file(&app, &driver, "delivery_not_acknowledged").await;
    let ticket = (TicketType::Consultation, c.id.as_str());
    let asked = add_comment(&app, &driver, ticket, "¿Ya lo revisaron?", false)
        .await
        .expect("the driver comments");
    assert_eq!(asked.ticket_id, c.id);
    assert_eq!(asked.body, "¿Ya lo revisaron?");
    assert!(!asked.internal);
    let author = asked.author.unwrap();
    assert_eq!(
        (author.id.as_str(), author.role),
        ("store-driver-7", ActorRole::Requester as i32)
    );
    let answer = add_comment(&app, &agent(), ticket, "Sí, hoy lo vemos", false)
        .await
        .expect("the agent answers");
    assert_eq!(answer.author.unwrap().role, ActorRole::Agent as i32);
    let note = add_comment(&app, &agent(), ticket, "Cliente con historial", true)
        .await
        .expect("the agent writes a note");
    assert!(note.internal);
    assert_code(
        add_comment(&app, &driver, ticket, "nota mía", true).await,
        Code::PermissionDenied,
    );

    let public = [
        ("¿Ya lo revisaron?".to_owned(), false),
        ("Sí, hoy lo vemos".to_owned(), false),
    ];
    assert_eq!(listed_comments(&app, &driver, &c.id).await, public);
    let mut all = public.to_vec();
    all.push(("Cliente con historial".to_owned(), true));
    assert_eq!(listed_comments(&app, &agent(), &c.id).await, all);
    assert_eq!(
        commented_events(&app, &driver, &c.id).await,
        ["¿Ya lo revisaron?", "Sí, hoy lo vemos"]
    );
    assert_eq!(
        commented_events(&app, &agent(), &c.id).await,
        [
            "¿Ya lo revisaron?",
            "Sí, hoy lo vemos",
            "Cliente con historial"
        ]
    );
}

#[tokio::test]
async fn a_driver_watching_its_consultation_gets_history_then_live_changes_but_no_internal_notes() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    let c = file(&app, &driver, "delivery_not_acknowledged").await;
    let ticket = (TicketType::Consultation, c.id.as_str());
    // Sequence 2: an agent note, before anyone watches.
    add_comment(&app, &agent(), ticket, "nota interna", true)
        .await
        .unwrap();
    let mut driver_stream = watch_consultation(&app, &driver, &c.id, 0).await.unwrap();
    let mut agent_stream = watch_consultation(&app, &agent(), &c.id, 0).await.unwrap();
    let history = next_events(&mut driver_stream, 1, "the driver's replay").await;
    assert!(matches!(
        history[0].payload,
        Some(ticket_event::Payload::Created(_))
    ));
    // Live: sequence 3, a status change; 4, a public answer.
    app.consultations()
        .change_consultation_status(req(
            &agent(),
            ChangeConsultationStatusRequest {
                id: c.id.clone(),
                status: ConsultationStatus::InProgress as i32,
                expected_version: 1,
                comment: String::new(),
            },
        ))
        .await
        .unwrap();
    add_comment(&app, &agent(), ticket, "Ya vamos", false)
        .await
        .unwrap();
    let live = next_events(&mut driver_stream, 2, "the driver's live events").await;
    assert_eq!(
        sequence_numbers(&history)
            .into_iter()
            .chain(sequence_numbers(&live))
            .collect::<Vec<_>>(),
        [1, 3, 4],
        "the note (2) is left out"
    );
    match &live[0].payload {
        Some(ticket_event::Payload::StatusChanged(s)) => {
            assert_eq!(s.to_status, "CONSULTATION_STATUS_IN_PROGRESS")
        }
        other => panic!("expected the status change, got {other:?}"),
    }
    assert_eq!(comment_body(&live[1]), "Ya vamos");
    assert!(live.iter().all(|e| e.ticket_id == c.id
        && e.ticket_type == TicketType::Consultation as i32
        && e.ticket_number == 1));
    let agent_events = next_events(&mut agent_stream, 4, "the agent's events").await;
    assert_eq!(sequence_numbers(&agent_events), [1, 2, 3, 4]);
    assert_eq!(comment_body(&agent_events[1]), "nota interna");
    // A resumed stream starts after its cursor.
    let mut resumed = watch_consultation(&app, &driver, &c.id, 3).await.unwrap();
    assert_eq!(
        sequence_numbers(&next_events(&mut resumed, 1, "the resumed stream").await),
        [4]
    );
}

#[tokio::test]
async fn a_driver_gets_not_found_for_another_accounts_consultation_on_assign_reclassify_watch_and_export()
 {
    let clock = ManualClock::at("2026-11-10T16:30:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let (mine, theirs) = (requester("driver-1"), requester("driver-2"));
    let own = file(&app, &mine, "earnings_difference").await;
    let other = file(&app, &theirs, "delivery_not_acknowledged").await;
    let mut c = app.consultations();
    let results: Vec<(&str, Result<(), tonic::Status>)> = vec![
        (
            "AssignConsultation",
            c.assign_consultation(req(
                &mine,
                AssignConsultationRequest {
                    id: other.id.clone(),
                    assignee_id: "store-driver-1".into(),
                    assignee_name: String::new(),
                    expected_version: 1,
                    assignee_email: String::new(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ReclassifyConsultation",
            c.reclassify_consultation(req(
                &mine,
                ReclassifyConsultationRequest {
                    id: other.id.clone(),
                    complexity: Complexity::Technology as i32,
                    expected_version: 1,
                },
            ))
            .await
            .map(drop),
        ),
        (
            "WatchTicket",
            watch_consultation(&app, &mine, &other.id, 0)
                .await
                .map(drop),
        ),
    ];
    for (rpc, result) in results {
        match result {
            Err(status) if status.code() == Code::NotFound => {
                assert!(
                    !status.message().contains("driver-2"),
                    "{rpc} leaks the account: {status:?}"
                );
            }
            other => panic!("{rpc}: expected NOT_FOUND, got {other:?}"),
        }
    }
    let theirs_now = c
        .get_consultation(req(
            &agent(),
            GetConsultationRequest {
                lookup: Some(get_consultation_request::Lookup::Id(other.id.clone())),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        theirs_now, other,
        "nothing changed on driver-2's consultation"
    );

    // A driver's report holds its own consultations only; an agent's, both.
    let export = |token: String| {
        let mut client = app.consultations();
        async move {
            let stream = client
                .export_report(req(
                    &token,
                    ExportConsultationsRequest {
                        from_date: "2026-11-10".into(),
                        to_date: "2026-11-10".into(),
                        columns: vec!["account".into(), "description".into()],
                        ..Default::default()
                    },
                ))
                .await
                .expect("export")
                .into_inner();
            crate::export::read_report(stream).await
        }
    };
    let (count, rows) = export(mine.clone()).await;
    assert_eq!(count, 1);
    assert_eq!(
        rows,
        [vec!["driver-1".to_owned(), own.description.clone()]],
        "only driver-1's consultation"
    );
    let (count, rows) = export(agent()).await;
    assert_eq!(count, 2);
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn a_driver_may_not_assign_its_own_consultation() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    let c = file(&app, &driver, "delivery_not_acknowledged").await;
    assert_code(
        app.consultations()
            .assign_consultation(req(
                &driver,
                AssignConsultationRequest {
                    id: c.id.clone(),
                    assignee_id: "store-driver-7".into(),
                    assignee_name: "Yo".into(),
                    expected_version: 1,
                    assignee_email: String::new(),
                },
            ))
            .await,
        Code::PermissionDenied,
    );
    let read = app
        .consultations()
        .get_consultation(req(
            &driver,
            GetConsultationRequest {
                lookup: Some(get_consultation_request::Lookup::Id(c.id.clone())),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((read.version, read.assignee_id.as_str()), (1, ""));
}

#[tokio::test]
async fn the_notification_feed_carries_ticketed_consultations_and_leaves_out_simple_ones() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-7");
    let mut driver_feed = notification_feed(&app.channel, &driver, 0).await;
    let mut agent_feed = notification_feed(&app.channel, &agent(), 0).await;
    // 1: a SIMPLE one is filed; 2: a COLLABORATIVE one.
    let simple = file(&app, &driver, "order_status").await;
    let ticketed = file(&app, &driver, "delivery_not_acknowledged").await;
    // 3: a comment on the SIMPLE one; 4: on the ticketed one; 5: its status changes.
    add_comment(
        &app,
        &agent(),
        (TicketType::Consultation, &simple.id),
        "Va en ruta",
        false,
    )
    .await
    .unwrap();
    add_comment(
        &app,
        &agent(),
        (TicketType::Consultation, &ticketed.id),
        "Lo revisamos",
        false,
    )
    .await
    .unwrap();
    app.consultations()
        .change_consultation_status(req(
            &agent(),
            ChangeConsultationStatusRequest {
                id: ticketed.id.clone(),
                status: ConsultationStatus::InProgress as i32,
                expected_version: 1,
                comment: String::new(),
            },
        ))
        .await
        .unwrap();
    for (who, feed) in [("driver", &mut driver_feed), ("agent", &mut agent_feed)] {
        let events = next_events(feed, 3, &format!("the {who}'s feed")).await;
        // In order, so reaching 4 and 5 shows that 1 and 3 were left out.
        assert_eq!(sequence_numbers(&events), [2, 4, 5], "{who}");
        assert!(
            events
                .iter()
                .all(|e| e.ticket_id == ticketed.id
                    && e.ticket_type == TicketType::Consultation as i32),
            "{who}: {events:?}"
        );
        assert!(matches!(
            events[0].payload,
            Some(ticket_event::Payload::Created(_))
        ));
        assert_eq!(comment_body(&events[1]), "Lo revisamos");
        assert!(matches!(
            events[2].payload,
            Some(ticket_event::Payload::StatusChanged(_))
        ));
    }
}
