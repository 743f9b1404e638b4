//! Page tokens.
use std::collections::HashSet;

use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;

async fn page(app: &TestApp, token: &str, request: ListIncidentsRequest) -> ListIncidentsResponse {
    app.incidents()
        .list_incidents(req(token, request))
        .await
        .unwrap()
        .into_inner()
}

/// The numbers of every incident `request` lists, page by page, as an agent;
/// `between_pages` runs after each page.
async fn every_page<T>(
    app: &TestApp,
    mut request: ListIncidentsRequest,
    between_pages: impl AsyncFn() -> T,
) -> Vec<i64> {
    let mut seen = vec![];
    let mut pages = 0;
    loop {
        count_page(&mut pages);
        let response = page(app, &agent(), request.clone()).await;
        seen.extend(response.incidents.iter().map(|i| i.number));
        between_pages().await;
        if response.next_page_token.is_empty() {
            return seen;
        }
        request.page_token = response.next_page_token;
    }
}

#[tokio::test]
async fn paging_visits_every_incident_once_while_new_ones_are_created() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    for i in 0..25 {
        create(&app, &store, &format!("EST-{i}")).await;
    }
    for order in ["created_at desc", "created_at asc"] {
        let seen = every_page(
            &app,
            ListIncidentsRequest {
                page_size: 7,
                order_by: order.into(),
                ..Default::default()
            },
            // New incidents arrive between pages.
            async || create(&app, &store, "EST-NEW").await,
        )
        .await;
        let unique: HashSet<_> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{order}: no incident twice: {seen:?}"
        );
        if order == "created_at desc" {
            assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());
        } else {
            assert!(seen.starts_with(&(1..=25).collect::<Vec<_>>()), "{seen:?}");
        }
    }
}

