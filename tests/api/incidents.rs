//! Creating, reading, listing, searching and commenting incidents.
use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_created_incident_reads_back_with_its_number_labels_and_catalog_names() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let first = create(&app, &store, "EST-100").await;
    let second = create(&app, &store, "EST-101").await;
    assert_eq!((first.number, second.number), (1, 2));
    assert_eq!(first.status, IncidentStatus::NewTicket as i32);
    assert_eq!(first.status_label, "Nuevo ticket");
    assert_eq!(first.stage_label, "Nuevos");
    assert_eq!(first.kind_label, "Envío");
    assert_eq!(first.carrier_name, "Estafeta");
    assert_eq!(first.category_name, "Paquete dañado");
    assert_eq!(first.account, "acme");
    assert_eq!(first.version, 1);
    assert_eq!(first.claimed_amount.as_ref().unwrap().amount, "1250.50");

    let by_number = app
        .incidents()
        .get_incident(req(
            &agent(),
            GetIncidentRequest {
                lookup: Some(get_incident_request::Lookup::Number(2)),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_number.id, second.id);
    assert_eq!(get(&app, &store, &first.id).await, first);
}

#[tokio::test]
async fn labels_come_in_english_when_accept_language_asks_for_it() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-100").await;
    let mut request = req(
        &agent(),
        GetIncidentRequest {
            lookup: Some(get_incident_request::Lookup::Id(incident.id)),
        },
    );
    request
        .metadata_mut()
        .insert("accept-language", "en-US,en;q=0.9".parse().unwrap());
    let read = app
        .incidents()
        .get_incident(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            read.status_label.as_str(),
            read.stage_label.as_str(),
            read.kind_label.as_str()
        ),
        ("New ticket", "New", "Shipment")
    );
}

#[tokio::test]
async fn creation_status_changes_and_comments_are_recorded_as_events_in_order() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-100").await;
    let moved = change(&app, &agent(), &incident, IncidentStatus::InProgress)
        .await
        .unwrap();
    app.incidents()
        .add_comment(req(
            &agent(),
            AddCommentRequest {
                ticket_id: moved.id.clone(),
                body: "Reportado".into(),
                internal: false,
            },
        ))
        .await
        .unwrap();
    let events = events(&app, &store, &incident.id).await;
    let kinds: Vec<_> = events
        .iter()
        .map(|e| match e.payload.as_ref().unwrap() {
            ticket_event::Payload::Created(_) => "created",
            ticket_event::Payload::StatusChanged(_) => "status_changed",
            ticket_event::Payload::CommentAdded(_) => "comment_added",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["created", "status_changed", "comment_added"]);
    assert!(events.windows(2).all(|w| w[0].sequence < w[1].sequence));
    assert!(
        events
            .iter()
            .all(|e| e.ticket_number == 1 && e.ticket_id == incident.id)
    );
}

