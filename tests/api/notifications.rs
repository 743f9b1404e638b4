//! Outbound notifications: webhook endpoints, the outbox and its dispatcher,
//! against a real HTTP receiver on loopback (an axum server inside the test
//! that records every request and answers as the test tells it), over plain
//! HTTP or over TLS with a certificate from a CA made by the test.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use ticketd::config::NotifyArgs;
use ticketd::pb::webhook_service_client::WebhookServiceClient;
use ticketd::pb::*;
use tokio_rustls::rustls::{self, ServerConfig};
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::*;
use crate::process::ServerProcess;

const SECRET: &str = "whsec_test_0123456789abcdef";

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 200.
    Accept,
    /// This status, every time.
    Fail(u16),
    /// 500 the first time it sees a delivery id, 200 after.
    FailFirstAttempt,
    /// Never answers.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    signature: String,
    body: serde_json::Value,
    raw: Vec<u8>,
    /// The HTTP status it was answered with (0: never answered).
    answered: u16,
}

#[derive(Debug)]
struct Inbox {
    mode: Mode,
    /// The next this many requests get 503, whatever the mode.
    fail_next: usize,
    requests: Vec<Received>,
}

/// A webhook receiver on 127.0.0.1:0.
#[derive(Clone)]
struct Receiver {
    url: String,
    inbox: Arc<Mutex<Inbox>>,
    /// TCP connections accepted (over TLS: before the handshake).
    connections: Arc<AtomicUsize>,
}

impl Receiver {
    /// Over plain HTTP.
    async fn start(mode: Mode) -> Self {
        Self::serve(mode, None).await
    }

    /// Over TLS with `tls`'s certificate (at `https://127.0.0.1:port/hooks`).
    async fn start_tls(mode: Mode, tls: Arc<ServerConfig>) -> Self {
        Self::serve(mode, Some(tls)).await
    }

    async fn serve(mode: Mode, tls: Option<Arc<ServerConfig>>) -> Self {
        let inbox = Arc::new(Mutex::new(Inbox {
            mode,
            fail_next: 0,
            requests: vec![],
        }));
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(inbox.clone());
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let listener = Counting {
            tcp,
            connections: connections.clone(),
        };
        let scheme = match tls {
            None => {
                tokio::spawn(async move { axum::serve(listener, app).await });
                "http"
            }
            Some(config) => {
                let listener = TlsListener {
                    inner: listener,
                    acceptor: tokio_rustls::TlsAcceptor::from(config),
                };
                tokio::spawn(async move { axum::serve(listener, app).await });
                "https"
            }
        };
        Self {
            url: format!("{scheme}://{addr}/hooks"),
            inbox,
            connections,
        }
    }

    fn set_mode(&self, mode: Mode) {
        self.inbox.lock().unwrap().mode = mode;
    }

    fn fail_next(&self, n: usize) {
        self.inbox.lock().unwrap().fail_next = n;
    }

    fn requests(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().requests.clone()
    }

    /// The requests answered 200, in arrival order.
    fn accepted(&self) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.answered == 200)
            .collect()
    }

    /// Waits until `n` requests have been accepted; returns them.
    async fn wait_accepted(&self, n: usize, what: &str) -> Vec<Received> {
        wait_for(what, Duration::from_secs(20), || async {
            let accepted = self.accepted();
            (accepted.len() >= n).then_some(accepted)
        })
        .await
    }
}

/// A TCP listener that counts what it accepts.
struct Counting {
    tcp: tokio::net::TcpListener,
    connections: Arc<AtomicUsize>,
}

impl axum::serve::Listener for Counting {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let accepted = axum::serve::Listener::accept(&mut self.tcp).await;
        self.connections.fetch_add(1, Ordering::SeqCst);
        accepted
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// TLS over `Counting`: a connection whose handshake fails (the client does
/// not trust the certificate) never reaches the HTTP server.
struct TlsListener {
    inner: Counting,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (tcp, addr) = self.inner.accept().await;
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A certificate authority made for one test.
struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        Self {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    /// Its certificate as a PEM file, for `--webhook-ca-file`.
    fn pem_file(&self) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, self.issuer.pem().as_bytes()).unwrap();
        file
    }

    /// A TLS server with a certificate it issued for 127.0.0.1 and localhost.
    fn server(&self) -> Arc<ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key.into())
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let delivery = header("ticketd-delivery");
    let status = {
        let mut inbox = inbox.lock().unwrap();
        let seen = inbox.requests.iter().any(|r| r.delivery == delivery);
        let status = if inbox.fail_next > 0 {
            inbox.fail_next -= 1;
            503
        } else {
            match inbox.mode {
                Mode::Accept => 200,
                Mode::Fail(code) => code,
                Mode::FailFirstAttempt if seen => 200,
                Mode::FailFirstAttempt => 500,
                Mode::Hang => 0,
            }
        };
        inbox.requests.push(Received {
            delivery,
            signature: header("ticketd-signature"),
            body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            raw: body.to_vec(),
            answered: status,
        });
        status
    };
    if status == 0 {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(status).unwrap()
}

