//! The test harness: every test spawns the real server on 127.0.0.1:0 with a
//! fresh database — a SQLite file in a temporary directory, or, when
//! `TICKETD_TEST_POSTGRES_URL` is set, a new PostgreSQL database that is
//! dropped afterwards — and talks gRPC to it over a real socket.
use std::sync::Arc;

use sea_orm::{ConnectionTrait, Database};
use ticketd::app::Settings;
use ticketd::auth::{Claims, Verifier, sign_hs256};
use ticketd::domain::clock::SystemClock;
use ticketd::pb::consultation_service_client::ConsultationServiceClient;
use ticketd::pb::incident_service_client::IncidentServiceClient;
use ticketd::pb::*;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

pub struct TestApp {
    pub channel: Channel,
    /// The database this app's servers use.
    pub database_url: String,
    server: Server,
    database: TestDatabase,
}

enum TestDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

/// One running server: its address, shutdown trigger and task.
struct Server {
    addr: std::net::SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A second server on the same database (another replica).
pub struct Replica {
    pub channel: Channel,
    #[allow(dead_code)]
    server: Server,
}

/// The settings every test server starts from.
pub fn settings(database_url: &str) -> Settings {
    Settings {
        database_url: database_url.to_owned(),
        verifier: Verifier::hs256(SECRET),
        clock: Arc::new(SystemClock),
        consultation_targets: Default::default(),
        progress_interval: std::time::Duration::from_millis(300),
        event_buffer: 4096,
        event_poll: std::time::Duration::from_secs(1),
        drain_timeout: std::time::Duration::from_secs(5),
        calendar: ticketd::domain::calendar::Calendar::mexico_default(),
        scheduler_poll: std::time::Duration::from_millis(100),
        export_stall_timeout: std::time::Duration::from_secs(60),
        health_interval: std::time::Duration::from_millis(200),
        limits: Default::default(),
        metrics_listener: None,
        notify: Default::default(),
    }
}

impl TestApp {
    /// PostgreSQL only: refuses (`true`) or allows again (`false`) every
    /// connection to this app's database, ending the open ones, as an outage would.
    #[allow(dead_code)]
    pub async fn cut_database(&self, cut: bool) {
        let TestDatabase::Postgres { admin_url, name } = &self.database else {
            panic!("an embedded SQLite database cannot be cut off");
        };
        let admin = Database::connect(admin_url)
            .await
            .expect("admin connection");
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {}",
                !cut
            ))
            .await
            .expect("alter database");
        if cut {
            admin
                .execute_unprepared(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
                ))
                .await
                .expect("end its connections");
        }
        admin.close().await.ok();
    }

    /// PostgreSQL only: ends every open connection to this app's database
    /// (`pg_terminate_backend`, SQLSTATE 57P01 to whoever was mid-query), as
    /// an administrator or a failover would; new connections are still
    /// allowed. Returns how many were ended.
    #[allow(dead_code)]
    pub async fn end_connections(&self) -> usize {
        let TestDatabase::Postgres { admin_url, name } = &self.database else {
            panic!("an embedded SQLite database has no connections to end");
        };
        let admin = Database::connect(admin_url)
            .await
            .expect("admin connection");
        let ended = admin
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ),
            ))
            .await
            .expect("end its connections")
            .len();
        admin.close().await.ok();
        ended
    }

    /// The server's address, for a client with settings of its own.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns a server whose settings `configure` adjusts.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = ticketd::telemetry::init();
        }
        let (database, database_url) = fresh_database().await;
        let mut settings = settings(&database_url);
        configure(&mut settings);
        let (channel, server) = start(settings).await;
        Self {
            channel,
            database_url,
            server,
            database,
        }
    }

    /// Starts another server on this app's database.
    pub async fn replica(&self) -> Replica {
        self.replica_with(|_| {}).await
    }

    /// Starts another server on this app's database, with adjusted settings.
    pub async fn replica_with(&self, configure: impl FnOnce(&mut Settings)) -> Replica {
        let mut settings = settings(&self.database_url);
        configure(&mut settings);
        let (channel, server) = start(settings).await;
        Replica { channel, server }
    }

    pub fn incidents(&self) -> IncidentServiceClient<Channel> {
        IncidentServiceClient::new(self.channel.clone())
    }

    pub fn consultations(&self) -> ConsultationServiceClient<Channel> {
        ConsultationServiceClient::new(self.channel.clone())
    }

    /// Stops the server and waits for it.
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }
}

