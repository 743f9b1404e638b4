//! The e-mail channel of the outbox (issue #15) against a real SMTP server on
//! loopback: aiosmtpd, started by each test as a child process
//! (`tests/smtp_sink.py`), writes every message it receives, decoded by
//! Python's own e-mail package, as a JSON file the test reads.
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use ticketd::auth::{Claims, sign_hs256};
use ticketd::config::NotifyArgs;
use ticketd::pb::webhook_service_client::WebhookServiceClient;
use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;

const FRONTEND: &str = "https://soporte.example.com";
const FROM: &str = "Soporte <soporte@example.com>";

/// One message the SMTP server received.
#[derive(Debug, Clone, Deserialize)]
struct Mail {
    rcpt_tos: Vec<String>,
    from: String,
    to: String,
    subject: String,
    message_id: String,
    content_type: String,
    text: Option<String>,
    html: Option<String>,
}

impl Mail {
    fn text(&self) -> String {
        self.text.clone().unwrap_or_default().replace("\r\n", "\n")
    }

    fn html(&self) -> String {
        self.html.clone().unwrap_or_default().replace("\r\n", "\n")
    }
}

/// aiosmtpd on 127.0.0.1, killed when dropped.
struct Sink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sink {
    /// On any free port.
    fn start() -> Self {
        Self::on(0, false)
    }

