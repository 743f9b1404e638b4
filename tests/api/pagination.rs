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
    loop {
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
    loop {
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
    loop {
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