impl Server {
    async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn start(settings: Settings) -> (Channel, Server) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let result = ticketd::app::serve(settings, listener, async {
            let _ = rx.await;
        })
        .await;
        if let Err(e) = &result {
            eprintln!("test server failed: {e:#}");
        }
        result
    });
    (
        connect(addr).await,
        Server {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        },
    )
}

/// A SQLite file in a temporary directory, or a new PostgreSQL database.
async fn fresh_database() -> (TestDatabase, String) {
    match std::env::var("TICKETD_TEST_POSTGRES_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("ticketd_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to TICKETD_TEST_POSTGRES_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            admin.close().await.ok();
            let url = replace_database(&admin_url, &name);
            (TestDatabase::Postgres { admin_url, name }, url)
        }
        _ => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("ticketd.db").display()
            );
            (TestDatabase::Sqlite(dir), url)
        }
    }
}

/// Whether the tests run on PostgreSQL.
#[allow(dead_code)]
pub fn on_postgres() -> bool {
    std::env::var("TICKETD_TEST_POSTGRES_URL").is_ok_and(|u| !u.is_empty())
}

/// For a test, or the part of one, that only PostgreSQL can show: true on
/// PostgreSQL; on SQLite false, after saying so on the terminal (written past
/// the test harness's capture, so that a plain `cargo test` shows what it
/// did not run instead of passing it silently).
#[track_caller]
pub fn postgres_only(what: &str) -> bool {
    if on_postgres() {
        return true;
    }
    use std::io::Write;
    let at = std::panic::Location::caller();
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED on SQLite ({}:{}): {what}; set TICKETD_TEST_POSTGRES_URL to run it",
        at.file(),
        at.line()
    );
    false
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.server.shutdown.take() {
            let _ = tx.send(());
        }
        if let TestDatabase::Postgres { admin_url, name } = &self.database {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime: clean up on a thread of our own.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        admin.close().await.ok();
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

/// Connects once the server answers health checks (it migrates first).
async fn connect(addr: std::net::SocketAddr) -> Channel {
    let endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    for _ in 0..400 {
        if let Ok(channel) = endpoint.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let check = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if check.is_ok() {
                return channel;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("server at {addr} did not come up");
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let slash = base
        .rfind('/')
        .filter(|i| *i > base.find("://").map_or(0, |s| s + 2))
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..slash])
}

/// A signed token for the given role, subject and account.
pub fn token(role: &str, sub: &str, account: Option<&str>) -> String {
    let claims = Claims {
        name: Some(format!("{sub} name")),
        ..Claims::new(sub, role, account, 4_000_000_000)
    };
    sign_hs256(SECRET, &claims).expect("sign")
}

pub fn requester(account: &str) -> String {
    token("requester", &format!("store-{account}"), Some(account))
}

pub fn agent() -> String {
    token("agent", "ana", None)
}

/// A request carrying `token`.
pub fn req<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

/// A valid shipment incident request.
pub fn new_incident(tracking: &str) -> CreateIncidentRequest {
    CreateIncidentRequest {
        kind: IncidentKind::Shipment as i32,
        tracking_number: tracking.into(),
        carrier: "estafeta".into(),
        category: "damaged".into(),
        description: "La caja llegó dañada".into(),
        shipped_at: None,
        claimed_amount: Some(Money {
            amount: "1250.50".into(),
            currency: "MXN".into(),
        }),
        idempotency_key: String::new(),
        contact_email: String::new(),
    }
}

/// The first page of incidents `query` finds for `token`.
pub async fn search_incidents(
    client: &mut IncidentServiceClient<Channel>,
    token: &str,
    query: &str,
) -> ListIncidentsResponse {
    client
        .list_incidents(req(
            token,
            ListIncidentsRequest {
                query: query.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// The numbers, in order, of the first page of incidents `query` finds for `token`.
pub async fn incident_numbers(app: &TestApp, token: &str, query: &str) -> Vec<i64> {
    let mut list = search_incidents(&mut app.incidents(), token, query)
        .await
        .incidents
        .into_iter()
        .map(|i| i.number)
        .collect::<Vec<_>>();
    list.sort();
    list
}

/// The first page of the consultations `query` finds for `token`.
pub async fn search_consultations(
    app: &TestApp,
    token: &str,
    query: &str,
) -> ListConsultationsResponse {
    app.consultations()
        .list_consultations(req(
            token,
            ListConsultationsRequest {
                query: query.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list consultations")
        .into_inner()
}

pub async fn create(app: &TestApp, token: &str, tracking: &str) -> Incident {
    app.incidents()
        .create_incident(req(token, new_incident(tracking)))
        .await
        .expect("create incident")
        .into_inner()
}

pub async fn change(
    app: &TestApp,
    token: &str,
    incident: &Incident,
    to: IncidentStatus,
) -> Result<Incident, Status> {
    let (reason, comment) = match to {
        IncidentStatus::Finalized => (ResolutionReason::Resolved, ""),
        IncidentStatus::Declined => (ResolutionReason::CarrierRejected, ""),
        IncidentStatus::MissingData => (ResolutionReason::Unspecified, "Falta la foto del paquete"),
        _ => (ResolutionReason::Unspecified, ""),
    };
    app.incidents()
        .change_incident_status(req(
            token,
            ChangeIncidentStatusRequest {
                id: incident.id.clone(),
                status: to as i32,
                expected_version: incident.version,
                reason: reason as i32,
                comment: comment.into(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// Files an incident and walks it, as an agent, into `status`.
pub async fn incident_in(app: &TestApp, requester: &str, status: IncidentStatus) -> Incident {
    use IncidentStatus::*;
    let agent = agent();
    let created = create(app, requester, "EST-0001").await;
    let path: &[IncidentStatus] = match status {
        NewTicket => &[],
        MissingData => &[MissingData],
        InProgress => &[InProgress],
        PreApproved => &[InProgress, PreApproved],
        Finalized => &[InProgress, Finalized],
        Declined => &[Declined],
        Cancelled => &[Cancelled],
        Unspecified => panic!("no such status"),
    };
    let mut current = created;
    for step in path {
        current = change(app, &agent, &current, *step)
            .await
            .expect("walk to status");
    }
    assert_eq!(current.status, status as i32);
    current
}

#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Err(status) if status.code() == code => status,
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

/// The field names of an INVALID_ARGUMENT's BadRequest details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// How many incidents there are, as an agent lists them.
pub async fn incident_count(app: &TestApp) -> i64 {
    app.incidents()
        .list_incidents(req(&agent(), ListIncidentsRequest::default()))
        .await
        .expect("list incidents")
        .into_inner()
        .total_size
}

pub async fn get(app: &TestApp, token: &str, id: &str) -> Incident {
    app.incidents()
        .get_incident(req(
            token,
            GetIncidentRequest {
                lookup: Some(get_incident_request::Lookup::Id(id.into())),
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

pub async fn events(app: &TestApp, token: &str, id: &str) -> Vec<TicketEvent> {
    app.incidents()
        .list_ticket_events(req(
            token,
            ListTicketEventsRequest {
                ticket_id: id.into(),
                after_sequence: 0,
                page_size: 500,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events
}

/// A clock the test sets by hand.
pub struct ManualClock(std::sync::Mutex<chrono::DateTime<chrono::Utc>>);

impl ManualClock {
    pub fn at(rfc3339: &str) -> Arc<Self> {
        let at = chrono::DateTime::parse_from_rfc3339(rfc3339)
            .expect("rfc3339")
            .to_utc();
        Arc::new(Self(std::sync::Mutex::new(at)))
    }

    pub fn set(&self, rfc3339: &str) {
        *self.0.lock().unwrap() = chrono::DateTime::parse_from_rfc3339(rfc3339)
            .expect("rfc3339")
            .to_utc();
    }
}

impl ticketd::domain::clock::Clock for ManualClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}

impl TestApp {
    /// Stops the server and starts a new one on the same database (a
    /// restart), with adjusted settings; the app's channel then reaches it.
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut Settings)) {
        self.server.stop().await;
        let mut settings = settings(&self.database_url);
        configure(&mut settings);
        let (channel, server) = start(settings).await;
        self.channel = channel;
        self.server = server;
    }
}

impl Replica {
    /// Stops this replica and waits for it: once this returns it writes
    /// nothing more (its pool is closed).
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }
}

/// Polls `check` every 50 ms until it gives a value; fails after `limit`
/// saying what was awaited.
pub async fn wait_for<T, Fut>(
    what: &str,
    limit: std::time::Duration,
    mut check: impl FnMut() -> Fut,
) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    tokio::time::timeout(limit, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited {limit:?} for {what}"))
}

/// The next `n` events of a watch stream, skipping progress messages; fails
/// if they have not all come within 15 s, saying what was awaited.
pub async fn next_events(
    stream: &mut tonic::Streaming<WatchResponse>,
    n: usize,
    what: &str,
) -> Vec<TicketEvent> {
    use tokio_stream::StreamExt;
    let mut events = vec![];
    let limit = std::time::Duration::from_secs(15);
    // One deadline for all of them: progress messages must not extend it.
    let read = tokio::time::timeout(limit, async {
        while events.len() < n {
            let message = stream
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream of {what} ended"))
                .unwrap_or_else(|status| panic!("the stream of {what} failed: {status:?}"));
            if let Some(watch_response::Kind::Event(e)) = message.kind {
                events.push(e);
            }
        }
    })
    .await;
    if read.is_err() {
        panic!(
            "waited {limit:?} for {what}: got {} of {n} events: {events:?}",
            events.len()
        );
    }
    events
}

/// The sequences of `events`.
pub fn sequence_numbers(events: &[TicketEvent]) -> Vec<u64> {
    events.iter().map(|e| e.sequence).collect()
}

/// The body of a comment_added event, or a panic naming what it was.
#[track_caller]
pub fn comment_body(event: &TicketEvent) -> &str {
    match &event.payload {
        Some(ticket_event::Payload::CommentAdded(c)) => &c.comment.as_ref().expect("comment").body,
        other => panic!("expected a comment_added event, got {other:?}"),
    }
}

/// WatchNotifications from `after` as `token`.
pub async fn notification_feed(
    channel: &Channel,
    token: &str,
    after: u64,
) -> tonic::Streaming<WatchResponse> {
    notification_service_client::NotificationServiceClient::new(channel.clone())
        .watch_notifications(req(
            token,
            WatchNotificationsRequest {
                after_sequence: after,
            },
        ))
        .await
        .expect("watch notifications")
        .into_inner()
}

/// Adds a comment through the incident or consultation service, by ticket type.
pub async fn add_comment(
    app: &TestApp,
    token: &str,
    ticket: (TicketType, &str),
    body: &str,
    internal: bool,
) -> Result<Comment, Status> {
    let request = req(
        token,
        AddCommentRequest {
            ticket_id: ticket.1.into(),
            body: body.into(),
            internal,
        },
    );
    match ticket.0 {
        TicketType::Consultation => app.consultations().add_comment(request).await,
        _ => app.incidents().add_comment(request).await,
    }
    .map(|r| r.into_inner())
}

/// A consultation of `category` filed by `token`.
pub async fn consult(app: &TestApp, token: &str, category: &str) -> Consultation {
    app.consultations()
        .create_consultation(req(
            token,
            CreateConsultationRequest {
                category: category.into(),
                description: format!("Consulta de {category}"),
                order_reference: "PED-1".into(),
                idempotency_key: String::new(),
                contact_email: String::new(),
            },
        ))
        .await
        .expect("create consultation")
        .into_inner()
}