#[tokio::test]
async fn internal_comments_are_hidden_from_requesters_and_requesters_cannot_write_them() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-100").await;
    for (body, internal) in [("Nota interna", true), ("Respuesta pública", false)] {
        app.incidents()
            .add_comment(req(
                &agent(),
                AddCommentRequest {
                    ticket_id: incident.id.clone(),
                    body: body.into(),
                    internal,
                },
            ))
            .await
            .unwrap();
    }
    assert_code(
        app.incidents()
            .add_comment(req(
                &store,
                AddCommentRequest {
                    ticket_id: incident.id.clone(),
                    body: "x".into(),
                    internal: true,
                },
            ))
            .await,
        Code::PermissionDenied,
    );
    let list = |token: String| {
        let mut client = app.incidents();
        let id = incident.id.clone();
        async move {
            client
                .list_comments(req(
                    &token,
                    ListCommentsRequest {
                        ticket_id: id,
                        page_size: 0,
                        page_token: String::new(),
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .comments
                .into_iter()
                .map(|c| c.body)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(agent()).await, ["Nota interna", "Respuesta pública"]);
    assert_eq!(list(store.clone()).await, ["Respuesta pública"]);
    let requester_events = events(&app, &store, &incident.id).await;
    assert!(requester_events.iter().all(|e| !matches!(
        &e.payload,
        Some(ticket_event::Payload::CommentAdded(c)) if c.comment.as_ref().unwrap().internal
    )));
    assert_eq!(events(&app, &agent(), &incident.id).await.len(), 3);
    assert_eq!(requester_events.len(), 2);
}

#[tokio::test]
async fn free_text_search_ignores_case_and_accents_and_treats_wildcards_as_text() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let mut a = new_incident("GUIA-777");
    a.description = "Cliente dice: descuento del 50% no aplicado".into();
    let mut b = new_incident("DHL_555");
    b.carrier = "dhl".into();
    b.category = "lost".into();
    b.description = "Paquete con 'comillas' y más".into();
    for r in [a, b] {
        app.incidents()
            .create_incident(req(&store, r))
            .await
            .unwrap();
    }
    let token = agent();
    assert_eq!(incident_numbers(&app, &token, "guia").await, [1]);
    assert_eq!(
        incident_numbers(&app, &token, "danado").await,
        [1],
        "category name Paquete dañado"
    );
    assert_eq!(incident_numbers(&app, &token, "EXTRAVIADO").await, [2]);
    assert_eq!(incident_numbers(&app, &token, "dhl express").await, [2]);
    assert_eq!(incident_numbers(&app, &token, "50%").await, [1]);
    assert_eq!(incident_numbers(&app, &token, "%").await, [1]);
    assert_eq!(
        incident_numbers(&app, &token, "_").await,
        [2],
        "only DHL_555 has an underscore"
    );
    assert_eq!(incident_numbers(&app, &token, "'comillas'").await, [2]);
    assert_eq!(incident_numbers(&app, &token, "mas").await, [2]);
    assert!(
        incident_numbers(&app, &token, "nada que ver")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn search_finds_the_assignee() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    app.incidents()
        .assign_incident(req(
            &agent(),
            AssignIncidentRequest {
                id: incident.id,
                assignee_id: "ana".into(),
                assignee_name: "Ana Martínez".into(),
                expected_version: 1,
                assignee_email: String::new(),
            },
        ))
        .await
        .unwrap();
    create(&app, &requester("acme"), "EST-2").await;
    assert_eq!(incident_numbers(&app, &agent(), "martinez").await, [1]);
}

#[tokio::test]
async fn lists_filter_by_stage_and_count_every_stage_for_the_same_filters() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    incident_in(&app, &store, IncidentStatus::NewTicket).await;
    incident_in(&app, &store, IncidentStatus::MissingData).await;
    incident_in(&app, &store, IncidentStatus::InProgress).await;
    incident_in(&app, &store, IncidentStatus::Finalized).await;
    incident_in(&app, &store, IncidentStatus::Cancelled).await;
    let mut other = new_incident("FDX-1");
    other.carrier = "fedex".into();
    app.incidents()
        .create_incident(req(&store, other))
        .await
        .unwrap();

    let response = app
        .incidents()
        .list_incidents(req(
            &agent(),
            ListIncidentsRequest {
                stage: IncidentStage::New as i32,
                carrier: "estafeta".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.incidents.len(), 2);
    assert!(
        response
            .incidents
            .iter()
            .all(|i| i.stage == IncidentStage::New as i32)
    );
    assert_eq!(response.total_size, 2);
    assert_eq!(
        response.stage_counts,
        Some(StageCounts {
            all: 5,
            new: 2,
            in_review: 1,
            resolved: 2
        })
    );

    let by_status = app
        .incidents()
        .list_incidents(req(
            &agent(),
            ListIncidentsRequest {
                statuses: vec![IncidentStatus::Cancelled as i32],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_status.total_size, 1);
    assert_eq!(by_status.stage_counts.unwrap().all, 6);
}

#[tokio::test]
async fn a_read_mask_returns_only_the_visible_columns() {
    let app = TestApp::spawn().await;
    create(&app, &requester("acme"), "EST-1").await;
    let response = app
        .incidents()
        .list_incidents(req(
            &agent(),
            ListIncidentsRequest {
                read_mask: Some(prost_types::FieldMask {
                    paths: vec!["number".into(), "status_label".into()],
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let incident = &response.incidents[0];
    assert_eq!(incident.number, 1);
    assert_eq!(incident.status_label, "Nuevo ticket");
    assert!(!incident.id.is_empty());
    assert!(
        incident.tracking_number.is_empty()
            && incident.description.is_empty()
            && incident.created_at.is_none()
    );
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_same_incident_and_a_changed_payload_is_refused() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let mut request = new_incident("EST-1");
    request.idempotency_key = "order-42".into();
    let first = app
        .incidents()
        .create_incident(req(&store, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let retry = app
        .incidents()
        .create_incident(req(&store, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, retry);
    request.description = "otra cosa".into();
    let status = assert_code(
        app.incidents()
            .create_incident(req(&store, request.clone()))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["idempotency_key"]);
    // Keys are per account: another store may use the same key.
    let other = app
        .incidents()
        .create_incident(req(&requester("globex"), request))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(other.id, first.id);
}

#[tokio::test]
async fn cancelling_keeps_the_reason_and_assigning_bumps_the_version() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let incident = create(&app, &store, "EST-1").await;
    let assigned = app
        .incidents()
        .assign_incident(req(
            &agent(),
            AssignIncidentRequest {
                id: incident.id.clone(),
                assignee_id: "ana".into(),
                assignee_name: String::new(),
                expected_version: 1,
                assignee_email: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            assigned.assignee_id.as_str(),
            assigned.assignee_name.as_str(),
            assigned.version
        ),
        ("ana", "ana", 2)
    );
    let cancelled = app
        .incidents()
        .cancel_incident(req(
            &store,
            CancelIncidentRequest {
                id: incident.id.clone(),
                reason: "Ya llegó".into(),
                expected_version: 0,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, IncidentStatus::Cancelled as i32);
    assert_eq!(
        cancelled.resolution_reason,
        ResolutionReason::Cancelled as i32
    );
    assert_eq!(cancelled.resolution_note, "Ya llegó");
    assert!(cancelled.resolved_at.is_some());
    assert_code(
        app.incidents()
            .cancel_incident(req(
                &store,
                CancelIncidentRequest {
                    id: incident.id,
                    reason: "otra vez".into(),
                    expected_version: 0,
                },
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_code(
        app.incidents()
            .assign_incident(req(
                &store,
                AssignIncidentRequest {
                    id: assigned.id,
                    assignee_id: "x".into(),
                    assignee_name: String::new(),
                    expected_version: 3,
                    assignee_email: String::new(),
                },
            ))
            .await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn catalogs_list_mexican_carriers_and_categories_of_each_kind() {
    let app = TestApp::spawn().await;
    let token = requester("acme");
    let carriers = app
        .incidents()
        .list_carriers(req(&token, ListCarriersRequest {}))
        .await
        .unwrap()
        .into_inner()
        .carriers;
    let names: Vec<_> = carriers.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        "Estafeta",
        "DHL Express",
        "FedEx",
        "Redpack",
        "Paquetexpress",
        "99minutos",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(carriers.iter().all(|c| c.claim_window_days > 0));
    let charges = app
        .incidents()
        .list_categories(req(
            &token,
            ListCategoriesRequest {
                incident_kind: IncidentKind::AdditionalCharge as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .categories;
    let codes: Vec<_> = charges.iter().map(|c| c.code.as_str()).collect();
    for expected in [
        "overweight",
        "extended_zone",
        "dimensional_weight",
        "redelivery",
    ] {
        assert!(codes.contains(&expected));
    }
    assert!(
        charges
            .iter()
            .all(|c| c.incident_kind == IncidentKind::AdditionalCharge as i32)
    );
    let all = app
        .incidents()
        .list_categories(req(&token, ListCategoriesRequest { incident_kind: 0 }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        all.categories
            .iter()
            .any(|c| c.name == "Paquete extraviado")
    );
    assert!(
        all.categories
            .iter()
            .all(|c| c.ticket_type == TicketType::Incident as i32)
    );
}

#[tokio::test]
async fn lists_filter_by_kind_category_assignee_and_creation_time() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let first = create(&app, &store, "EST-1").await;
    let mut charge = new_incident("EST-2");
    charge.kind = IncidentKind::AdditionalCharge as i32;
    charge.category = "overweight".into();
    let second = app
        .incidents()
        .create_incident(req(&store, charge))
        .await
        .unwrap()
        .into_inner();
    app.incidents()
        .assign_incident(req(
            &agent(),
            AssignIncidentRequest {
                id: second.id.clone(),
                assignee_id: "luis".into(),
                assignee_name: String::new(),
                expected_version: 1,
                assignee_email: String::new(),
            },
        ))
        .await
        .unwrap();
    let numbers = |request: ListIncidentsRequest| {
        let mut client = app.incidents();
        async move {
            client
                .list_incidents(req(&agent(), request))
                .await
                .unwrap()
                .into_inner()
                .incidents
                .into_iter()
                .map(|i| i.number)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        numbers(ListIncidentsRequest {
            kinds: vec![IncidentKind::AdditionalCharge as i32],
            ..Default::default()
        })
        .await,
        [2]
    );
    assert_eq!(
        numbers(ListIncidentsRequest {
            category: "damaged".into(),
            ..Default::default()
        })
        .await,
        [1]
    );
    assert_eq!(
        numbers(ListIncidentsRequest {
            assignee_id: "luis".into(),
            ..Default::default()
        })
        .await,
        [2]
    );
    let second_created = second.created_at.unwrap();
    assert_eq!(
        numbers(ListIncidentsRequest {
            created_from: Some(second_created),
            ..Default::default()
        })
        .await,
        [2]
    );
    assert_eq!(
        numbers(ListIncidentsRequest {
            created_to: Some(second_created),
            ..Default::default()
        })
        .await,
        [1]
    );
    assert_eq!(
        numbers(ListIncidentsRequest {
            created_from: first.created_at,
            created_to: Some(second_created),
            ..Default::default()
        })
        .await,
        [1]
    );
}

#[tokio::test]
async fn a_read_mask_may_ask_for_the_estimate_and_sla_columns() {
    let clock = ManualClock::at("2026-11-06T23:00:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    change(&app, &agent(), &incident, IncidentStatus::MissingData)
        .await
        .unwrap();
    clock.set("2026-11-07T05:00:00Z");
    let full = get(&app, &agent(), &incident.id).await;
    let paths = [
        "estimated_resolution_at",
        "sla_remaining_seconds",
        "sla_breached",
        "sla_paused",
    ];
    let masked = app
        .incidents()
        .list_incidents(req(
            &agent(),
            ListIncidentsRequest {
                read_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|p| p.to_string()).collect(),
                }),
                ..Default::default()
            },
        ))
        .await
        .expect("every column the response carries may be asked for")
        .into_inner()
        .incidents
        .remove(0);
    assert_eq!(masked.id, full.id);
    assert_eq!(masked.estimated_resolution_at, full.estimated_resolution_at);
    assert!(masked.estimated_resolution_at.is_some());
    assert_eq!(masked.sla_remaining_seconds, full.sla_remaining_seconds);
    assert!(masked.sla_remaining_seconds > 0);
    assert!(masked.sla_paused && !masked.sla_breached);
    assert!(
        masked.status_label.is_empty() && masked.number == 0,
        "only what was asked for"
    );
}
