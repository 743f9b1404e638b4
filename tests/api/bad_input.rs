//! Bad input gets INVALID_ARGUMENT naming the field (or NOT_FOUND), never
//! INTERNAL, never a panic.
use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn bad_create_requests_name_the_offending_field() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let base = new_incident("EST-1");
    let long = "x".repeat(10_001);
    type Edit = Box<dyn Fn(&mut CreateIncidentRequest)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("no kind", Box::new(|r| r.kind = 0), "kind"),
        ("unknown kind", Box::new(|r| r.kind = 99), "kind"),
        (
            "empty tracking",
            Box::new(|r| r.tracking_number = "  ".into()),
            "tracking_number",
        ),
        (
            "short tracking",
            Box::new(|r| r.tracking_number = "AB".into()),
            "tracking_number",
        ),
        (
            "tracking with spaces",
            Box::new(|r| r.tracking_number = "EST 123".into()),
            "tracking_number",
        ),
        (
            "oversized tracking",
            Box::new(|r| r.tracking_number = "A".repeat(65)),
            "tracking_number",
        ),
        (
            "empty carrier",
            Box::new(|r| r.carrier = String::new()),
            "carrier",
        ),
        (
            "unknown carrier",
            Box::new(|r| r.carrier = "pony-express".into()),
            "carrier",
        ),
        (
            "unknown category",
            Box::new(|r| r.category = "aliens".into()),
            "category",
        ),
        (
            "category of the other kind",
            Box::new(|r| r.category = "overweight".into()),
            "category",
        ),
        (
            "empty description",
            Box::new(|r| r.description = String::new()),
            "description",
        ),
        (
            "oversized description",
            Box::new(move |r| r.description = long.clone()),
            "description",
        ),
        (
            "control characters",
            Box::new(|r| r.description = "a\u{0}b".into()),
            "description",
        ),
        (
            "negative amount",
            Box::new(|r| {
                r.claimed_amount = Some(Money {
                    amount: "-1".into(),
                    currency: "MXN".into(),
                })
            }),
            "claimed_amount.amount",
        ),
        (
            "three decimals",
            Box::new(|r| {
                r.claimed_amount = Some(Money {
                    amount: "1.234".into(),
                    currency: "MXN".into(),
                })
            }),
            "claimed_amount.amount",
        ),
        (
            "bad currency",
            Box::new(|r| {
                r.claimed_amount = Some(Money {
                    amount: "10".into(),
                    currency: "pesos".into(),
                })
            }),
            "claimed_amount.currency",
        ),
        (
            "bad timestamp",
            Box::new(|r| {
                r.shipped_at = Some(prost_types::Timestamp {
                    seconds: -5,
                    nanos: 0,
                })
            }),
            "shipped_at",
        ),
        (
            "future shipping",
            Box::new(|r| {
                r.shipped_at = Some(prost_types::Timestamp {
                    seconds: 4_000_000_000,
                    nanos: 0,
                })
            }),
            "shipped_at",
        ),
        (
            "oversized key",
            Box::new(|r| r.idempotency_key = "k".repeat(129)),
            "idempotency_key",
        ),
    ];
    for (name, edit, field) in cases {
        let mut request = base.clone();
        edit(&mut request);
        let status = assert_code(
            app.incidents().create_incident(req(&store, request)).await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&status),
            [field],
            "{name}: {}",
            status.message()
        );
    }
    let mut everything_wrong = base.clone();
    everything_wrong.kind = 0;
    everything_wrong.description = String::new();
    let status = assert_code(
        app.incidents()
            .create_incident(req(&store, everything_wrong))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        ["kind", "description"],
        "all violations are reported at once"
    );
    assert_eq!(incident_count(&app).await, 0, "nothing was created");
}