#[tokio::test]
async fn paging_inside_a_date_range_returns_exactly_the_range_in_both_orders() {
    let clock = ManualClock::at("2026-11-02T12:00:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let store = requester("acme");
    // Incident n is created at 12:0n, n = 1..=9.
    for n in 1..=9 {
        clock.set(&format!("2026-11-02T12:0{n}:00Z"));
        create(&app, &store, &format!("EST-{n}")).await;
    }
    let at = |minute: i64| prost_types::Timestamp {
        seconds: chrono::DateTime::parse_from_rfc3339("2026-11-02T12:00:00Z")
            .unwrap()
            .timestamp()
            + minute * 60,
        nanos: 0,
    };
    for (order, expected) in [
        ("created_at desc", vec![7, 6, 5, 4, 3]),
        ("created_at asc", vec![3, 4, 5, 6, 7]),
    ] {
        let seen = every_page(
            &app,
            ListIncidentsRequest {
                page_size: 2,
                order_by: order.into(),
                // [12:03, 12:08): incidents 3 to 7.
                created_from: Some(at(3)),
                created_to: Some(at(8)),
                ..Default::default()
            },
            async || {},
        )
        .await;
        assert_eq!(seen, expected, "{order}");
    }
}

#[tokio::test]
async fn page_tokens_are_refused_when_garbled_or_reused_with_other_filters() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    for i in 0..3 {
        create(&app, &store, &format!("EST-{i}")).await;
    }
    let first = page(
        &app,
        &agent(),
        ListIncidentsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert!(!first.next_page_token.is_empty());
    for (token, query) in [
        ("garbage!!".to_owned(), ""),
        ("eyJmIjoiMSJ9".to_owned(), ""),
        (first.next_page_token.clone(), "otra"),
    ] {
        let status = assert_code(
            app.incidents()
                .list_incidents(req(
                    &agent(),
                    ListIncidentsRequest {
                        page_token: token,
                        query: query.into(),
                        ..Default::default()
                    },
                ))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["page_token"]);
    }
}

#[tokio::test]
async fn comments_and_events_page_in_order() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    for i in 0..5 {
        app.incidents()
            .add_comment(req(
                &agent(),
                AddCommentRequest {
                    ticket_id: incident.id.clone(),
                    body: format!("c{i}"),
                    internal: false,
                },
            ))
            .await
            .unwrap();
    }
    let mut bodies = vec![];
    let mut token = String::new();
    let mut pages = 0;
    loop {
        count_page(&mut pages);
        let r = app
            .incidents()
            .list_comments(req(
                &agent(),
                ListCommentsRequest {
                    ticket_id: incident.id.clone(),
                    page_size: 2,
                    page_token: token,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        bodies.extend(r.comments.into_iter().map(|c| c.body));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(bodies, ["c0", "c1", "c2", "c3", "c4"]);

    let mut sequences = vec![];
    let mut token = String::new();
    let mut pages = 0;
    loop {
        count_page(&mut pages);
        let r = app
            .incidents()
            .list_ticket_events(req(
                &agent(),
                ListTicketEventsRequest {
                    ticket_id: incident.id.clone(),
                    after_sequence: 0,
                    page_size: 4,
                    page_token: token,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        sequences.extend(r.events.iter().map(|e| e.sequence));
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(sequences, (1..=6).collect::<Vec<u64>>());
    let after = app
        .incidents()
        .list_ticket_events(req(
            &agent(),
            ListTicketEventsRequest {
                ticket_id: incident.id,
                after_sequence: 4,
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        after.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [5, 6]
    );
}

/// Files `n` incidents of account acme through `clients` concurrent clients.
async fn create_many(app: &TestApp, n: usize, clients: usize) {
    let store = requester("acme");
    let writers = (0..clients).map(|w| {
        let mut client = app.incidents();
        let store = store.clone();
        async move {
            for i in (w..n).step_by(clients) {
                client
                    .create_incident(req(&store, new_incident(&format!("EST-{i}"))))
                    .await
                    .expect("create incident");
            }
        }
    });
    futures::future::join_all(writers).await;
}

#[tokio::test]
async fn with_520_incidents_page_size_0_gives_50_and_larger_sizes_are_clamped_to_500() {
    let app = TestApp::spawn().await;
    create_many(&app, 520, 4).await;
    let sized = |page_size: i32, page_token: String| ListIncidentsRequest {
        page_size,
        page_token,
        ..Default::default()
    };
    let default = page(&app, &agent(), sized(0, String::new())).await;
    assert_eq!(default.incidents.len(), 50, "page_size 0 means 50");
    assert_eq!(default.total_size, 520);
    assert!(!default.next_page_token.is_empty());
    for asked in [500, 501, 10_000, i32::MAX] {
        let first = page(&app, &agent(), sized(asked, String::new())).await;
        assert_eq!(first.incidents.len(), 500, "page_size {asked}");
        assert!(!first.next_page_token.is_empty(), "page_size {asked}");
        let rest = page(&app, &agent(), sized(asked, first.next_page_token)).await;
        assert_eq!(rest.incidents.len(), 20, "page_size {asked}");
        assert!(rest.next_page_token.is_empty(), "page_size {asked}");
        let numbers: HashSet<_> = first
            .incidents
            .iter()
            .chain(&rest.incidents)
            .map(|i| i.number)
            .collect();
        assert_eq!(numbers, (1..=520).collect(), "page_size {asked}");
    }
    let exact = page(&app, &agent(), sized(499, String::new())).await;
    assert_eq!(exact.incidents.len(), 499);
}

#[tokio::test]
async fn with_520_consultations_page_size_0_gives_50_and_larger_sizes_are_clamped_to_500() {
    let app = TestApp::spawn().await;
    let driver = requester("driver-1");
    let writers = (0..4).map(|w| {
        let mut client = app.consultations();
        let driver = driver.clone();
        async move {
            for _ in (w..520).step_by(4) {
                client
                    .create_consultation(req(
                        &driver,
                        CreateConsultationRequest {
                            category: "order_status".into(),
                            description: "¿Dónde va?".into(),
                            ..Default::default()
                        },
                    ))
                    .await
                    .expect("create consultation");
            }
        }
    });
    futures::future::join_all(writers).await;
    let list = |page_size: i32, page_token: String| {
        let mut client = app.consultations();
        async move {
            client
                .list_consultations(req(
                    &agent(),
                    ListConsultationsRequest {
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let default = list(0, String::new()).await;
    assert_eq!(default.consultations.len(), 50, "page_size 0 means 50");
    assert_eq!(default.total_size, 520);
    let first = list(10_000, String::new()).await;
    assert_eq!(first.consultations.len(), 500, "clamped to 500");
    let rest = list(10_000, first.next_page_token).await;
    assert_eq!(rest.consultations.len(), 20);
    assert!(rest.next_page_token.is_empty());
}

#[tokio::test]
async fn incidents_created_in_the_same_instant_page_exactly_once_by_number_in_both_orders() {
    let clock = ManualClock::at("2026-11-02T12:05:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let store = requester("acme");
    // Numbers 1–4 at 12:05, 5–8 at 12:00, 9–12 at 12:10: created_at first, then number.
    for (at, count) in [("12:05", 4), ("12:00", 4), ("12:10", 4)] {
        clock.set(&format!("2026-11-02T{at}:00Z"));
        for _ in 0..count {
            create(&app, &store, "EST-1").await;
        }
    }
    let ascending = vec![5, 6, 7, 8, 1, 2, 3, 4, 9, 10, 11, 12];
    let descending: Vec<i64> = ascending.iter().rev().copied().collect();
    for page_size in [1, 2, 3, 5] {
        for (order, expected) in [
            ("created_at asc", &ascending),
            ("created_at desc", &descending),
        ] {
            let seen = every_page(
                &app,
                ListIncidentsRequest {
                    page_size,
                    order_by: order.into(),
                    ..Default::default()
                },
                async || {},
            )
            .await;
            assert_eq!(&seen, expected, "{order}, pages of {page_size}");
        }
    }
}

#[tokio::test]
async fn consultations_created_in_the_same_instant_page_exactly_once() {
    let clock = ManualClock::at("2026-11-02T12:00:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let driver = requester("driver-1");
    let mut filed = vec![];
    for at in ["12:00", "12:05"] {
        clock.set(&format!("2026-11-02T{at}:00Z"));
        for _ in 0..5 {
            filed.push(consult(&app, &driver, "delivery_not_acknowledged").await);
        }
    }
    let mut seen = vec![];
    let mut token = String::new();
    let mut pages = 0;
    loop {
        count_page(&mut pages);
        let page = app
            .consultations()
            .list_consultations(req(
                &agent(),
                ListConsultationsRequest {
                    page_size: 2,
                    page_token: token,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.consultations);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let numbers: Vec<_> = seen.iter().map(|c| c.number).collect();
    let unique: HashSet<_> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "none twice: {numbers:?}");
    assert_eq!(unique, (1..=10).collect(), "none missing: {numbers:?}");
    let created: Vec<_> = seen
        .iter()
        .map(|c| c.created_at.as_ref().unwrap().seconds)
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );
}

#[tokio::test]
async fn the_query_finds_a_ticket_by_its_number() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let driver = requester("driver-x");
    // Nothing but the numbers holds a digit: trackings, texts and the
    // requesters (their ids and accounts are searched too) are letters.
    for letter in 'A'..='L' {
        create(&app, &store, &format!("GUIA-{letter}")).await;
        app.consultations()
            .create_consultation(req(
                &driver,
                CreateConsultationRequest {
                    category: "delivery_not_acknowledged".into(),
                    description: "El cliente no responde".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    for (query, expected) in [("12", vec![12]), ("1", vec![12, 11, 10, 1]), ("7", vec![7])] {
        let incidents: Vec<_> = page(
            &app,
            &agent(),
            ListIncidentsRequest {
                query: query.into(),
                ..Default::default()
            },
        )
        .await
        .incidents
        .into_iter()
        .map(|i| i.number)
        .collect();
        assert_eq!(incidents, expected, "incidents matching {query:?}");
        let consultations: Vec<_> = search_consultations(&app, &driver, query)
            .await
            .consultations
            .into_iter()
            .map(|c| c.number)
            .collect();
        assert_eq!(consultations, expected, "consultations matching {query:?}");
    }
}

/// Counts a page of a walk, and fails a walk that never ends (a page token
/// that does not advance) instead of hanging.
#[track_caller]
fn count_page(pages: &mut usize) {
    *pages += 1;
    assert!(
        *pages <= 1_000,
        "more than 1,000 pages: the page token does not advance"
    );
}
