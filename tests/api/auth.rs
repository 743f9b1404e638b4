//! Authentication over the wire.
use std::time::Duration;
use ticketd::pb::*;

use tonic::{Code, Request};

use crate::helpers::*;

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let expired = {
        let claims = ticketd::auth::Claims::new("ana", "agent", None, 1_000_000);
        ticketd::auth::sign_hs256(SECRET, &claims).unwrap()
    };
    let forged = {
        let claims = ticketd::auth::Claims::new("ana", "admin", None, 4_000_000_000);
        ticketd::auth::sign_hs256(b"not-the-server-secret-not-the-server", &claims).unwrap()
    };
    let bad_role = token("superuser", "ana", None);
    let no_account = token("requester", "ana", None);
    for header in [
        None,
        Some("Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_owned()),
        Some("Bearer ".to_owned()),
        Some("Bearer not.a.jwt".to_owned()),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {forged}")),
        Some(format!("Bearer {bad_role}")),
        Some(format!("Bearer {no_account}")),
    ] {
        let mut request = Request::new(ListIncidentsRequest::default());
        if let Some(h) = &header {
            request
                .metadata_mut()
                .insert("authorization", h.parse().unwrap());
        }
        let result = app.incidents().list_incidents(request).await;
        assert_code(result, Code::Unauthenticated);
    }
}

#[tokio::test]
async fn health_is_served_without_a_token() {
    let app = TestApp::spawn().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    for service in [
        "",
        "ticketd.v1.IncidentService",
        "ticketd.v1.ConsultationService",
        "ticketd.v1.NotificationService",
    ] {
        let response = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            response.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }
}

#[tokio::test]
async fn health_turns_not_serving_at_sigterm_while_streams_drain() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    let app = TestApp::spawn().await;
    let server = crate::process::ServerProcess::start(&app.database_url).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let mut watches = vec![];
    for service in ["", "ticketd.v1.IncidentService"] {
        let mut watch = health
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = watch.message().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::Serving as i32, "{service}");
        watches.push((service, watch));
    }
    server.terminate();
    for (service, mut watch) in watches {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message())
            .await
            .unwrap_or_else(|_| panic!("{service:?}: no health change within 5 s of SIGTERM"))
            .unwrap()
            .unwrap();
        assert_eq!(next.status, ServingStatus::NotServing as i32, "{service:?}");
    }
}

/// The next status a health watch reports (within 10 s).
async fn next_status(watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>) -> i32 {
    tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .expect("a health change within 10 s")
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn health_follows_the_database() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    // Checks every 200 ms (the test settings); two failures in a row flip it.
    let app = TestApp::spawn().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest { service: "".into() })
        .await
        .unwrap()
        .into_inner();
    let status = |s: ServingStatus| s as i32;
    assert_eq!(
        watch.message().await.unwrap().unwrap().status,
        status(ServingStatus::Serving)
    );
    if !postgres_only("health turning NOT_SERVING while the database is away, and back") {
        // The embedded database cannot go away; what SQLite can show is that
        // its checks pass and nothing changes.
        let change = tokio::time::timeout(std::time::Duration::from_secs(1), watch.message()).await;
        assert!(change.is_err(), "health changed on SQLite: {change:?}");
        return;
    }
    app.cut_database(true).await;
    assert_eq!(
        next_status(&mut watch).await,
        status(ServingStatus::NotServing)
    );
    app.cut_database(false).await;
    assert_eq!(
        next_status(&mut watch).await,
        status(ServingStatus::Serving)
    );
    // And the server works again.
    create(&app, &requester("acme"), "EST-BACK").await;
}