#[tokio::test]
async fn bad_list_requests_name_the_offending_field() {
    let app = TestApp::spawn().await;
    let cases: Vec<(ListIncidentsRequest, &str)> = vec![
        (
            ListIncidentsRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            ListIncidentsRequest {
                page_token: "%%%".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            ListIncidentsRequest {
                stage: 42,
                ..Default::default()
            },
            "stage",
        ),
        (
            ListIncidentsRequest {
                statuses: vec![0],
                ..Default::default()
            },
            "statuses[0]",
        ),
        (
            ListIncidentsRequest {
                statuses: vec![1, 77],
                ..Default::default()
            },
            "statuses[1]",
        ),
        (
            ListIncidentsRequest {
                kinds: vec![9],
                ..Default::default()
            },
            "kinds[0]",
        ),
        (
            ListIncidentsRequest {
                carrier: "nope".into(),
                ..Default::default()
            },
            "carrier",
        ),
        (
            ListIncidentsRequest {
                category: "nope".into(),
                ..Default::default()
            },
            "category",
        ),
        (
            ListIncidentsRequest {
                query: "q".repeat(201),
                ..Default::default()
            },
            "query",
        ),
        (
            ListIncidentsRequest {
                order_by: "tracking_number".into(),
                ..Default::default()
            },
            "order_by",
        ),
        (
            ListIncidentsRequest {
                created_from: Some(prost_types::Timestamp {
                    seconds: 2_000_000_000,
                    nanos: 0,
                }),
                created_to: Some(prost_types::Timestamp {
                    seconds: 1_000_000_000,
                    nanos: 0,
                }),
                ..Default::default()
            },
            "created_from",
        ),
        (
            ListIncidentsRequest {
                read_mask: Some(prost_types::FieldMask {
                    paths: vec!["password".into()],
                }),
                ..Default::default()
            },
            "read_mask",
        ),
    ];
    for (request, field) in cases {
        let status = assert_code(
            app.incidents()
                .list_incidents(req(&agent(), request.clone()))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), [field], "{request:?}");
    }
    // A page size above the maximum is clamped, not refused.
    app.incidents()
        .list_incidents(req(
            &agent(),
            ListIncidentsRequest {
                page_size: 100_000,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_ids_versions_and_statuses_are_refused_clearly() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let mut c = app.incidents();
    let change = |id: &str, status: i32, expected_version: i64| ChangeIncidentStatusRequest {
        id: id.into(),
        status,
        expected_version,
        reason: 0,
        comment: String::new(),
    };
    let cases = [
        (change("", 3, 1), "id"),
        (change("not-a-uuid", 3, 1), "id"),
        (change(&incident.id, 0, 1), "status"),
        (change(&incident.id, 99, 1), "status"),
        (change(&incident.id, 3, 0), "expected_version"),
        (change(&incident.id, 3, -4), "expected_version"),
    ];
    for (request, field) in cases {
        let status = assert_code(
            c.change_incident_status(req(&agent(), request)).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), [field]);
    }
    let mut reasoned = change(&incident.id, 3, 1);
    reasoned.reason = 1234;
    let status = assert_code(
        c.change_incident_status(req(&agent(), reasoned)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["reason"]);
    assert_code(
        c.change_incident_status(req(
            &agent(),
            change(&uuid::Uuid::now_v7().to_string(), 3, 1),
        ))
        .await,
        Code::NotFound,
    );
    for (lookup, field) in [
        (None, "lookup"),
        (Some(get_incident_request::Lookup::Number(0)), "number"),
        (Some(get_incident_request::Lookup::Number(-1)), "number"),
        (Some(get_incident_request::Lookup::Id("x".into())), "id"),
    ] {
        let status = assert_code(
            c.get_incident(req(&agent(), GetIncidentRequest { lookup }))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), [field]);
    }
    let mut consultations =
        ticketd::pb::consultation_service_client::ConsultationServiceClient::new(
            app.channel.clone(),
        );
    for (lookup, field) in [
        (None, "lookup"),
        (Some(get_consultation_request::Lookup::Number(0)), "number"),
        (Some(get_consultation_request::Lookup::Id("x".into())), "id"),
    ] {
        let status = assert_code(
            consultations
                .get_consultation(req(&agent(), GetConsultationRequest { lookup }))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), [field]);
    }
    assert_code(
        c.get_incident(req(
            &agent(),
            GetIncidentRequest {
                lookup: Some(get_incident_request::Lookup::Number(999)),
            },
        ))
        .await,
        Code::NotFound,
    );
    let status = assert_code(
        c.add_comment(req(
            &agent(),
            AddCommentRequest {
                ticket_id: incident.id.clone(),
                body: " ".into(),
                internal: false,
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["body"]);
    let status = assert_code(
        c.cancel_incident(req(
            &agent(),
            CancelIncidentRequest {
                id: incident.id.clone(),
                reason: String::new(),
                expected_version: 0,
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["reason"]);
    let status = assert_code(
        c.list_comments(req(
            &agent(),
            ListCommentsRequest {
                ticket_id: incident.id.clone(),
                page_size: -3,
                page_token: String::new(),
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["page_size"]);
    // The incident is untouched.
    assert_eq!(get(&app, &agent(), &incident.id).await.version, 1);
}

#[tokio::test]
async fn oversized_messages_are_refused_before_they_are_read() {
    let app = TestApp::spawn().await;
    let mut request = new_incident("EST-1");
    request.description = "x".repeat(2 * 1024 * 1024);
    let status = app
        .incidents()
        .create_incident(req(&requester("acme"), request))
        .await
        .unwrap_err();
    // tonic reports an over-limit message as OUT_OF_RANGE.
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
}
