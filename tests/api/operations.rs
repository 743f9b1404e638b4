//! What operators run ticketd with: Prometheus metrics on their own port,
//! `ticketd health` for container health checks, and JSON log lines. Each
//! test starts `ticketd serve` as a process, since the metrics recorder and
//! the log subscriber are per process.
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use ticketd::pb::incident_service_client::IncidentServiceClient;
use ticketd::pb::*;
use tonic::Code;

use crate::helpers::*;
use crate::process::ServerProcess;

/// `GET /metrics` over a plain HTTP/1.1 connection: the status line must be
/// 200 and the body is returned.
fn scrape(addr: std::net::SocketAddr) -> String {
    let mut socket = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        socket,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).expect("read /metrics");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("text/plain"),
        "Prometheus text format: {head}"
    );
    body.to_owned()
}

/// The value of the sample whose line starts with `name` and carries every
/// one of `labels` (`key="value"`), if there is one.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.split(['{', ' '])
                .next()
                .is_some_and(|metric| metric == name)
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

async fn with_metrics(
    database_url: &str,
    env: &[(&str, &str)],
) -> (ServerProcess, std::net::SocketAddr) {
    let mut env = env.to_vec();
    env.push(("TICKETD_METRICS_LISTEN", "127.0.0.1:0"));
    let server = ServerProcess::start_with_env(database_url, &env).await;
    let addr = server.logged_addr("metrics listening").await;
    (server, addr)
}