/// Quick retries for tests: 50 ms doubling, an hour's horizon.
fn fast(s: &mut ticketd::app::Settings) {
    s.notify = NotifyArgs {
        retry_base: Duration::from_millis(50),
        retry_horizon: Duration::from_secs(3600),
        timeout: Duration::from_secs(2),
        poll: Duration::from_millis(100),
        ..Default::default()
    };
}

fn admin() -> String {
    token("admin", "root", None)
}

fn webhooks(channel: &Channel) -> WebhookServiceClient<Channel> {
    WebhookServiceClient::new(channel.clone())
}

async fn register(channel: &Channel, account: &str, url: &str) -> WebhookEndpoint {
    webhooks(channel)
        .create_webhook_endpoint(req(
            &admin(),
            CreateWebhookEndpointRequest {
                account: account.into(),
                url: url.into(),
                secret: SECRET.into(),
                event_types: vec![],
            },
        ))
        .await
        .expect("register the endpoint")
        .into_inner()
}

/// Every delivery `token` may list with `filter` (all pages).
async fn deliveries(
    channel: &Channel,
    token: &str,
    filter: ListDeliveriesRequest,
) -> Result<Vec<Delivery>, tonic::Status> {
    let mut all = vec![];
    let mut page_token = String::new();
    for _ in 0..100 {
        let page = webhooks(channel)
            .list_deliveries(req(
                token,
                ListDeliveriesRequest {
                    page_size: 7,
                    page_token: page_token.clone(),
                    ..filter.clone()
                },
            ))
            .await?
            .into_inner();
        all.extend(page.deliveries);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
    panic!("more than 100 pages of deliveries");
}

/// Waits until every delivery of `account` is in `state`, and there are `n`.
async fn wait_all(
    channel: &Channel,
    account: &str,
    n: usize,
    state: DeliveryState,
) -> Vec<Delivery> {
    wait_for(
        &format!("{n} deliveries of {account} in {state:?}"),
        Duration::from_secs(20),
        || async {
            let all = deliveries(
                channel,
                &admin(),
                ListDeliveriesRequest {
                    account: account.into(),
                    ..Default::default()
                },
            )
            .await
            .expect("list deliveries");
            (all.len() == n && all.iter().all(|d| d.state == state as i32)).then_some(all)
        },
    )
    .await
}

/// Checks a Ticketd-Signature header against the raw body, with an HMAC of
/// the test's own (the `hmac` crate, not ticketd's function).
#[track_caller]
fn assert_signed(received: &Received, secret: &str) {
    let (t, v1) = received
        .signature
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature {:?}", received.signature));
    let t: i64 = t.parse().expect("t is Unix seconds");
    let now = chrono::Utc::now().timestamp();
    assert!((now - t).abs() < 120, "signed at {t}, now {now}");
    let mut mac = Hmac::<sha2_011::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&received.raw);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature verifies with the secret");
    let mut forged = Hmac::<sha2_011::Sha256>::new_from_slice(b"another secret").unwrap();
    forged.update(format!("{t}.").as_bytes());
    forged.update(&received.raw);
    assert_ne!(
        v1,
        forged
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
}

fn event_type(r: &Received) -> &str {
    r.body["type"].as_str().unwrap_or_default()
}

fn ticket_of(r: &Received) -> &str {
    r.body["ticket"]["id"].as_str().unwrap_or_default()
}

fn sequence_of(r: &Received) -> i64 {
    r.body["sequence"].as_i64().unwrap_or_default()
}

async fn comment(app: &TestApp, token: &str, ticket: &str, body: &str, internal: bool) {
    add_comment(app, token, (TicketType::Incident, ticket), body, internal)
        .await
        .expect("comment");
}

#[tokio::test]
async fn webhooks_carry_each_event_signed_with_the_endpoint_secret_and_the_ticket_after_it() {
    let app = TestApp::spawn_with(fast).await;
    let receiver = Receiver::start(Mode::Accept).await;
    let endpoint = register(&app.channel, "acme", &receiver.url).await;
    assert!(endpoint.secret == SECRET && !endpoint.paused);
    let store = requester("acme");
    let created = create(&app, &store, "EST-1").await;
    let waiting = change(&app, &agent(), &created, IncidentStatus::MissingData)
        .await
        .unwrap();
    let closes_at = waiting
        .missing_data_closes_at
        .expect("an incident waiting for data says when it closes by itself");
    // Another account's ticket goes to its own endpoints, not acme's.
    create(&app, &requester("globex"), "EST-2").await;
    comment(&app, &agent(), &created.id, "Seguimos en ello", false).await;

    let got = receiver.wait_accepted(4, "4 deliveries").await;
    let types: Vec<&str> = got.iter().map(event_type).collect();
    assert_eq!(
        types,
        [
            "created",
            "comment_added",
            "status_changed",
            "comment_added"
        ],
        "the missing-data request's comment, then the status change"
    );
    let sequences: Vec<i64> = got.iter().map(sequence_of).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    for r in &got {
        assert_signed(r, SECRET);
        assert_eq!(
            r.body["id"],
            r.delivery.as_str(),
            "header and body name the delivery"
        );
        assert_eq!(ticket_of(r), created.id);
        assert_eq!(r.body["ticket"]["account"], "acme");
        assert_eq!(r.body["ticket"]["number"], created.number);
        assert_eq!(r.body["ticket"]["type"], "INCIDENT");
    }
    let status = &got[2].body;
    assert_eq!(status["event"]["to"], "MISSING_DATA");
    assert_eq!(status["ticket"]["status"], "MISSING_DATA");
    let closes: chrono::DateTime<chrono::Utc> = status["ticket"]["missing_data_closes_at"]
        .as_str()
        .expect("the document says when it closes by itself")
        .parse()
        .unwrap();
    assert_eq!(closes.timestamp(), closes_at.seconds);
    assert_eq!(status["actor"]["role"], "agent");
    assert_eq!(
        status["notify"],
        serde_json::json!([{"relation": "requester", "id": "store-acme", "name": "store-acme name"}]),
        "the requester is told about a status change"
    );
    assert_eq!(got[0].body["ticket"]["status"], "NEW_TICKET");
    assert!(got[0].body["ticket"]["missing_data_closes_at"].is_null());
    // The deliveries are listed as delivered, once each.
    let listed = wait_all(&app.channel, "acme", 4, DeliveryState::Delivered).await;
    for d in &listed {
        assert_eq!(d.attempts, 1);
        assert_eq!(d.endpoint_id, endpoint.id);
        assert!(d.last_error.is_empty() && d.delivered_at.is_some());
    }
    let ids: HashSet<&str> = listed.iter().map(|d| d.id.as_str()).collect();
    let sent: HashSet<&str> = got.iter().map(|r| r.delivery.as_str()).collect();
    assert_eq!(ids, sent);
    // A requester's answer returns it to work: no closing instant any more.
    comment(&app, &store, &created.id, "Adjunto la foto", false).await;
    let back = get(&app, &agent(), &created.id).await;
    assert_eq!(back.status, IncidentStatus::NewTicket as i32);
    assert!(back.missing_data_closes_at.is_none());
}

#[tokio::test]
async fn one_tickets_deliveries_arrive_in_sequence_order_even_when_attempts_fail() {
    let app = TestApp::spawn_with(fast).await;
    let receiver = Receiver::start(Mode::FailFirstAttempt).await;
    register(&app.channel, "acme", &receiver.url).await;
    let store = requester("acme");
    let (a, b) = (
        create(&app, &store, "EST-A").await,
        create(&app, &store, "EST-B").await,
    );
    for n in 0..4 {
        comment(&app, &agent(), &a.id, &format!("a{n}"), false).await;
        comment(&app, &agent(), &b.id, &format!("b{n}"), false).await;
    }
    let accepted = receiver.wait_accepted(10, "10 deliveries").await;
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        20,
        "each delivery failed once, then went through"
    );
    for ticket in [&a.id, &b.id] {
        // Every attempt (failed ones too) of one ticket is in sequence order:
        // nothing later is tried before what comes before it has arrived.
        let attempts: Vec<i64> = requests
            .iter()
            .filter(|r| ticket_of(r) == ticket.as_str())
            .map(sequence_of)
            .collect();
        assert!(attempts.windows(2).all(|w| w[0] <= w[1]), "{attempts:?}");
        let arrived: Vec<i64> = accepted
            .iter()
            .filter(|r| ticket_of(r) == ticket.as_str())
            .map(sequence_of)
            .collect();
        assert_eq!(arrived.len(), 5);
        assert!(arrived.windows(2).all(|w| w[0] < w[1]), "{arrived:?}");
    }
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_then_recovers_gets_every_delivery_exactly_once() {
    let app = TestApp::spawn_with(fast).await;
    let receiver = Receiver::start(Mode::Accept).await;
    receiver.fail_next(3);
    register(&app.channel, "acme", &receiver.url).await;
    let store = requester("acme");
    let first = create(&app, &store, "EST-1").await;
    let second = create(&app, &store, "EST-2").await;
    comment(&app, &store, &first.id, "¿Alguna novedad?", false).await;
    change(&app, &agent(), &second, IncidentStatus::InProgress)
        .await
        .unwrap();
    let listed = wait_all(&app.channel, "acme", 4, DeliveryState::Delivered).await;
    let requests = receiver.requests();
    assert_eq!(
        requests.iter().filter(|r| r.answered == 503).count(),
        3,
        "three failures"
    );
    let mut accepted: HashMap<String, usize> = HashMap::new();
    for r in requests.iter().filter(|r| r.answered == 200) {
        *accepted.entry(r.delivery.clone()).or_default() += 1;
    }
    let listed_ids: HashSet<String> = listed.iter().map(|d| d.id.clone()).collect();
    assert_eq!(
        accepted.keys().cloned().collect::<HashSet<_>>(),
        listed_ids,
        "every delivery arrived"
    );
    assert!(
        accepted.values().all(|n| *n == 1),
        "each exactly once: {accepted:?}"
    );
    let attempts: i64 = listed.iter().map(|d| d.attempts).sum();
    assert_eq!(attempts, 4 + 3, "attempts count the failures");
    // Who may list them: the account's requesters, admins; not another
    // account (an empty list), not agents.
    let own = deliveries(&app.channel, &store, ListDeliveriesRequest::default())
        .await
        .unwrap();
    assert_eq!(own.len(), 4);
    for filter in [
        ListDeliveriesRequest::default(),
        ListDeliveriesRequest {
            account: "acme".into(),
            ..Default::default()
        },
    ] {
        let foreign = deliveries(&app.channel, &requester("globex"), filter)
            .await
            .unwrap();
        assert!(foreign.is_empty());
    }
    let refused = deliveries(&app.channel, &agent(), ListDeliveriesRequest::default()).await;
    assert_code(refused, Code::PermissionDenied);
    let only_first = deliveries(
        &app.channel,
        &admin(),
        ListDeliveriesRequest {
            ticket_id: first.id.clone(),
            states: vec![DeliveryState::Delivered as i32],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(only_first.len(), 2, "created and the requester's comment");
}

#[tokio::test]
async fn a_receiver_down_past_the_horizon_leaves_dead_letters_that_can_be_retried() {
    let app = TestApp::spawn_with(|s| {
        fast(s);
        s.notify.retry_horizon = Duration::from_millis(800);
    })
    .await;
    let receiver = Receiver::start(Mode::Fail(503)).await;
    register(&app.channel, "acme", &receiver.url).await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let dead = wait_all(&app.channel, "acme", 1, DeliveryState::Dead)
        .await
        .remove(0);
    assert!(dead.attempts >= 2, "retried before giving up: {dead:?}");
    assert!(dead.last_error.contains("503"), "{}", dead.last_error);
    assert_eq!(dead.ticket_id, incident.id);
    assert_eq!(dead.event_type, "created");
    let tried = receiver.requests().len();
    assert_eq!(tried as i64, dead.attempts);

    // Only admins retry, only dead deliveries, only existing ones.
    let mut client = webhooks(&app.channel);
    let retry = |token: String, id: &str| {
        let mut client = client.clone();
        let id = id.to_owned();
        async move {
            client
                .retry_delivery(req(&token, RetryDeliveryRequest { id }))
                .await
                .map(|r| r.into_inner())
        }
    };
    assert_code(retry(agent(), &dead.id).await, Code::PermissionDenied);
    assert_code(
        retry(requester("acme"), &dead.id).await,
        Code::PermissionDenied,
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_code(retry(admin(), &unknown).await, Code::NotFound);
    let bad = assert_code(retry(admin(), "nope").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["id"]);

    receiver.set_mode(Mode::Accept);
    let retried = retry(admin(), &dead.id).await.expect("retry");
    assert_eq!(retried.state, DeliveryState::Pending as i32);
    let delivered = wait_all(&app.channel, "acme", 1, DeliveryState::Delivered)
        .await
        .remove(0);
    assert_eq!(delivered.id, dead.id, "the same delivery id");
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].delivery, dead.id);
    assert_signed(&accepted[0], SECRET);
    assert_code(retry(admin(), &dead.id).await, Code::FailedPrecondition);
    // Nothing more is sent for it.
    let listed = client
        .list_deliveries(req(&admin(), ListDeliveriesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.deliveries.len(), 1);
}

#[tokio::test]
async fn internal_notes_never_reach_a_webhook() {
    let app = TestApp::spawn_with(fast).await;
    let receiver = Receiver::start(Mode::Accept).await;
    register(&app.channel, "acme", &receiver.url).await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    comment(
        &app,
        &agent(),
        &incident.id,
        "NOTA-INTERNA: cliente difícil",
        true,
    )
    .await;
    comment(
        &app,
        &agent(),
        &incident.id,
        "Ya lo reportamos a Estafeta",
        false,
    )
    .await;
    let got = receiver
        .wait_accepted(2, "created and the public comment")
        .await;
    // The public comment came after the note: had the note been queued, its
    // delivery (earlier in sequence) would have come first.
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].body["event"]["body"], "Ya lo reportamos a Estafeta",
        "{:?}",
        got[1].body
    );
    for r in receiver.requests() {
        let text = String::from_utf8_lossy(&r.raw);
        assert!(
            !text.contains("NOTA-INTERNA"),
            "an internal note was sent: {text}"
        );
    }
    let listed = wait_all(&app.channel, "acme", 2, DeliveryState::Delivered).await;
    assert!(
        listed
            .iter()
            .all(|d| d.event_type != "comment_added" || d.sequence > 2)
    );
}

#[tokio::test]
async fn simple_consultations_send_nothing() {
    let app = TestApp::spawn_with(fast).await;
    let receiver = Receiver::start(Mode::Accept).await;
    register(&app.channel, "chofer-9", &receiver.url).await;
    let driver = requester("chofer-9");
    let simple = consult(&app, &driver, "remove_orders_from_route").await;
    assert_eq!(simple.number, 0, "a SIMPLE consultation has no number");
    add_comment(
        &app,
        &agent(),
        (TicketType::Consultation, &simple.id),
        "Listo",
        false,
    )
    .await
    .unwrap();
    let ticketed = consult(&app, &driver, "delivery_not_acknowledged").await;
    let got = receiver.wait_accepted(1, "the ticketed consultation").await;
    assert_eq!(ticket_of(&got[0]), ticketed.id);
    assert_eq!(got[0].body["ticket"]["type"], "CONSULTATION");
    assert_eq!(got[0].body["ticket"]["status"], "RECEIVED");
    let all = wait_all(&app.channel, "chofer-9", 1, DeliveryState::Delivered).await;
    assert_eq!(all[0].ticket_id, ticketed.id);
    assert!(
        receiver
            .requests()
            .iter()
            .all(|r| ticket_of(r) != simple.id)
    );
}

#[tokio::test]
async fn a_paused_endpoint_holds_its_deliveries_in_order_until_resumed() {
    let app = TestApp::spawn_with(fast).await;
    let receiver = Receiver::start(Mode::Accept).await;
    let endpoint = register(&app.channel, "acme", &receiver.url).await;
    let mut client = webhooks(&app.channel);
    let paused = client
        .pause_webhook_endpoint(req(
            &admin(),
            PauseWebhookEndpointRequest {
                id: endpoint.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(paused.paused && paused.secret.is_empty());
    let incident = create(&app, &requester("acme"), "EST-1").await;
    comment(&app, &agent(), &incident.id, "uno", false).await;
    comment(&app, &agent(), &incident.id, "dos", false).await;
    wait_all(&app.channel, "acme", 3, DeliveryState::Paused).await;
    // Several dispatcher polls (100 ms) pass: nothing is sent while paused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.requests().is_empty());
    client
        .resume_webhook_endpoint(req(
            &admin(),
            ResumeWebhookEndpointRequest {
                id: endpoint.id.clone(),
            },
        ))
        .await
        .unwrap();
    let got = receiver.wait_accepted(3, "the held deliveries").await;
    let sequences: Vec<i64> = got.iter().map(sequence_of).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    wait_all(&app.channel, "acme", 3, DeliveryState::Delivered).await;
}

#[tokio::test]
async fn endpoints_are_managed_by_admins_and_bad_fields_are_named() {
    let app = TestApp::spawn_with(fast).await;
    let mut client = webhooks(&app.channel);
    let request =
        |account: &str, url: &str, secret: &str, types: &[&str]| CreateWebhookEndpointRequest {
            account: account.into(),
            url: url.into(),
            secret: secret.into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
        };
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ticketd.v1.WebhookService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    for token in [agent(), requester("acme")] {
        let refused = client
            .create_webhook_endpoint(req(&token, request("acme", "http://127.0.0.1:9/", "", &[])))
            .await;
        assert_code(refused, Code::PermissionDenied);
        let refused = client
            .list_webhook_endpoints(req(&token, ListWebhookEndpointsRequest::default()))
            .await;
        assert_code(refused, Code::PermissionDenied);
    }
    let bad = client
        .create_webhook_endpoint(req(
            &admin(),
            request("", "ftp://x/", "short", &["created", "bogus"]),
        ))
        .await;
    let status = assert_code(bad, Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["account", "url", "secret", "event_types[1]"]
    );
    for scheme in ["ws", "HTTPS", "file"] {
        let other = client
            .create_webhook_endpoint(req(
                &admin(),
                request("acme", &format!("{scheme}://hooks.example/"), "", &[]),
            ))
            .await;
        let status = assert_code(other, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["url"], "{scheme}");
        assert!(
            status.message().contains("https:// or http://"),
            "{}",
            status.message()
        );
    }
    // https is taken (its delivery is tested below, against a TLS receiver).
    let https = client
        .create_webhook_endpoint(req(
            &admin(),
            request("acme", "https://hooks.example/ticketd", "", &[]),
        ))
        .await
        .expect("an https endpoint is registered")
        .into_inner();
    client
        .delete_webhook_endpoint(req(&admin(), DeleteWebhookEndpointRequest { id: https.id }))
        .await
        .expect("delete it");

    // A generated secret comes back once; lists never show it.
    let receiver = Receiver::start(Mode::Accept).await;
    let created = client
        .create_webhook_endpoint(req(
            &admin(),
            request("acme", &receiver.url, "", &["status_changed"]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(created.secret.starts_with("whsec_") && created.secret.len() > 32);
    assert_eq!(created.event_types, ["status_changed"]);
    assert_eq!(created.created_by, "root");
    let listed = client
        .list_webhook_endpoints(req(
            &admin(),
            ListWebhookEndpointsRequest {
                account: "acme".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .endpoints;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.id);
    assert!(listed[0].secret.is_empty());
    let none = client
        .list_webhook_endpoints(req(
            &admin(),
            ListWebhookEndpointsRequest {
                account: "globex".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(none.endpoints.is_empty());

    // It receives only what it subscribed to, signed with the generated secret.
    let incident = create(&app, &requester("acme"), "EST-1").await;
    change(&app, &agent(), &incident, IncidentStatus::InProgress)
        .await
        .unwrap();
    let got = receiver.wait_accepted(1, "the status change").await;
    assert_eq!(event_type(&got[0]), "status_changed");
    assert_signed(&got[0], &created.secret);

    // Unknown and malformed ids.
    let unknown = uuid::Uuid::now_v7().to_string();
    let missing = client
        .delete_webhook_endpoint(req(
            &admin(),
            DeleteWebhookEndpointRequest {
                id: unknown.clone(),
            },
        ))
        .await;
    assert_code(missing, Code::NotFound);
    let missing = client
        .pause_webhook_endpoint(req(&admin(), PauseWebhookEndpointRequest { id: unknown }))
        .await;
    assert_code(missing, Code::NotFound);
    let malformed = client
        .resume_webhook_endpoint(req(
            &admin(),
            ResumeWebhookEndpointRequest { id: "x".into() },
        ))
        .await;
    assert_eq!(
        violated_fields(&assert_code(malformed, Code::InvalidArgument)),
        ["id"]
    );
    let bad_filter = client
        .list_deliveries(req(
            &admin(),
            ListDeliveriesRequest {
                states: vec![0, 99],
                endpoint_id: "x".into(),
                page_size: -1,
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        violated_fields(&assert_code(bad_filter, Code::InvalidArgument)),
        ["states[0]", "states[1]", "endpoint_id", "page_size"]
    );

    // Deleted: later events write nothing for it.
    let refused = client
        .delete_webhook_endpoint(req(
            &agent(),
            DeleteWebhookEndpointRequest {
                id: created.id.clone(),
            },
        ))
        .await;
    assert_code(refused, Code::PermissionDenied);
    client
        .delete_webhook_endpoint(req(
            &admin(),
            DeleteWebhookEndpointRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap();
    let moved = get(&app, &agent(), &incident.id).await;
    change(&app, &agent(), &moved, IncidentStatus::PreApproved)
        .await
        .unwrap();
    let all = deliveries(&app.channel, &admin(), ListDeliveriesRequest::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "only the status change before the deletion");
}

/// A receiver that never answers holds its deliveries, not the RPCs that
/// caused them.
#[tokio::test]
async fn a_hanging_receiver_neither_blocks_nor_fails_the_rpcs() {
    let app = TestApp::spawn_with(|s| {
        fast(s);
        s.notify.timeout = Duration::from_secs(30);
    })
    .await;
    let receiver = Receiver::start(Mode::Hang).await;
    register(&app.channel, "acme", &receiver.url).await;
    let store = requester("acme");
    let mut ids = vec![];
    for n in 0..10 {
        let started = std::time::Instant::now();
        let incident = create(&app, &store, &format!("EST-H{n}")).await;
        comment(&app, &agent(), &incident.id, "hola", false).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a create and a comment took {:?}",
            started.elapsed()
        );
        ids.push(incident.id);
    }
    // Every ticket's first delivery is being attempted (and held) meanwhile.
    wait_for("an attempt per ticket", Duration::from_secs(10), || async {
        let held: HashSet<String> = receiver
            .requests()
            .iter()
            .map(|r| ticket_of(r).to_owned())
            .collect();
        (held.len() == ids.len()).then_some(())
    })
    .await;
    let listed = deliveries(&app.channel, &admin(), ListDeliveriesRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 20);
    assert!(
        listed
            .iter()
            .all(|d| d.state == DeliveryState::Pending as i32)
    );
}

/// A server stopped (SIGTERM-like) mid-attempt gives its leases back: the next
/// one delivers at once, not after the lease (here a minute).
#[tokio::test]
async fn deliveries_interrupted_by_a_stop_are_delivered_at_once_after_the_restart() {
    let slow = |s: &mut ticketd::app::Settings| {
        fast(s);
        s.notify.timeout = Duration::from_secs(30);
    };
    let mut app = TestApp::spawn_with(slow).await;
    let receiver = Receiver::start(Mode::Hang).await;
    register(&app.channel, "acme", &receiver.url).await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    comment(&app, &agent(), &incident.id, "uno", false).await;
    wait_for("an attempt in flight", Duration::from_secs(10), || async {
        (!receiver.requests().is_empty()).then_some(())
    })
    .await;
    app.restart_with(slow).await;
    receiver.set_mode(Mode::Accept);
    let got = receiver
        .wait_accepted(2, "both deliveries after the restart")
        .await;
    assert_eq!(event_type(&got[0]), "created");
    assert_eq!(got[0].delivery, receiver.requests()[0].delivery);
    assert_eq!(event_type(&got[1]), "comment_added");
    wait_all(&app.channel, "acme", 2, DeliveryState::Delivered).await;
}

/// Rows pending when the server dies (SIGKILL mid-attempt) are delivered by
/// the next server, in order, each delivery id accepted once.
#[tokio::test]
async fn deliveries_pending_at_a_kill_9_are_delivered_after_the_restart() {
    let mut app = TestApp::spawn().await;
    // Only the child processes dispatch.
    app.stop().await;
    let env = [
        ("TICKETD_NOTIFY_RETRY_BASE", "50ms"),
        ("TICKETD_NOTIFY_TIMEOUT", "1s"),
        ("TICKETD_NOTIFY_POLL", "100ms"),
    ];
    let receiver = Receiver::start(Mode::Hang).await;
    let mut server = ServerProcess::start_with_env(&app.database_url, &env).await;
    register(&server.channel, "acme", &receiver.url).await;
    let store = requester("acme");
    let mut incidents =
        ticketd::pb::incident_service_client::IncidentServiceClient::new(server.channel.clone());
    let incident = incidents
        .create_incident(req(&store, new_incident("EST-KILL")))
        .await
        .unwrap()
        .into_inner();
    for n in 0..3 {
        incidents
            .add_comment(req(
                &agent(),
                AddCommentRequest {
                    ticket_id: incident.id.clone(),
                    body: format!("comentario {n}"),
                    internal: false,
                },
            ))
            .await
            .unwrap();
    }
    // The first delivery is in flight (the receiver holds it) when the server dies.
    wait_for("an attempt in flight", Duration::from_secs(10), || async {
        (!receiver.requests().is_empty()).then_some(())
    })
    .await;
    server.kill();
    receiver.set_mode(Mode::Accept);
    let restarted = ServerProcess::start_with_env(&app.database_url, &env).await;
    let got = receiver
        .wait_accepted(4, "every delivery after the restart")
        .await;
    let sequences: Vec<i64> = got.iter().map(sequence_of).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &got {
        assert_signed(r, SECRET);
        *seen.entry(r.delivery.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), 4);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert_eq!(
        got[0].delivery,
        receiver.requests()[0].delivery,
        "the interrupted delivery kept its id"
    );
    wait_all(&restarted.channel, "acme", 4, DeliveryState::Delivered).await;
}

/// Two replicas on one database dispatch together: every delivery once.
#[tokio::test]
async fn two_replicas_deliver_each_message_once() {
    let app = TestApp::spawn_with(fast).await;
    let replica = app.replica_with(fast).await;
    let receiver = Receiver::start(Mode::Accept).await;
    register(&app.channel, "acme", &receiver.url).await;
    let store = requester("acme");
    let mut ids = vec![];
    for n in 0..6 {
        let incident = create(&app, &store, &format!("EST-{n}")).await;
        ids.push(incident.id.clone());
        let mut other = ticketd::pb::incident_service_client::IncidentServiceClient::new(
            replica.channel.clone(),
        );
        other
            .add_comment(req(
                &agent(),
                AddCommentRequest {
                    ticket_id: incident.id,
                    body: "desde la réplica".into(),
                    internal: false,
                },
            ))
            .await
            .unwrap();
    }
    wait_all(&app.channel, "acme", 12, DeliveryState::Delivered).await;
    let accepted = receiver.accepted();
    let distinct: HashSet<&str> = accepted.iter().map(|r| r.delivery.as_str()).collect();
    assert_eq!(distinct.len(), 12);
    assert_eq!(accepted.len(), 12, "no delivery was sent twice");
}

/// An https endpoint whose certificate comes from a CA the server was told
/// to trust (`--webhook-ca-file`) gets its deliveries over TLS, signed.
#[tokio::test]
async fn https_webhooks_reach_a_receiver_whose_ca_the_server_trusts() {
    let ca = TestCa::new("ticketd test CA");
    let ca_file = ca.pem_file();
    let app = TestApp::spawn_with(|s| {
        fast(s);
        s.notify.webhook_ca_file = Some(ca_file.path().to_owned());
    })
    .await;
    let receiver = Receiver::start_tls(Mode::Accept, ca.server()).await;
    assert!(receiver.url.starts_with("https://127.0.0.1:"));
    let endpoint = register(&app.channel, "acme", &receiver.url).await;
    assert_eq!(endpoint.url, receiver.url);
    let incident = create(&app, &requester("acme"), "EST-TLS").await;
    comment(&app, &agent(), &incident.id, "Lo revisamos", false).await;
    let got = receiver.wait_accepted(2, "2 deliveries over TLS").await;
    assert_eq!(
        got.iter().map(event_type).collect::<Vec<_>>(),
        ["created", "comment_added"]
    );
    for r in &got {
        assert_signed(r, SECRET);
        assert_eq!(ticket_of(r), incident.id);
    }
    let listed = wait_all(&app.channel, "acme", 2, DeliveryState::Delivered).await;
    assert!(
        listed
            .iter()
            .all(|d| d.attempts == 1 && d.last_error.is_empty())
    );
}

/// A receiver whose certificate the server does not trust gets nothing (the
/// handshake fails before any request), and the delivery says why.
#[tokio::test]
async fn an_https_receiver_with_an_untrusted_certificate_gets_nothing_and_the_tls_error_is_listed()
{
    let trusted = TestCa::new("ticketd test CA");
    let ca_file = trusted.pem_file();
    let app = TestApp::spawn_with(|s| {
        fast(s);
        s.notify.webhook_ca_file = Some(ca_file.path().to_owned());
    })
    .await;
    let stranger = TestCa::new("someone else's CA");
    let receiver = Receiver::start_tls(Mode::Accept, stranger.server()).await;
    register(&app.channel, "acme", &receiver.url).await;
    create(&app, &requester("acme"), "EST-TLS-BAD").await;
    let failed = wait_for(
        "a failed attempt with its error",
        Duration::from_secs(20),
        || async {
            let listed = deliveries(&app.channel, &admin(), ListDeliveriesRequest::default())
                .await
                .expect("list deliveries");
            listed
                .into_iter()
                .find(|d| d.attempts >= 2 && !d.last_error.is_empty())
        },
    )
    .await;
    assert_eq!(failed.state, DeliveryState::Pending as i32, "to be retried");
    assert!(
        failed.last_error.contains("TLS handshake with 127.0.0.1:")
            && failed.last_error.contains("UnknownIssuer"),
        "{}",
        failed.last_error
    );
    assert!(failed.delivered_at.is_none());
    assert!(
        receiver.connections.load(Ordering::SeqCst) >= 2,
        "the server did connect"
    );
    assert!(receiver.requests().is_empty(), "no request got through");
    // The requester sees the same error on its own account's deliveries.
    let own = deliveries(
        &app.channel,
        &requester("acme"),
        ListDeliveriesRequest::default(),
    )
    .await
    .unwrap();
    assert!(own[0].last_error.contains("UnknownIssuer"), "{own:?}");
}

/// `--notify-rules` decides the documents' `notify` list too (the endpoint
/// still gets every event it subscribed to: its own filter is its types).
#[tokio::test]
async fn the_notify_list_of_webhook_documents_follows_the_configured_rules() {
    let app = TestApp::spawn_with(|s| {
        fast(s);
        s.notify.rules = "requester=created;assignee=status".parse().unwrap();
    })
    .await;
    let receiver = Receiver::start(Mode::Accept).await;
    register(&app.channel, "acme", &receiver.url).await;
    let created = create(&app, &requester("acme"), "EST-RULES").await;
    let assigned = app
        .incidents()
        .assign_incident(req(
            &agent(),
            AssignIncidentRequest {
                id: created.id.clone(),
                assignee_id: "ana".into(),
                assignee_name: "Ana".into(),
                expected_version: created.version,
                assignee_email: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    change(&app, &agent(), &assigned, IncidentStatus::InProgress)
        .await
        .unwrap();
    let got = receiver.wait_accepted(3, "3 deliveries").await;
    let told: Vec<(&str, &serde_json::Value)> = got
        .iter()
        .map(|r| (event_type(r), &r.body["notify"]))
        .collect();
    assert_eq!(
        told,
        [
            (
                "created",
                &serde_json::json!([{"relation": "requester", "id": "store-acme", "name": "store-acme name"}])
            ),
            ("assigned", &serde_json::json!([])),
            (
                "status_changed",
                &serde_json::json!([{"relation": "assignee", "id": "ana", "name": "Ana"}])
            ),
        ]
    );
}