    /// On `port` (0: any); with `hang`, it accepts connections and never answers.
    fn on(port: u16, hang: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new("python3");
        command
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py"))
            .arg(port.to_string())
            .arg(dir.path());
        if hang {
            command.arg("--hang");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let Some(port) = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!(
                "the SMTP server did not start (python3 -m pip install aiosmtpd): {line:?}\n{err}"
            );
        };
        Self { child, dir, port }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message so far, in the order received.
    fn received(&self) -> Vec<Mail> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("read the mail directory")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read a message");
                serde_json::from_str(&text).expect("a message as JSON")
            })
            .collect()
    }

    /// Waits until `n` messages have arrived (at most 20 s).
    async fn wait(&self, n: usize) -> Vec<Mail> {
        wait_for(&format!("{n} e-mails"), Duration::from_secs(20), || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// E-mail on through `url`, with quick retries.
fn mail_on(s: &mut ticketd::app::Settings, url: String) {
    s.notify = NotifyArgs {
        retry_base: Duration::from_millis(50),
        retry_horizon: Duration::from_secs(3600),
        timeout: Duration::from_secs(2),
        poll: Duration::from_millis(100),
        smtp_url: Some(url),
        smtp_from: FROM.into(),
        frontend_url: Some(FRONTEND.into()),
        ..Default::default()
    };
}

/// A requester of `account` whose token carries `email`.
fn requester_with_email(account: &str, sub: &str, email: &str) -> String {
    let claims = Claims {
        name: Some(format!("{sub} name")),
        email: Some(email.into()),
        ..Claims::new(sub, "requester", Some(account), 4_000_000_000)
    };
    sign_hs256(SECRET, &claims).expect("sign")
}

fn admin() -> String {
    token("admin", "root", None)
}

/// `request` with `accept-language: lang`.
fn in_language<T>(mut request: tonic::Request<T>, lang: &str) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("accept-language", lang.parse().expect("header"));
    request
}

/// Every delivery of `ticket_id` as `token` lists them.
async fn deliveries(app: &TestApp, token: &str, ticket_id: &str) -> Vec<Delivery> {
    WebhookServiceClient::new(app.channel.clone())
        .list_deliveries(req(
            token,
            ListDeliveriesRequest {
                ticket_id: ticket_id.into(),
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .expect("list deliveries")
        .into_inner()
        .deliveries
}

/// Waits until `ticket_id` has `n` deliveries, all in `state`.
async fn wait_deliveries(
    app: &TestApp,
    ticket_id: &str,
    n: usize,
    state: DeliveryState,
) -> Vec<Delivery> {
    wait_for(
        &format!("{n} deliveries in {state:?}"),
        Duration::from_secs(20),
        || async {
            let all = deliveries(app, &admin(), ticket_id).await;
            (all.len() == n && all.iter().all(|d| d.state == state as i32)).then_some(all)
        },
    )
    .await
}

async fn assign_incident(
    app: &TestApp,
    incident: &Incident,
    assignee: &str,
    email: &str,
) -> Result<Incident, tonic::Status> {
    app.incidents()
        .assign_incident(req(
            &agent(),
            AssignIncidentRequest {
                id: incident.id.clone(),
                assignee_id: assignee.into(),
                assignee_name: "Ana López".into(),
                expected_version: incident.version,
                assignee_email: email.into(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// The subjects `address` received, in order.
fn subjects_to(mails: &[Mail], address: &str) -> Vec<String> {
    mails
        .iter()
        .filter(|m| m.rcpt_tos == [address])
        .map(|m| m.subject.clone())
        .collect()
}

/// The instant an incident closes by itself, as the e-mails show it.
fn local(closes_at: &prost_types::Timestamp, format: &str) -> String {
    let at = chrono::DateTime::from_timestamp(closes_at.seconds, closes_at.nanos as u32)
        .expect("an instant")
        .with_timezone(&chrono_tz::America::Mexico_City);
    at.format(format).to_string()
}

#[tokio::test]
async fn a_whole_incident_life_is_emailed_to_the_requester_and_the_assignee_in_spanish() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(|s| mail_on(s, sink.url())).await;
    let store = requester_with_email("acme", "tienda-42", "tienda@example.com");
    let agent = agent();

    let created = create(&app, &store, "EST-MAIL-1").await;
    let id = created.id.clone();
    let assigned = assign_incident(&app, &created, "ana", "ana@example.com")
        .await
        .expect("assign");
    let waiting = change(&app, &agent, &assigned, IncidentStatus::MissingData)
        .await
        .expect("ask for data");
    let closes_at = waiting.missing_data_closes_at.expect("closes at");
    add_comment(
        &app,
        &store,
        (TicketType::Incident, &id),
        "Adjunto la foto",
        false,
    )
    .await
    .expect("requester answers");
    let back = get(&app, &agent, &id).await;
    let working = change(&app, &agent, &back, IncidentStatus::InProgress)
        .await
        .expect("in progress");
    add_comment(
        &app,
        &agent,
        (TicketType::Incident, &id),
        "Nota interna: revisar con la paquetería",
        true,
    )
    .await
    .expect("internal note");
    add_comment(
        &app,
        &agent,
        (TicketType::Incident, &id),
        "Ya hablamos con la paquetería <Estafeta> & te reembolsan",
        false,
    )
    .await
    .expect("public comment");
    let working = get(&app, &agent, &working.id).await;
    change(&app, &agent, &working, IncidentStatus::Finalized)
        .await
        .expect("finalize");

    // Every e-mail delivered: 7 to the requester, 2 to the assignee, none
    // for the internal note.
    let delivered = wait_deliveries(&app, &id, 9, DeliveryState::Delivered).await;
    let mails = sink.wait(9).await;
    assert_eq!(mails.len(), 9, "{mails:#?}");
    let n = created.number;
    let subject = |what: &str| format!("Incidencia {n}: {what}");
    assert_eq!(
        subjects_to(&mails, "tienda@example.com"),
        [
            subject("Nuevo ticket"),
            // Asking for data posts the agent's comment, then moves it.
            subject("Nuevo comentario"),
            subject("Datos faltantes"),
            // The requester's answer brings it back (the system's change).
            subject("Nuevo ticket"),
            subject("En curso"),
            subject("Nuevo comentario"),
            subject("Finalizado"),
        ]
    );
    assert_eq!(
        subjects_to(&mails, "ana@example.com"),
        [subject("Asignada a ti"), subject("Nuevo comentario")]
    );
    for m in &mails {
        assert_eq!(m.rcpt_tos.len(), 1);
        assert_eq!(m.to, m.rcpt_tos[0]);
        assert_eq!(m.from, FROM);
        assert_eq!(m.content_type, "multipart/alternative");
        assert!(!m.text().contains("Nota interna") && !m.html().contains("Nota interna"));
        // The Message-ID is the delivery's id: the same on every attempt.
        let id = m
            .message_id
            .trim_matches(['<', '>'])
            .replace("@ticketd", "");
        let d = delivered.iter().find(|d| d.id == id).expect("a delivery");
        assert_eq!(
            (d.channel.as_str(), d.target.as_str()),
            ("email", m.to.as_str())
        );
    }
    let link = format!("{FRONTEND}/incidents/{id}");

    let first = mails.iter().find(|m| m.to == "tienda@example.com").unwrap();
    assert_eq!(first.subject, subject("Nuevo ticket"));
    let text = first.text();
    assert!(
        text.starts_with(&format!("Incidencia {n} — Paquete dañado\n")),
        "{text}"
    );
    assert!(text.contains("Estado: Nuevo ticket"), "{text}");
    assert!(text.contains("La caja llegó dañada"), "{text}");
    assert!(text.contains(&format!("Ver en línea: {link}")), "{text}");
    let html = first.html();
    assert!(html.contains("<html lang=\"es\">"), "{html}");
    assert!(html.contains("Paquete dañado") && html.contains("La caja llegó dañada"));
    assert!(
        html.contains(&format!("<a href=\"{link}\">Ver en línea</a>")),
        "{html}"
    );

    let missing = mails
        .iter()
        .find(|m| m.subject == subject("Datos faltantes"))
        .unwrap();
    let when = local(&closes_at, "%d/%m/%Y %H:%M");
    let expected = format!("Se cerrará automáticamente el {when} (America/Mexico_City)");
    assert!(missing.text().contains(&expected), "{}", missing.text());
    assert!(missing.text().contains("Falta la foto del paquete"));
    assert!(missing.html().contains(&expected), "{}", missing.html());

    let to_ana = mails
        .iter()
        .find(|m| m.to == "ana@example.com" && m.subject == subject("Nuevo comentario"))
        .unwrap();
    assert!(to_ana.text().contains("Comentario de tienda-42 name:"));
    assert!(to_ana.text().contains("Adjunto la foto"));

    let answer = mails
        .iter()
        .filter(|m| m.subject == subject("Nuevo comentario") && m.to == "tienda@example.com")
        .nth(1)
        .unwrap();
    assert!(
        answer
            .text()
            .contains("Ya hablamos con la paquetería <Estafeta> & te reembolsan")
    );
    assert!(
        answer
            .html()
            .contains("Ya hablamos con la paquetería &lt;Estafeta&gt; &amp; te reembolsan"),
        "{}",
        answer.html()
    );
    assert!(!answer.html().contains("<Estafeta>"));

    // A requester lists its own account's e-mail deliveries; another's sees none.
    assert_eq!(deliveries(&app, &store, &id).await.len(), 9);
    assert!(deliveries(&app, &requester("globex"), &id).await.is_empty());
}

#[tokio::test]
async fn a_whole_consultation_life_is_emailed_in_english_to_its_contact_address() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(|s| mail_on(s, sink.url())).await;
    // No address in the token: the request's contact field is the address.
    let driver = requester("acme");
    let created = app
        .consultations()
        .create_consultation(in_language(
            req(
                &driver,
                CreateConsultationRequest {
                    category: "delivery_not_acknowledged".into(),
                    description: "The customer says <nothing> arrived & wants a refund".into(),
                    order_reference: "PED-9".into(),
                    idempotency_key: String::new(),
                    contact_email: "driver@example.com".into(),
                },
            ),
            "en-US,en;q=0.9",
        ))
        .await
        .expect("create")
        .into_inner();
    let mut current = created.clone();
    for to in [ConsultationStatus::InProgress, ConsultationStatus::Solved] {
        current = app
            .consultations()
            .change_consultation_status(req(
                &agent(),
                ChangeConsultationStatusRequest {
                    id: current.id.clone(),
                    status: to as i32,
                    expected_version: current.version,
                    comment: String::new(),
                },
            ))
            .await
            .expect("change")
            .into_inner();
    }
    wait_deliveries(&app, &created.id, 3, DeliveryState::Delivered).await;
    let mails = sink.wait(3).await;
    let n = created.number;
    assert_eq!(
        subjects_to(&mails, "driver@example.com"),
        [
            format!("Consultation {n}: Received"),
            format!("Consultation {n}: In progress"),
            format!("Consultation {n}: Solved"),
        ]
    );
    let solved = &mails[2];
    let text = solved.text();
    assert!(text.starts_with(&format!(
        "Consultation {n} — El cliente no reconoce la entrega\n"
    )));
    assert!(text.contains("Status: Solved"), "{text}");
    assert!(text.contains("The customer says <nothing> arrived & wants a refund"));
    let link = format!("{FRONTEND}/consultations/{}", created.id);
    assert!(text.contains(&format!("View online: {link}")), "{text}");
    let html = solved.html();
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("The customer says &lt;nothing&gt; arrived &amp; wants a refund"));
    assert!(html.contains(&format!("<a href=\"{link}\">View online</a>")));
}

#[tokio::test]
async fn an_english_requester_is_told_in_english_when_its_incident_will_close_by_itself() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(|s| mail_on(s, sink.url())).await;
    let store = requester_with_email("acme", "store-en", "store@example.com");
    let created = app
        .incidents()
        .create_incident(in_language(req(&store, new_incident("EST-MAIL-EN")), "en"))
        .await
        .expect("create")
        .into_inner();
    let waiting = change(&app, &agent(), &created, IncidentStatus::MissingData)
        .await
        .expect("ask for data");
    let mails = sink.wait(3).await;
    let n = created.number;
    assert_eq!(
        subjects_to(&mails, "store@example.com"),
        [
            format!("Incident {n}: New ticket"),
            format!("Incident {n}: New comment"),
            format!("Incident {n}: Missing data"),
        ]
    );
    let when = local(
        waiting.missing_data_closes_at.as_ref().unwrap(),
        "%Y-%m-%d %H:%M",
    );
    let text = mails[2].text();
    assert!(
        text.contains(&format!(
            "It will close by itself on {when} (America/Mexico_City), unless the missing data is sent."
        )),
        "{text}"
    );
    assert!(text.contains("Falta la foto del paquete"));
}

#[tokio::test]
async fn simple_consultations_send_no_email() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(|s| mail_on(s, sink.url())).await;
    let driver = requester_with_email("acme", "driver-1", "driver@example.com");
    let simple = consult(&app, &driver, "order_status").await;
    assert_eq!(simple.complexity, Complexity::Simple as i32);
    add_comment(
        &app,
        &driver,
        (TicketType::Consultation, &simple.id),
        "¿Y mi pedido?",
        false,
    )
    .await
    .expect("comment");
    assert!(deliveries(&app, &admin(), &simple.id).await.is_empty());
    // A ticketed one afterwards is sent: only it arrives.
    let ticketed = consult(&app, &driver, "delivery_not_acknowledged").await;
    wait_deliveries(&app, &ticketed.id, 1, DeliveryState::Delivered).await;
    let mails = sink.wait(1).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(
        mails[0].subject,
        format!("Consulta {}: Recepcionado", ticketed.number)
    );
    assert!(deliveries(&app, &admin(), &simple.id).await.is_empty());
}

#[tokio::test]
async fn people_without_an_address_get_no_email_and_nothing_fails() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(|s| mail_on(s, sink.url())).await;
    // Neither the token nor the request gives the requester an address.
    let created = create(&app, &requester("acme"), "EST-MAIL-2").await;
    assert!(deliveries(&app, &admin(), &created.id).await.is_empty());
    let assigned = assign_incident(&app, &created, "ana", "ana@example.com")
        .await
        .expect("assign");
    change(&app, &agent(), &assigned, IncidentStatus::InProgress)
        .await
        .expect("in progress");
    let delivered = wait_deliveries(&app, &created.id, 1, DeliveryState::Delivered).await;
    assert_eq!(delivered[0].endpoint_id, "email:assignee");
    let mails = sink.wait(1).await;
    assert_eq!(mails[0].to, "ana@example.com");
    // Reassigned without an address: the new assignee gets nothing, and the
    // old address is not used for them.
    let current = get(&app, &agent(), &created.id).await;
    assign_incident(&app, &current, "luis", "")
        .await
        .expect("reassign");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(deliveries(&app, &admin(), &created.id).await.len(), 1);
}

#[tokio::test]
async fn without_an_smtp_url_no_email_is_written() {
    let app = TestApp::spawn().await;
    let store = requester_with_email("acme", "tienda-42", "tienda@example.com");
    let created = create(&app, &store, "EST-MAIL-3").await;
    change(&app, &agent(), &created, IncidentStatus::InProgress)
        .await
        .expect("in progress");
    assert!(deliveries(&app, &admin(), &created.id).await.is_empty());
}

#[tokio::test]
async fn email_addresses_are_checked_at_the_edge() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let bad = CreateIncidentRequest {
        contact_email: "tienda en example.com".into(),
        ..new_incident("EST-MAIL-4")
    };
    let status = assert_code(
        app.incidents().create_incident(req(&store, bad)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact_email"]);
    let bad = CreateConsultationRequest {
        category: "delivery_not_acknowledged".into(),
        description: "x".into(),
        contact_email: "driver@".into(),
        ..Default::default()
    };
    let status = assert_code(
        app.consultations()
            .create_consultation(req(&store, bad))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact_email"]);

    let created = create(&app, &store, "EST-MAIL-4").await;
    let status = assert_code(
        assign_incident(&app, &created, "ana", "ana@@example.com").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["assignee_email"]);
    let status = assert_code(
        assign_incident(&app, &created, "", "ana@example.com").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["assignee_email"]);

    // A token whose email claim is no address is refused like any bad claim.
    let token = requester_with_email("acme", "tienda-42", "not an address");
    let status = assert_code(
        app.incidents()
            .create_incident(req(&token, new_incident("EST-MAIL-5")))
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("the email claim"), "{status:?}");
    assert_eq!(incident_count(&app).await, 1);
}

#[tokio::test]
async fn emails_to_an_smtp_server_down_past_the_horizon_are_dead_visible_and_retryable() {
    // A port nobody listens on (until the test starts a server there).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(|s| {
        mail_on(s, format!("smtp://127.0.0.1:{port}"));
        s.notify.retry_horizon = Duration::from_millis(500);
    })
    .await;
    let store = requester_with_email("acme", "tienda-42", "tienda@example.com");
    let created = create(&app, &store, "EST-MAIL-6").await;
    let dead = wait_deliveries(&app, &created.id, 1, DeliveryState::Dead).await;
    let d = &dead[0];
    assert_eq!(d.channel, "email");
    assert_eq!(d.endpoint_id, "email:requester");
    assert_eq!(d.target, "tienda@example.com");
    assert_eq!(d.event_type, "created");
    assert!(d.attempts >= 1, "{d:?}");
    assert!(d.last_error.starts_with("SMTP"), "{d:?}");
    // The requester sees its own account's dead e-mail too.
    assert_eq!(deliveries(&app, &store, &created.id).await.len(), 1);

    // The server comes up; a retry by hand delivers it.
    let sink = Sink::on(port, false);
    let retried = WebhookServiceClient::new(app.channel.clone())
        .retry_delivery(req(&admin(), RetryDeliveryRequest { id: d.id.clone() }))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(retried.state, DeliveryState::Pending as i32);
    wait_deliveries(&app, &created.id, 1, DeliveryState::Delivered).await;
    let mails = sink.wait(1).await;
    assert_eq!(
        mails[0].subject,
        format!("Incidencia {}: Nuevo ticket", created.number)
    );
}

#[tokio::test]
async fn a_hanging_smtp_server_neither_blocks_nor_fails_the_rpcs() {
    let sink = Sink::on(0, true);
    let app = TestApp::spawn_with(|s| {
        mail_on(s, sink.url());
        s.notify.timeout = Duration::from_millis(300);
    })
    .await;
    let store = requester_with_email("acme", "tienda-42", "tienda@example.com");
    let mut last = None;
    for i in 0..5 {
        let started = Instant::now();
        last = Some(create(&app, &store, &format!("EST-HANG-{i}")).await);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "create took {:?}",
            started.elapsed()
        );
    }
    let id = last.unwrap().id;
    let failed = wait_for("a timed-out attempt", Duration::from_secs(20), || async {
        let all = deliveries(&app, &admin(), &id).await;
        all.into_iter()
            .find(|d| d.attempts >= 1 && d.state == DeliveryState::Pending as i32)
    })
    .await;
    assert!(failed.last_error.contains("SMTP"), "{failed:?}");
    assert!(sink.received().is_empty());
}

/// One incident's whole life, as in the Spanish test above: filed by
/// `store`, assigned to ana, asked for data, answered, worked with an
/// internal note and a public comment, finalized. Returns it as filed.
async fn live_an_incident(app: &TestApp, store: &str, tracking: &str) -> Incident {
    let agent = agent();
    let created = create(app, store, tracking).await;
    let id = created.id.clone();
    let assigned = assign_incident(app, &created, "ana", "ana@example.com")
        .await
        .expect("assign");
    change(app, &agent, &assigned, IncidentStatus::MissingData)
        .await
        .expect("ask for data");
    let thread = (TicketType::Incident, id.as_str());
    add_comment(app, store, thread, "Adjunto la foto", false)
        .await
        .expect("requester answers");
    let back = get(app, &agent, &id).await;
    change(app, &agent, &back, IncidentStatus::InProgress)
        .await
        .expect("in progress");
    add_comment(app, &agent, thread, "Nota interna", true)
        .await
        .expect("internal note");
    add_comment(app, &agent, thread, "Ya hablamos con la paquetería", false)
        .await
        .expect("public comment");
    let working = get(app, &agent, &id).await;
    change(app, &agent, &working, IncidentStatus::Finalized)
        .await
        .expect("finalize");
    created
}

/// `--notify-rules requester=created`: the requester hears only that its
/// incident was filed; the assignee, left out of the rules, keeps its
/// defaults (assignment, requester comments).
#[tokio::test]
async fn a_server_told_to_tell_the_requester_only_of_creation_sends_just_that() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(|s| {
        mail_on(s, sink.url());
        s.notify.rules = "requester=created".parse().expect("rules");
    })
    .await;
    let store = requester_with_email("acme", "tienda-7", "tienda@example.com");
    let created = live_an_incident(&app, &store, "EST-RULES-1").await;
    wait_deliveries(&app, &created.id, 3, DeliveryState::Delivered).await;
    let mails = sink.wait(3).await;
    assert_eq!(mails.len(), 3, "{mails:#?}");
    let subject = |what: &str| format!("Incidencia {}: {what}", created.number);
    assert_eq!(
        subjects_to(&mails, "tienda@example.com"),
        [subject("Nuevo ticket")]
    );
    assert_eq!(
        subjects_to(&mails, "ana@example.com"),
        [subject("Asignada a ti"), subject("Nuevo comentario")]
    );
    assert!(mails.iter().all(|m| !m.text().contains("Nota interna")));
}

/// `--notify-rules requester=missing_data;assignee=status`: the requester
/// hears only the request for data (not even the comment that carries it),
/// and the assignee every status change, none of which it hears by default.
#[tokio::test]
async fn rules_can_narrow_the_requester_to_missing_data_and_widen_the_assignee_to_status() {
    let sink = Sink::start();
    let app = TestApp::spawn_with(|s| {
        mail_on(s, sink.url());
        s.notify.rules = "requester=missing_data;assignee=status"
            .parse()
            .expect("rules");
    })
    .await;
    let store = requester_with_email("acme", "tienda-8", "tienda@example.com");
    let created = live_an_incident(&app, &store, "EST-RULES-2").await;
    wait_deliveries(&app, &created.id, 5, DeliveryState::Delivered).await;
    let mails = sink.wait(5).await;
    assert_eq!(mails.len(), 5, "{mails:#?}");
    let subject = |what: &str| format!("Incidencia {}: {what}", created.number);
    assert_eq!(
        subjects_to(&mails, "tienda@example.com"),
        [subject("Datos faltantes")]
    );
    assert_eq!(
        subjects_to(&mails, "ana@example.com"),
        [
            subject("Datos faltantes"),
            subject("Nuevo ticket"),
            subject("En curso"),
            subject("Finalizado"),
        ]
    );
}

/// Runs `ticketd serve ARGS` with `env`, which must fail to start: its exit
/// code and what it printed.
fn serve_refused(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ticketd"));
    command
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("TICKETD_")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("run ticketd serve");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ticketd serve {args:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (status.code(), out)
}

#[test]
fn a_bad_rule_or_ca_file_stops_the_server_naming_what_is_wrong() {
    let (code, out) = serve_refused(&["--notify-rules", "requester=created,stauts"], &[]);
    assert_eq!(code, Some(2), "a usage error: {out}");
    assert!(out.contains("--notify-rules"), "{out}");
    assert!(
        out.contains("unknown trigger \"stauts\" for requester"),
        "{out}"
    );
    let (code, out) = serve_refused(&[], &[("TICKETD_NOTIFY_RULES", "agent=created")]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unknown recipient \"agent\""), "{out}");
    let (code, out) = serve_refused(&["--webhook-ca-file", "/nonexistent/ca.pem"], &[]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("--webhook-ca-file: cannot read /nonexistent/ca.pem"),
        "{out}"
    );
}