const CREATE: &str = r#"method="ticketd.v1.IncidentService/CreateIncident""#;
const GET: &str = r#"method="ticketd.v1.IncidentService/GetIncident""#;
const WATCH: &str = r#"method="ticketd.v1.IncidentService/WatchTicket""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_and_time_every_rpc_by_method_and_status_code() {
    let app = TestApp::spawn().await;
    let (server, metrics) = with_metrics(&app.database_url, &[]).await;
    let mut client = IncidentServiceClient::new(server.channel.clone());
    let store = requester("acme");
    for tracking in ["EST-MET-1", "EST-MET-2"] {
        client
            .create_incident(req(&store, new_incident(tracking)))
            .await
            .expect("create");
    }
    let missing = client
        .get_incident(req(
            &store,
            GetIncidentRequest {
                lookup: Some(get_incident_request::Lookup::Number(999_999)),
            },
        ))
        .await;
    assert_code(missing, Code::NotFound);
    // A method the server does not have is counted, under one label.
    let mut raw = tonic::client::Grpc::new(server.channel.clone());
    raw.ready().await.unwrap();
    let unknown = raw
        .unary::<(), (), _>(
            tonic::Request::new(()),
            "/ticketd.v1.NoSuchService/NoSuchMethod".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_code(unknown, Code::Unimplemented);

    let text = scrape(metrics);
    let ok = r#"code="OK""#;
    assert_eq!(
        sample(&text, "ticketd_grpc_requests_total", &[CREATE, ok]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "ticketd_grpc_requests_total",
            &[GET, r#"code="NOT_FOUND""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "ticketd_grpc_requests_total",
            &[r#"method="unknown""#, r#"code="UNIMPLEMENTED""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains("NoSuchService"),
        "paths that name no method stay out of the labels"
    );
    // A histogram (not a summary): buckets, a count and a sum per method and code.
    let latency = "ticketd_grpc_request_duration_seconds";
    assert_eq!(
        sample(&text, &format!("{latency}_count"), &[CREATE, ok]),
        Some(2.0),
        "{text}"
    );
    assert!(sample(&text, &format!("{latency}_sum"), &[CREATE, ok]).unwrap() > 0.0);
    assert_eq!(
        sample(
            &text,
            &format!("{latency}_bucket"),
            &[CREATE, ok, r#"le="+Inf""#]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("{latency}_count"),
            &[GET, r#"code="NOT_FOUND""#]
        ),
        Some(1.0)
    );
    // State read at scrape time.
    assert_eq!(
        sample(&text, "ticketd_report_slots", &[]),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ticketd_report_slots_in_use", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ticketd_db_pool_max_connections", &[]),
        Some(16.0)
    );
    // The pool opens connections as it needs them, and the one writer (group
    // commit) and the log follower may hold all it has opened: what is
    // certain is that both states are reported and that it has some open.
    let idle = sample(&text, "ticketd_db_pool_connections", &[r#"state="idle""#]);
    let in_use = sample(&text, "ticketd_db_pool_connections", &[r#"state="in_use""#]);
    let open = idle.zip(in_use).map(|(idle, in_use)| idle + in_use);
    assert!(open.is_some_and(|n| (1.0..=16.0).contains(&n)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_streams_and_report_slot_gauges_move_with_streams() {
    let app = TestApp::spawn().await;
    let (server, metrics) = with_metrics(&app.database_url, &[]).await;
    let mut client = IncidentServiceClient::new(server.channel.clone());
    let store = requester("acme");
    let incident = client
        .create_incident(req(&store, new_incident("EST-STREAM")))
        .await
        .unwrap()
        .into_inner();
    let gauge = |text: &str| sample(text, "ticketd_grpc_open_streams", &[WATCH]);

    let mut stream = client
        .watch_ticket(req(
            &store,
            WatchTicketRequest {
                ticket_id: incident.id.clone(),
                after_sequence: 0,
            },
        ))
        .await
        .expect("watch")
        .into_inner();
    next_events(&mut stream, 1, "the created event").await;
    assert_eq!(
        gauge(&scrape(metrics)),
        Some(1.0),
        "one open WatchTicket stream"
    );

    drop(stream);
    wait_for(
        "the gauge back at 0 after the client left",
        Duration::from_secs(10),
        || async { (gauge(&scrape(metrics)) == Some(0.0)).then_some(()) },
    )
    .await;
    // A stream that ended is counted as a request with the code it ended with.
    let text = scrape(metrics);
    assert_eq!(
        sample(
            &text,
            "ticketd_grpc_requests_total",
            &[WATCH, r#"code="CANCELLED""#]
        ),
        Some(1.0),
        "{text}"
    );

    // A report being downloaded is an open stream and holds a report slot.
    // A one-row report is built in milliseconds, so a scraper polls from
    // before the request until it sees both gauges at 1.
    let export = r#"method="ticketd.v1.IncidentService/ExportReport""#;
    let seen = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let text = scrape(metrics);
            if sample(&text, "ticketd_grpc_open_streams", &[export]) == Some(1.0)
                && sample(&text, "ticketd_report_slots_in_use", &[]) == Some(1.0)
            {
                return true;
            }
        }
        false
    });
    let today = chrono::Utc::now().date_naive().to_string();
    let mut report = client
        .export_report(req(
            &agent(),
            ExportIncidentsRequest {
                from_date: today.clone(),
                to_date: today,
                ..Default::default()
            },
        ))
        .await
        .expect("export")
        .into_inner();
    report
        .message()
        .await
        .expect("the header")
        .expect("a header");
    let seen = tokio::task::spawn_blocking(move || seen.join().unwrap())
        .await
        .unwrap();
    assert!(
        seen,
        "the report's stream and slot never showed in the gauges"
    );
    while report.message().await.expect("a chunk").is_some() {}
    wait_for(
        "the report's slot back",
        Duration::from_secs(10),
        || async {
            let text = scrape(metrics);
            (sample(&text, "ticketd_report_slots_in_use", &[]) == Some(0.0)
                && sample(&text, "ticketd_grpc_open_streams", &[export]) == Some(0.0))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_lag_is_measured_when_a_deadline_fires() {
    let app = TestApp::spawn().await;
    // TECHNOLOGY consultations due 1 s after filing: the scheduler sleeps until then.
    let (server, metrics) =
        with_metrics(&app.database_url, &[("TICKETD_TECHNOLOGY_DUE", "1s")]).await;
    let count = |text: &str| sample(text, "ticketd_scheduler_lag_seconds_count", &[]);
    assert_eq!(count(&scrape(metrics)), None, "no deadline has fired yet");
    ticketd::pb::consultation_service_client::ConsultationServiceClient::new(
        server.channel.clone(),
    )
    .create_consultation(req(
        &requester("driver-1"),
        CreateConsultationRequest {
            category: "earnings_difference".into(),
            description: "Mi quincena no cuadra".into(),
            order_reference: String::new(),
            idempotency_key: String::new(),
            contact_email: String::new(),
        },
    ))
    .await
    .expect("create consultation");
    let text = wait_for(
        "the scheduler's lag after the due time",
        Duration::from_secs(15),
        || async {
            let text = scrape(metrics);
            count(&text).is_some_and(|n| n >= 1.0).then_some(text)
        },
    )
    .await;
    let lag = sample(&text, "ticketd_scheduler_lag_seconds_sum", &[]).unwrap();
    assert!((0.0..5.0).contains(&lag), "fired {lag} s late: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_a_metrics_address_is_given() {
    let app = TestApp::spawn().await;
    let server = ServerProcess::start(&app.database_url).await;
    health(&["--addr", &server.addr().to_string()]).expect("serving");
    assert!(
        !server
            .log()
            .iter()
            .any(|line| line.contains("metrics listening")),
        "{:?}",
        server.log()
    );
}

/// Runs `ticketd health ARGS`: Ok(stdout) on exit 0, Err(stdout + stderr) otherwise.
fn health(args: &[&str]) -> Result<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .arg("health")
        .args(args)
        .env_remove("TICKETD_LISTEN")
        .output()
        .expect("run ticketd health");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        Ok(stdout)
    } else {
        assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
        Err(format!("{stdout}{stderr}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticketd_health_exits_zero_only_while_the_server_is_serving() {
    let app = TestApp::spawn().await;
    let mut server = ServerProcess::start(&app.database_url).await;
    let addr = server.addr();
    assert_eq!(
        health(&["--addr", &addr.to_string()]).unwrap().trim(),
        "SERVING"
    );
    // A container listens on 0.0.0.0 and is asked on loopback, with the same setting.
    let everywhere = format!("0.0.0.0:{}", addr.port());
    assert_eq!(health(&["--addr", &everywhere]).unwrap().trim(), "SERVING");
    let service = [
        "--addr",
        &everywhere,
        "--service",
        "ticketd.v1.IncidentService",
    ];
    assert_eq!(health(&service).unwrap().trim(), "SERVING");
    let unknown = health(&["--addr", &everywhere, "--service", "nope.Service"]).unwrap_err();
    assert!(unknown.contains("did not answer"), "{unknown}");

    server.terminate();
    assert!(
        server.wait_exit(Duration::from_secs(15)).is_some(),
        "exited on SIGTERM"
    );
    let down = health(&["--addr", &addr.to_string(), "--timeout", "2s"]).unwrap_err();
    assert!(
        down.contains(&addr.to_string()),
        "names the address it tried: {down}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_requests_trace_id() {
    let app = TestApp::spawn().await;
    let (endpoint, _exported) = crate::telemetry::start_collector().await;
    let server = ServerProcess::start_with_env(
        &app.database_url,
        &[
            ("TICKETD_LOG_FORMAT", "json"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            // The refused token is logged at debug, inside the request's span.
            ("RUST_LOG", "info,ticketd=debug"),
        ],
    )
    .await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let mut request = req("not-a-token", new_incident("EST-JSON"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-b7ad6b7169203331-01")
            .parse()
            .unwrap(),
    );
    let refused = IncidentServiceClient::new(server.channel.clone())
        .create_incident(request)
        .await;
    assert_code(refused, Code::Unauthenticated);

    let line = wait_for(
        "the refusal's log line",
        Duration::from_secs(10),
        || async {
            server
                .log()
                .into_iter()
                .find(|line| line.contains("bearer token refused"))
        },
    )
    .await;
    let lines = server.log();
    for line in &lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            parsed["timestamp"].is_string() && parsed["level"].is_string(),
            "{line}"
        );
    }
    let refusal: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(refusal["level"], "DEBUG");
    assert_eq!(refusal["message"], "bearer token refused");
    assert_eq!(refusal["span"]["trace_id"], trace_id, "{line}");
    assert_eq!(
        refusal["span"]["otel.name"], "ticketd.v1.IncidentService/CreateIncident",
        "{line}"
    );
    assert!(lines.iter().any(|l| l.contains("ticketd listening")));
}

/// The health the server reports for `service`, if it answers.
async fn health_of(channel: &tonic::transport::Channel, service: &str) -> Option<i32> {
    tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_stays_serving_while_the_database_is_away_and_while_draining() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let serving = Some(ServingStatus::Serving as i32);
    let not_serving = Some(ServingStatus::NotServing as i32);
    let app = TestApp::spawn().await;
    let mut server = ServerProcess::start(&app.database_url).await;
    let channel = server.channel.clone();
    assert_eq!(health_of(&channel, "liveness").await, serving);
    if postgres_only("liveness SERVING while readiness is NOT_SERVING for a database outage") {
        app.cut_database(true).await;
        wait_for("readiness NOT_SERVING", Duration::from_secs(30), || async {
            (health_of(&channel, "").await == not_serving).then_some(())
        })
        .await;
        assert_eq!(health_of(&channel, "liveness").await, serving);
        app.cut_database(false).await;
        wait_for(
            "readiness SERVING again",
            Duration::from_secs(30),
            || async { (health_of(&channel, "").await == serving).then_some(()) },
        )
        .await;
    }
    // At SIGTERM the server takes no new calls, so watch both from before.
    let watch = |service: &'static str| {
        let channel = channel.clone();
        async move {
            tonic_health::pb::health_client::HealthClient::new(channel)
                .watch(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .expect("watch health")
                .into_inner()
        }
    };
    let (mut overall, mut liveness) = (watch("").await, watch("liveness").await);
    for stream in [&mut overall, &mut liveness] {
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message()).await;
        assert_eq!(
            first.expect("a first status").unwrap().map(|m| m.status),
            serving
        );
    }
    server.terminate();
    let next = tokio::time::timeout(Duration::from_secs(10), overall.message()).await;
    assert_eq!(
        next.expect("a change after SIGTERM")
            .unwrap()
            .map(|m| m.status),
        not_serving
    );
    // Still draining (the two watches are open streams): liveness has not changed.
    let change = tokio::time::timeout(Duration::from_millis(500), liveness.message()).await;
    assert!(
        change.is_err(),
        "liveness changed while draining: {change:?}"
    );
    assert!(server.wait_exit(Duration::from_secs(15)).is_some());
}