#[tokio::test]
async fn only_requesters_file_incidents() {
    let app = TestApp::spawn().await;
    assert_code(
        app.incidents()
            .create_incident(req(&agent(), new_incident("EST-1")))
            .await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn the_server_stops_cleanly_when_asked_and_closes_its_port() {
    let mut app = TestApp::spawn().await;
    create(&app, &requester("acme"), "EST-1").await;
    app.stop().await;
    let result = app
        .incidents()
        .list_incidents(req(&agent(), ListIncidentsRequest::default()))
        .await;
    assert_code(result, Code::Unavailable);
}

/// Calls ListIncidents with `authorization: Bearer <token>` and returns the
/// UNAUTHENTICATED status it must get.
async fn refused(app: &TestApp, token: &str) -> tonic::Status {
    let mut request = Request::new(ListIncidentsRequest::default());
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    assert_code(
        app.incidents().list_incidents(request).await,
        Code::Unauthenticated,
    )
}

fn b64(json: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

#[tokio::test]
async fn token_errors_are_plain_and_name_no_library_internals() {
    let app = TestApp::spawn().await;
    let valid = token("agent", "ana", None);
    let mut parts = valid.split('.');
    let (header, payload) = (parts.next().unwrap(), parts.next().unwrap());
    let hs256 = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64(r#"{"sub":"ana","role":"agent","exp":4000000000}"#);
    for token in [
        // alg none, and an algorithm the server does not use.
        format!("{}.{claims}.", b64(r#"{"alg":"none","typ":"JWT"}"#)),
        format!("{}.{claims}.c2ln", b64(r#"{"alg":"RS256","typ":"JWT"}"#)),
        // A signature that is not base64url.
        format!("{header}.{payload}.t"),
        format!("{header}.{payload}.!!!"),
        // A payload or header that is not JSON, or JSON of the wrong shape.
        format!("{hs256}.{}.c2ln", b64("not json")),
        format!("{}.{claims}.c2ln", b64("[1, 2]")),
        format!(
            "{hs256}.{}.c2ln",
            b64(r#"{"sub":7,"role":"agent","exp":4000000000}"#)
        ),
        // Not three parts.
        "abc.def".to_owned(),
        "a.b.c.d".to_owned(),
    ] {
        let status = refused(&app, &token).await;
        let message = status.message();
        for internal in [
            "variant",
            "Base64",
            "symbol",
            "expected one of",
            "invalid type",
            "at line",
            "column",
            "JSON error",
            "Error",
            "`",
            "HS384",
        ] {
            assert!(
                !message.contains(internal),
                "{token:?}: the message {message:?} names library internals ({internal:?})"
            );
        }
    }
}

#[tokio::test]
async fn claims_with_control_characters_edge_whitespace_or_too_long_are_unauthenticated() {
    use ticketd::auth::{Claims, sign_hs256};
    let app = TestApp::spawn().await;
    let requester_with = |edit: &dyn Fn(&mut Claims)| {
        let mut claims = Claims {
            name: Some("Tienda 42".into()),
            email: Some("tienda@acme.example".into()),
            ..Claims::new("store-acme", "requester", Some("acme"), 4_000_000_000)
        };
        edit(&mut claims);
        sign_hs256(SECRET, &claims).unwrap()
    };
    let mut cases: Vec<(&str, String)> = vec![];
    for bad in [
        "ac\0me",
        "acme\u{1b}[31m",
        "ac\u{7f}me",
        "ac\u{85}me",
        "ac\u{9b}me",
        "ac\nme",
        " acme",
        "acme\n",
        "\u{a0}acme",
        "acme\t",
    ] {
        cases.push(("account", requester_with(&|c| c.account = Some(bad.into()))));
        cases.push(("sub", requester_with(&|c| c.sub = bad.into())));
        cases.push(("name", requester_with(&|c| c.name = Some(bad.into()))));
        cases.push(("email", requester_with(&|c| c.email = Some(bad.into()))));
    }
    cases.push((
        "account",
        requester_with(&|c| c.account = Some("a".repeat(129))),
    ));
    cases.push(("sub", requester_with(&|c| c.sub = "s".repeat(129))));
    cases.push(("name", requester_with(&|c| c.name = Some("n".repeat(257)))));
    cases.push((
        "email",
        requester_with(&|c| c.email = Some("e".repeat(255))),
    ));
    for (claim, token) in &cases {
        let create = app
            .incidents()
            .create_incident(req(token, new_incident("EST-1")))
            .await;
        let status = assert_code(create, Code::Unauthenticated);
        assert!(
            status.message().contains(&format!("the {claim} claim")),
            "{claim}: {:?}",
            status.message()
        );
        refused(&app, token).await;
    }
    // Nothing of theirs was stored.
    assert_eq!(incident_count(&app).await, 0);

    // Inner spaces, accents and the longest lengths are fine, and kept as sent.
    let fine = requester_with(&|c| {
        c.account = Some("á".repeat(128));
        c.name = Some(format!("Ana López {}", "ñ".repeat(246)));
    });
    let incident = app
        .incidents()
        .create_incident(req(&fine, new_incident("EST-2")))
        .await
        .expect("a token with clean claims at the limits");
    let requester = incident.into_inner().requester.expect("requester");
    assert_eq!(requester.name, format!("Ana López {}", "ñ".repeat(246)));
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An agent token whose times `edit` sets.
fn agent_token_with(edit: impl FnOnce(&mut ticketd::auth::Claims)) -> String {
    let mut claims = ticketd::auth::Claims::new("ana", "agent", None, now() + 3600);
    edit(&mut claims);
    ticketd::auth::sign_hs256(SECRET, &claims).unwrap()
}

async fn accepted(channel: &tonic::transport::Channel, token: &str) -> Result<(), tonic::Status> {
    incident_service_client::IncidentServiceClient::new(channel.clone())
        .list_incidents(req(token, ListIncidentsRequest::default()))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn tokens_not_yet_valid_or_issued_in_the_future_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let not_yet = agent_token_with(|c| c.nbf = Some(now() + 3600));
    let status = refused(&app, &not_yet).await;
    assert!(status.message().contains("nbf"), "{status:?}");
    let from_the_future = agent_token_with(|c| c.iat = now() + 3600);
    let status = refused(&app, &from_the_future).await;
    assert!(status.message().contains("iat"), "{status:?}");
    // Within the default leeway (30 s) of a clock a little ahead of ours, and
    // a token valid from a moment ago, all pass.
    for token in [
        agent_token_with(|c| {
            c.nbf = Some(now() + 10);
            c.iat = now() + 10;
        }),
        agent_token_with(|c| c.exp = now() - 10),
        agent_token_with(|c| {
            c.nbf = Some(now() - 60);
            c.iat = now() - 60;
        }),
    ] {
        accepted(&app.channel, &token)
            .await
            .expect("within the leeway");
    }
}

#[tokio::test]
async fn the_clock_leeway_for_exp_nbf_and_iat_is_a_setting() {
    let strict = TestApp::spawn_with(|s| {
        s.verifier = ticketd::auth::Verifier::hs256(SECRET).with_leeway(Duration::ZERO)
    })
    .await;
    for token in [
        agent_token_with(|c| c.nbf = Some(now() + 10)),
        agent_token_with(|c| c.iat = now() + 10),
        agent_token_with(|c| c.exp = now() - 10),
    ] {
        refused(&strict, &token).await;
    }
    // The flag (here its environment variable) reaches a server process.
    let lenient = crate::process::ServerProcess::start_with_env(
        &strict.database_url,
        &[("TICKETD_JWT_LEEWAY", "2m")],
    )
    .await;
    let late = agent_token_with(|c| c.exp = now() - 90);
    accepted(&lenient.channel, &late)
        .await
        .expect("a token 90 s past exp, with a leeway of 2 minutes");
    let later = agent_token_with(|c| c.exp = now() - 150);
    assert_code(
        accepted(&lenient.channel, &later).await,
        Code::Unauthenticated,
    );
}
