//! ExportReport: the streamed bytes are a real .xlsx that calamine opens.
use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use ticketd::pb::*;
use tokio_stream::StreamExt;
use tonic::Code;

use crate::helpers::*;

/// The header and the reassembled file; asserts the stream's shape.
async fn export_incidents(
    app: &TestApp,
    token: &str,
    request: ExportIncidentsRequest,
) -> Result<(ExportHeader, Vec<u8>), tonic::Status> {
    let mut stream = app
        .incidents()
        .export_report(req(token, request))
        .await?
        .into_inner();
    collect(&mut stream).await
}

async fn collect(
    stream: &mut tonic::Streaming<ExportReportResponse>,
) -> Result<(ExportHeader, Vec<u8>), tonic::Status> {
    collect_pausing(stream, std::time::Duration::ZERO).await
}

/// The header and the file's bytes, as a client that waits `pause` after each chunk.
async fn collect_pausing(
    stream: &mut tonic::Streaming<ExportReportResponse>,
    pause: std::time::Duration,
) -> Result<(ExportHeader, Vec<u8>), tonic::Status> {
    let header = match stream.next().await.expect("a first message")?.kind {
        Some(export_report_response::Kind::Header(h)) => h,
        other => panic!("the first message is the header, got {other:?}"),
    };
    let mut bytes = vec![];
    while let Some(message) = stream.next().await {
        match message?.kind {
            Some(export_report_response::Kind::Data(chunk)) => {
                assert!(
                    !chunk.is_empty() && chunk.len() <= 64 * 1024,
                    "chunk of {} bytes",
                    chunk.len()
                );
                bytes.extend(chunk);
                tokio::time::sleep(pause).await;
            }
            other => panic!("only data follows the header, got {other:?}"),
        }
    }
    Ok((header, bytes))
}

/// Creates `n` incidents for account acme whose 9,000-character descriptions
/// are random text, which compression barely shrinks.
async fn create_with_random_text(app: &TestApp, n: usize) {
    let store = requester("acme");
    for i in 0..n {
        let mut request = new_incident(&format!("EST-{i}"));
        request.description = (0..260)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect::<Vec<_>>()
            .join(" ")[..9_000]
            .to_owned();
        app.incidents()
            .create_incident(req(&store, request))
            .await
            .unwrap();
    }
}

/// Today in the calendar's time zone, as a report date.
fn today() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Mexico_City)
        .date_naive()
        .to_string()
}

fn sheet(bytes: Vec<u8>) -> calamine::Range<Data> {
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).expect("a valid xlsx");
    book.worksheet_range("Reporte").expect("the Reporte sheet")
}

fn row_strings(range: &calamine::Range<Data>, row: usize) -> Vec<String> {
    (0..range.width())
        .map(|c| {
            range
                .get((row, c))
                .map(|d| d.to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// Every row below the header, as strings.
fn data_rows(range: &calamine::Range<Data>) -> Vec<Vec<String>> {
    (1..range.height()).map(|r| row_strings(range, r)).collect()
}

/// Reads a whole report: its header's row count and its data rows, after
/// checking that the two agree.
pub async fn read_report(
    mut stream: tonic::Streaming<ExportReportResponse>,
) -> (i64, Vec<Vec<String>>) {
    let (header, bytes) = collect(&mut stream).await.expect("a whole report");
    let rows = data_rows(&sheet(bytes));
    assert_eq!(
        header.row_count,
        rows.len() as i64,
        "the header counts the rows the file has"
    );
    (header.row_count, rows)
}

fn range(from: &str, to: &str) -> ExportIncidentsRequest {
    ExportIncidentsRequest {
        from_date: from.into(),
        to_date: to.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_incident_report_opens_with_its_header_rows_values_and_real_dates() {
    // 10:30 in Mexico City (UTC-6).
    let clock = ManualClock::at("2026-11-10T16:30:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let store = requester("acme");
    let first = create(&app, &store, "EST-100").await;
    app.incidents()
        .assign_incident(req(
            &agent(),
            AssignIncidentRequest {
                id: first.id.clone(),
                assignee_id: "ana".into(),
                assignee_name: "Ana López".into(),
                expected_version: 1,
                assignee_email: String::new(),
            },
        ))
        .await
        .unwrap();
    let second = create(&app, &store, "EST-200").await;
    let second = change(&app, &agent(), &second, IncidentStatus::InProgress)
        .await
        .unwrap();
    change(&app, &agent(), &second, IncidentStatus::Finalized)
        .await
        .unwrap();

    let (header, bytes) = export_incidents(&app, &agent(), range("2026-11-01", "2026-11-30"))
        .await
        .unwrap();
    assert_eq!(header.file_name, "incidencias_2026-11-01_2026-11-30.xlsx");
    assert_eq!(
        header.content_type,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(header.row_count, 2);
    let sheet = sheet(bytes);
    assert_eq!(sheet.height(), 3);
    assert_eq!(
        row_strings(&sheet, 0),
        [
            "No.",
            "Estatus",
            "Tipo",
            "Guía",
            "Categoría",
            "Paquetería",
            "Asesor",
            "Fecha de ticket",
            "Fecha estimada",
            "Resolución"
        ]
    );
    assert_eq!(sheet.get((1, 0)), Some(&Data::Float(1.0)));
    assert_eq!(
        row_strings(&sheet, 1)[1..7],
        [
            "Nuevo ticket",
            "Envío",
            "EST-100",
            "Paquete dañado",
            "Estafeta",
            "Ana López"
        ]
    );
    match sheet.get((1, 7)) {
        Some(Data::DateTime(d)) => {
            assert_eq!(
                d.as_datetime().unwrap().to_string(),
                "2026-11-10 10:30:00",
                "local time in Mexico City"
            );
        }
        other => panic!("Fecha de ticket is a date, got {other:?}"),
    }
    match sheet.get((1, 8)) {
        Some(Data::DateTime(d)) => assert_eq!(
            d.as_datetime().unwrap().to_string(),
            "2026-12-01 10:30:00",
            "21 days later"
        ),
        other => panic!("Fecha estimada is a date, got {other:?}"),
    }
    // No resolution yet: an empty cell, not "null".
    assert!(matches!(sheet.get((1, 9)), None | Some(Data::Empty)));
    assert_eq!(row_strings(&sheet, 2)[1], "Finalizado");
    assert_eq!(row_strings(&sheet, 2)[9], "Resuelto");
    assert!(
        matches!(sheet.get((2, 6)), None | Some(Data::Empty)),
        "no assignee: empty cell"
    );
}

#[tokio::test]
async fn the_date_range_is_inclusive_in_the_calendars_time_zone() {
    let clock = ManualClock::at("2026-10-31T05:59:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let store = requester("acme");
    // Mexico City is UTC-6: local 23:59 Oct 30, 00:00 Nov 1, 23:59 Nov 30, 00:00 Dec 1.
    for (at, tracking) in [
        ("2026-10-31T05:59:00Z", "BEFORE"),
        ("2026-11-01T06:00:00Z", "FIRST"),
        ("2026-12-01T05:59:59Z", "LAST"),
        ("2026-12-01T06:00:00Z", "AFTER"),
    ] {
        clock.set(at);
        create(&app, &store, tracking).await;
    }
    let (header, bytes) = export_incidents(&app, &store, range("2026-11-01", "2026-11-30"))
        .await
        .unwrap();
    assert_eq!(header.row_count, 2);
    let sheet = sheet(bytes);
    let trackings: Vec<_> = (1..sheet.height())
        .map(|r| row_strings(&sheet, r)[3].clone())
        .collect();
    assert_eq!(trackings, ["FIRST", "LAST"]);
}

#[tokio::test]
async fn columns_can_be_chosen_and_labelled_in_english() {
    let app = TestApp::spawn().await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    let today = today();
    let mut request = range(&today, &today);
    request.columns = vec![
        "tracking_number".into(),
        "status".into(),
        "description".into(),
        "claimed_amount".into(),
    ];
    request.locale = "en".into();
    let (header, bytes) = export_incidents(&app, &agent(), request).await.unwrap();
    assert_eq!(header.file_name, format!("incidents_{today}_{today}.xlsx"));
    let sheet = sheet(bytes);
    assert_eq!(
        row_strings(&sheet, 0),
        ["Tracking number", "Status", "Description", "Claimed amount"]
    );
    assert_eq!(
        row_strings(&sheet, 1)[..3],
        [
            incident.tracking_number.as_str(),
            "New ticket",
            incident.description.as_str()
        ]
    );
    assert_eq!(sheet.get((1, 3)), Some(&Data::Float(1250.5)));
}

#[tokio::test]
async fn a_requester_exports_only_its_accounts_incidents_and_filters_apply() {
    let app = TestApp::spawn().await;
    let (a, b) = (requester("acme"), requester("globex"));
    create(&app, &a, "ACME-1").await;
    let acme_2 = create(&app, &a, "ACME-2").await;
    create(&app, &b, "GLOBEX-1").await;
    change(&app, &agent(), &acme_2, IncidentStatus::InProgress)
        .await
        .unwrap();
    let today = today();
    let (header, bytes) = export_incidents(&app, &a, range(&today, &today))
        .await
        .unwrap();
    assert_eq!(header.row_count, 2);
    let own = sheet(bytes);
    let trackings: Vec<_> = (1..own.height())
        .map(|r| row_strings(&own, r)[3].clone())
        .collect();
    assert_eq!(trackings, ["ACME-1", "ACME-2"]);
    let mut filtered = range(&today, &today);
    filtered.filter = Some(ListIncidentsRequest {
        stage: IncidentStage::InReview as i32,
        ..Default::default()
    });
    let (header, bytes) = export_incidents(&app, &agent(), filtered).await.unwrap();
    let rows = data_rows(&sheet(bytes));
    assert_eq!(
        header.row_count,
        rows.len() as i64,
        "the count is the rows'"
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0][1].as_str(), rows[0][3].as_str()),
        ("En curso", "ACME-2"),
        "the one incident in review"
    );
    // Filters that match several, or none: the count still is the rows'.
    for (filter, trackings) in [
        (
            ListIncidentsRequest {
                stage: IncidentStage::New as i32,
                ..Default::default()
            },
            vec!["ACME-1", "GLOBEX-1"],
        ),
        (
            ListIncidentsRequest {
                query: "globex".into(),
                ..Default::default()
            },
            vec!["GLOBEX-1"],
        ),
        (
            ListIncidentsRequest {
                carrier: "dhl".into(),
                ..Default::default()
            },
            vec![],
        ),
    ] {
        let mut request = range(&today, &today);
        request.filter = Some(filter.clone());
        let (header, bytes) = export_incidents(&app, &agent(), request).await.unwrap();
        let rows = data_rows(&sheet(bytes));
        assert_eq!(header.row_count, rows.len() as i64, "{filter:?}");
        let got: Vec<_> = rows.iter().map(|r| r[3].as_str()).collect();
        assert_eq!(got, trackings, "{filter:?}");
    }
}

#[tokio::test]
async fn large_reports_arrive_in_chunks_of_at_most_64_kib() {
    let app = TestApp::spawn().await;
    // Compression leaves a file of several chunks.
    create_with_random_text(&app, 25).await;
    let today = today();
    let mut request = range(&today, &today);
    request.columns = vec!["number".into(), "description".into()];
    let mut stream = app
        .incidents()
        .export_report(req(&agent(), request))
        .await
        .unwrap()
        .into_inner();
    let mut chunks = 0;
    let mut bytes = vec![];
    let _header = stream.next().await.unwrap().unwrap();
    while let Some(message) = stream.next().await {
        if let Some(export_report_response::Kind::Data(chunk)) = message.unwrap().kind {
            assert!(chunk.len() <= 64 * 1024);
            chunks += 1;
            bytes.extend(chunk);
        }
    }
    assert!(chunks >= 2, "{chunks} chunks for {} bytes", bytes.len());
    assert_eq!(sheet(bytes).height(), 26);
}

#[tokio::test]
async fn bad_report_requests_name_the_field() {
    let app = TestApp::spawn().await;
    let cases = [
        (range("2026-11-30", "2026-11-01"), "from_date"),
        (range("30/11/2026", "2026-12-01"), "from_date"),
        (range("2026-11-01", ""), "to_date"),
        (range("2020-01-01", "2026-01-01"), "to_date"),
        (
            ExportIncidentsRequest {
                locale: "fr".into(),
                ..range("2026-11-01", "2026-11-02")
            },
            "locale",
        ),
        (
            ExportIncidentsRequest {
                columns: vec!["number".into(), "salary".into()],
                ..range("2026-11-01", "2026-11-02")
            },
            "columns[1]",
        ),
        (
            // One more column than a report has.
            ExportIncidentsRequest {
                columns: ALL_INCIDENT_COLUMNS
                    .iter()
                    .chain(&["number"])
                    .map(|c| c.to_string())
                    .collect(),
                ..range("2026-11-01", "2026-11-02")
            },
            "columns",
        ),
        (
            ExportIncidentsRequest {
                filter: Some(ListIncidentsRequest {
                    page_size: -1,
                    ..Default::default()
                }),
                ..range("2026-11-01", "2026-11-02")
            },
            "page_size",
        ),
    ];
    for (request, field) in cases {
        let status = match app
            .incidents()
            .export_report(req(&agent(), request.clone()))
            .await
        {
            Err(status) => status,
            Ok(response) => response.into_inner().next().await.unwrap().unwrap_err(),
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
        assert_eq!(violated_fields(&status), [field], "{request:?}");
    }
}

#[tokio::test]
async fn a_consultation_report_has_its_own_columns() {
    let clock = ManualClock::at("2026-11-10T16:30:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let driver = requester("driver-1");
    for category in ["order_status", "earnings_difference"] {
        app.consultations()
            .create_consultation(req(
                &driver,
                CreateConsultationRequest {
                    category: category.into(),
                    description: "Ayuda".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    let request = ExportConsultationsRequest {
        from_date: "2026-11-10".into(),
        to_date: "2026-11-10".into(),
        ..Default::default()
    };
    let mut stream = app
        .consultations()
        .export_report(req(&driver, request))
        .await
        .unwrap()
        .into_inner();
    let (header, bytes) = collect(&mut stream).await.unwrap();
    assert_eq!(header.file_name, "consultas_2026-11-10_2026-11-10.xlsx");
    assert_eq!(header.row_count, 2);
    let sheet = sheet(bytes);
    assert_eq!(
        row_strings(&sheet, 0),
        [
            "No.",
            "Estado",
            "Complejidad",
            "Título",
            "Descripción",
            "Asesor",
            "Fecha",
            "Vence",
            "Solución"
        ]
    );
    assert!(
        matches!(sheet.get((1, 0)), None | Some(Data::Empty)),
        "a SIMPLE consultation has no number"
    );
    assert_eq!(
        row_strings(&sheet, 1)[1..4],
        ["Recepcionado", "Simple", "Consultar el estado de un pedido"]
    );
    assert_eq!(sheet.get((2, 0)), Some(&Data::Float(1.0)));
    match sheet.get((2, 7)) {
        Some(Data::DateTime(d)) => assert_eq!(
            d.as_datetime().unwrap().to_string(),
            "2026-11-12 10:30:00",
            "due in 48 h"
        ),
        other => panic!("Vence is a date, got {other:?}"),
    }
}

/// Whether an export's read snapshot is still open on the database: on
/// PostgreSQL a transaction on another connection; on SQLite a reader that
/// keeps a passive checkpoint from copying the whole WAL back.
async fn a_snapshot_is_open(db: &sea_orm::DatabaseConnection) -> bool {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND xact_start IS NOT NULL \
             AND pid <> pg_backend_pid()"
        }
        _ => "PRAGMA wal_checkpoint(PASSIVE)",
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .unwrap();
    match backend {
        DbBackend::Postgres => row.try_get::<i64>("", "n").unwrap() > 0,
        _ => {
            let (log, copied) = (
                row.try_get_by_index::<i64>(1).unwrap(),
                row.try_get_by_index::<i64>(2).unwrap(),
            );
            copied < log
        }
    }
}

/// 300 incidents with random text, the request of their report (~1.3 MB, far
/// larger than the server's buffers and the client's windows hold) and a
/// client whose HTTP/2 stream windows (64 KiB) hold only a little of it.
async fn a_large_report(
    app: &TestApp,
) -> (
    ExportIncidentsRequest,
    incident_service_client::IncidentServiceClient<tonic::transport::Channel>,
) {
    create_with_random_text(app, 300).await;
    let today = today();
    let mut request = range(&today, &today);
    request.columns = vec!["number".into(), "description".into()];
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr()))
        .unwrap()
        .initial_stream_window_size(65_535)
        // Wide enough for every stalled stream's window: they share it.
        .initial_connection_window_size(16 << 20)
        .connect()
        .await
        .unwrap();
    (
        request,
        incident_service_client::IncidentServiceClient::new(channel),
    )
}

/// Waits (up to 10 s) until no export holds a read snapshot, then checks
/// that a report of `rows` rows runs again (its slot is free).
async fn exports_let_go(
    app: &TestApp,
    db: &sea_orm::DatabaseConnection,
    request: ExportIncidentsRequest,
    rows: i64,
    why: &str,
) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while a_snapshot_is_open(db).await {
        assert!(tokio::time::Instant::now() < deadline, "{why}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (header, bytes) = export_incidents(app, &agent(), request).await.unwrap();
    assert_eq!(header.row_count, rows);
    assert_eq!(sheet(bytes).height(), rows as usize + 1);
}

/// Reports a server runs at once, as the README and the proto document it
/// (written here, not taken from the code, so that a change to it shows).
const SERVER_LIMIT: usize = 4;
/// Reports one account (or one agent) runs at once, as documented.
const PER_ACCOUNT_LIMIT: usize = 2;

/// Agent number `i` (each counts against its own share of the report slots).
fn agent_n(i: usize) -> String {
    token("agent", &format!("agent-{i}"), None)
}

/// Opens an export as `caller` and reads its header and first chunk, then leaves it.
async fn a_stalled_export(
    client: &mut incident_service_client::IncidentServiceClient<tonic::transport::Channel>,
    caller: &str,
    request: &ExportIncidentsRequest,
) -> tonic::Streaming<ExportReportResponse> {
    let mut stream = client
        .export_report(req(caller, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let _header = stream.next().await.unwrap().unwrap();
    let _first_chunk = stream.next().await.unwrap().unwrap();
    stream
}

#[tokio::test]
async fn exports_are_limited_and_a_cancelled_one_lets_go_of_its_snapshot() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let (request, mut slow) = a_large_report(&app).await;
    let mut stalled = vec![];
    // One account cannot take every slot: past its share it is refused...
    for _ in 0..PER_ACCOUNT_LIMIT {
        stalled.push(a_stalled_export(&mut slow, &store, &request).await);
    }
    let refused = app
        .incidents()
        .export_report(req(&store, request.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("your reports"), "{refused:?}");
    // ... while others still get theirs, up to the server's limit.
    for i in PER_ACCOUNT_LIMIT..SERVER_LIMIT {
        stalled.push(a_stalled_export(&mut slow, &agent_n(i), &request).await);
    }
    // Then one more is refused, whoever asks, while they wait for their clients.
    let refused = app
        .incidents()
        .export_report(req(&agent(), request.clone()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("reports are already being exported")
            && !refused.message().contains("your"),
        "the server-wide limit: {refused:?}"
    );
    // A write after the exports' snapshots, so that on SQLite their readers hold back the checkpoint.
    create(&app, &store, "EST-LATE").await;
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    assert!(
        a_snapshot_is_open(&db).await,
        "the exports are still running while their clients wait"
    );
    // Their clients cancel: the snapshots go, and exports run again.
    drop(stalled);
    exports_let_go(
        &app,
        &db,
        request,
        301,
        "the exports kept their snapshots 10 s after their clients cancelled",
    )
    .await;
}

#[tokio::test]
async fn an_export_whose_client_stops_reading_is_abandoned_and_ends_aborted() {
    let app =
        TestApp::spawn_with(|s| s.export_stall_timeout = std::time::Duration::from_secs(1)).await;
    let store = requester("acme");
    let (request, mut slow) = a_large_report(&app).await;

    // A slow reader that keeps taking data (a pause under the timeout between
    // chunks) gets the whole file.
    let mut reading = slow
        .export_report(req(&agent(), request.clone()))
        .await
        .unwrap()
        .into_inner();
    let (header, bytes) = collect_pausing(&mut reading, std::time::Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(header.row_count, 300);
    assert_eq!(sheet(bytes).height(), 301);

    // Clients that stop reading but stay connected: their exports are
    // abandoned after the timeout and their snapshots released, while the
    // streams are still open.
    let mut stalled = vec![];
    for i in 0..SERVER_LIMIT {
        stalled.push(a_stalled_export(&mut slow, &agent_n(i), &request).await);
    }
    create(&app, &store, "EST-LATE").await;
    let db = sea_orm::Database::connect(&app.database_url).await.unwrap();
    exports_let_go(
        &app,
        &db,
        request,
        301,
        "stalled exports kept their snapshots 10 s past a 1 s stall timeout",
    )
    .await;
    // A stalled client that reads on gets what was queued, then ABORTED:
    // never a short file that ends as if it were whole.
    let mut stream = stalled.pop().unwrap();
    let mut received = 0;
    let status = loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next());
        match next.await.expect("the abandoned export ends within 30 s") {
            Some(Ok(message)) => {
                let Some(export_report_response::Kind::Data(chunk)) = message.kind else {
                    panic!("only data follows the header");
                };
                received += chunk.len();
            }
            Some(Err(status)) => break status,
            None => panic!("the abandoned export ended cleanly after {received} bytes"),
        }
    };
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(status.message().contains("took no data"), "{status:?}");
}

#[tokio::test]
async fn the_reports_estimated_date_is_the_one_the_api_shows_while_waiting_for_data() {
    // Filed Friday 17:00 in Mexico City, asked for data at once, still
    // waiting 30 hours later: the estimate has moved on by those 30 hours.
    let clock = ManualClock::at("2026-11-06T23:00:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let incident = create(&app, &requester("acme"), "EST-1").await;
    change(&app, &agent(), &incident, IncidentStatus::MissingData)
        .await
        .unwrap();
    clock.set("2026-11-08T05:00:00Z");
    let shown = get(&app, &agent(), &incident.id)
        .await
        .estimated_resolution_at
        .unwrap();
    assert_eq!(
        shown.seconds - incident.estimated_resolution_at.unwrap().seconds,
        30 * 3600,
        "the API's estimate moves on while the incident waits"
    );
    let (_, bytes) = export_incidents(
        &app,
        &agent(),
        ExportIncidentsRequest {
            columns: vec!["number".into(), "estimated_resolution_at".into()],
            ..range("2026-11-06", "2026-11-06")
        },
    )
    .await
    .unwrap();
    let sheet = sheet(bytes);
    let expected = chrono::DateTime::from_timestamp(shown.seconds, 0)
        .unwrap()
        .with_timezone(&chrono_tz::America::Mexico_City)
        .naive_local();
    match sheet.get((1, 1)) {
        Some(Data::DateTime(d)) => assert_eq!(d.as_datetime().unwrap(), expected),
        other => panic!("Fecha estimada is a date, got {other:?}"),
    }
}

/// Every column code of each report, in the order the README lists them.
const ALL_INCIDENT_COLUMNS: [&str; 17] = [
    "number",
    "status",
    "kind",
    "tracking_number",
    "category",
    "carrier",
    "assignee",
    "created_at",
    "estimated_resolution_at",
    "resolution",
    "description",
    "account",
    "requester",
    "shipped_at",
    "claimed_amount",
    "currency",
    "resolved_at",
];
const ALL_CONSULTATION_COLUMNS: [&str; 12] = [
    "number",
    "status",
    "complexity",
    "title",
    "description",
    "assignee",
    "created_at",
    "due_at",
    "solved_at",
    "category",
    "order_reference",
    "account",
];

#[tokio::test]
async fn comments_never_appear_in_a_report_whoever_exports_it_with_every_column() {
    let app = TestApp::spawn().await;
    let store = requester("acme");
    let driver = requester("driver-1");
    let public = "COMENTARIO-PUBLICO";
    let internal = "NOTA-INTERNA";
    let with_change = "COMENTARIO-AL-CERRAR";
    let incident = create(&app, &store, "EST-1").await;
    let consultation = consult(&app, &driver, "delivery_not_acknowledged").await;
    for ticket in [
        (TicketType::Incident, incident.id.as_str()),
        (TicketType::Consultation, consultation.id.as_str()),
    ] {
        add_comment(&app, &agent(), ticket, public, false)
            .await
            .unwrap();
        add_comment(&app, &agent(), ticket, internal, true)
            .await
            .unwrap();
    }
    // A comment given with a status change is a comment too.
    let incident = change(&app, &agent(), &incident, IncidentStatus::InProgress)
        .await
        .unwrap();
    app.incidents()
        .change_incident_status(req(
            &agent(),
            ChangeIncidentStatusRequest {
                id: incident.id.clone(),
                status: IncidentStatus::Finalized as i32,
                expected_version: incident.version,
                reason: ResolutionReason::Resolved as i32,
                comment: with_change.into(),
            },
        ))
        .await
        .unwrap();
    app.consultations()
        .change_consultation_status(req(
            &agent(),
            ChangeConsultationStatusRequest {
                id: consultation.id.clone(),
                status: ConsultationStatus::InProgress as i32,
                expected_version: consultation.version,
                comment: with_change.into(),
            },
        ))
        .await
        .unwrap();
    let today = today();
    let leaks = |rows: &[Vec<String>]| -> Vec<String> {
        rows.iter()
            .flatten()
            .filter(|cell| {
                [public, internal, with_change]
                    .iter()
                    .any(|b| cell.contains(b))
            })
            .cloned()
            .collect()
    };
    for token in [agent(), store] {
        let mut request = range(&today, &today);
        request.columns = ALL_INCIDENT_COLUMNS.map(String::from).to_vec();
        let stream = app
            .incidents()
            .export_report(req(&token, request))
            .await
            .unwrap()
            .into_inner();
        let (count, rows) = read_report(stream).await;
        assert_eq!(count, 1);
        assert_eq!(rows[0][1], "Finalizado");
        assert_eq!(leaks(&rows), Vec::<String>::new(), "incident report");
    }
    for token in [agent(), driver] {
        let stream = app
            .consultations()
            .export_report(req(
                &token,
                ExportConsultationsRequest {
                    from_date: today.clone(),
                    to_date: today.clone(),
                    columns: ALL_CONSULTATION_COLUMNS.map(String::from).to_vec(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let (count, rows) = read_report(stream).await;
        assert_eq!(count, 1);
        assert_eq!(rows[0][1], "En curso");
        assert_eq!(leaks(&rows), Vec::<String>::new(), "consultation report");
    }
}

#[tokio::test]
async fn a_report_covers_at_most_366_days() {
    let app = TestApp::spawn().await;
    // Inclusive ranges: 366 days, across a leap day and not.
    for (from, to) in [("2025-01-01", "2026-01-01"), ("2024-01-01", "2024-12-31")] {
        let (header, _) = export_incidents(&app, &agent(), range(from, to))
            .await
            .unwrap_or_else(|s| panic!("{from}..{to} (366 days) is refused: {s:?}"));
        assert_eq!(header.file_name, format!("incidencias_{from}_{to}.xlsx"));
    }
    // 367 days.
    for (from, to) in [("2025-01-01", "2026-01-02"), ("2024-01-01", "2025-01-01")] {
        let status = match app
            .incidents()
            .export_report(req(&agent(), range(from, to)))
            .await
        {
            Err(status) => status,
            Ok(response) => response.into_inner().next().await.unwrap().unwrap_err(),
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{from}..{to}");
        assert_eq!(violated_fields(&status), ["to_date"], "{from}..{to}");
        assert!(status.message().contains("366"), "{status:?}");
    }
}

#[tokio::test]
async fn the_extra_incident_columns_hold_description_amount_and_the_rest() {
    let clock = ManualClock::at("2026-11-10T16:30:00Z");
    let app = TestApp::spawn_with(|s| s.clock = clock.clone()).await;
    let store = requester("acme");
    let mut claimed = new_incident("EST-1");
    claimed.description = "Caja abierta.\nFaltan 2 piezas; el cliente pide reposición".into();
    claimed.claimed_amount = Some(Money {
        amount: "98765.43".into(),
        currency: "USD".into(),
    });
    // 2026-11-05 09:15 in Mexico City.
    claimed.shipped_at = Some(prost_types::Timestamp {
        seconds: chrono::DateTime::parse_from_rfc3339("2026-11-05T15:15:00Z")
            .unwrap()
            .timestamp(),
        nanos: 0,
    });
    let first = app
        .incidents()
        .create_incident(req(&store, claimed.clone()))
        .await
        .unwrap()
        .into_inner();
    let mut bare = new_incident("EST-2");
    bare.claimed_amount = None;
    let second = app
        .incidents()
        .create_incident(req(&store, bare))
        .await
        .unwrap()
        .into_inner();
    clock.set("2026-11-11T18:00:00Z");
    let second = change(&app, &agent(), &second, IncidentStatus::Cancelled)
        .await
        .unwrap();
    assert!(second.resolved_at.is_some());
    let mut request = range("2026-11-10", "2026-11-10");
    request.columns = [
        "number",
        "description",
        "claimed_amount",
        "currency",
        "account",
        "requester",
        "shipped_at",
        "resolved_at",
    ]
    .map(String::from)
    .to_vec();
    let (header, bytes) = export_incidents(&app, &agent(), request).await.unwrap();
    assert_eq!(header.row_count, 2);
    let sheet = sheet(bytes);
    assert_eq!(sheet.height(), 3);
    assert_eq!(
        row_strings(&sheet, 0),
        [
            "No.",
            "Descripción",
            "Monto reclamado",
            "Moneda",
            "Cuenta",
            "Solicitante",
            "Fecha de envío",
            "Fecha de resolución"
        ]
    );
    assert_eq!(sheet.get((1, 0)), Some(&Data::Float(first.number as f64)));
    assert_eq!(
        sheet.get((1, 1)),
        Some(&Data::String(claimed.description.clone())),
        "the whole description, as text"
    );
    assert_eq!(
        sheet.get((1, 2)),
        Some(&Data::Float(98765.43)),
        "the amount is a number"
    );
    assert_eq!(
        row_strings(&sheet, 1)[3..6],
        ["USD", "acme", "store-acme name"]
    );
    let date = |row: usize, column: usize| match sheet.get((row, column)) {
        Some(Data::DateTime(d)) => d.as_datetime().unwrap().to_string(),
        other => panic!("({row}, {column}) is a date, got {other:?}"),
    };
    assert_eq!(date(1, 6), "2026-11-05 09:15:00", "shipped, local time");
    assert!(
        matches!(sheet.get((1, 7)), None | Some(Data::Empty)),
        "not resolved"
    );
    // The second has no amount, currency nor shipping date: empty cells.
    for column in [2, 3, 6] {
        assert!(
            matches!(sheet.get((2, column)), None | Some(Data::Empty)),
            "column {column}: {:?}",
            sheet.get((2, column))
        );
    }
    assert_eq!(date(2, 7), "2026-11-11 12:00:00", "resolved, local time");
}

#[tokio::test]
async fn report_dates_other_than_yyyy_mm_dd_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    for (from, to, field) in [
        ("+2026-11-29", "2026-11-30", "from_date"),
        ("-0001-01-01", "2026-11-30", "from_date"),
        ("2026-3-8", "2026-11-30", "from_date"),
        ("2026-11-01", "2026-11-3", "to_date"),
        ("02026-11-01", "2026-11-30", "from_date"),
        (" 2026-11-01", "2026-11-30", "from_date"),
        ("2026-11-01", "2026-11-30\n", "to_date"),
        ("2026/11/01", "2026-11-30", "from_date"),
        ("2026-11-31", "2026-12-01", "from_date"),
    ] {
        let request = range(from, to);
        let status = match app
            .incidents()
            .export_report(req(&agent(), request.clone()))
            .await
        {
            Err(status) => status,
            Ok(response) => response
                .into_inner()
                .next()
                .await
                .unwrap()
                .expect_err("a report for a date that is not YYYY-MM-DD"),
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{request:?}");
        assert_eq!(violated_fields(&status), [field], "{request:?}");
    }
    // The strict form is still accepted.
    let mut ok = app
        .incidents()
        .export_report(req(&agent(), range("2026-11-01", "2026-11-30")))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.next().await.unwrap().is_ok());
}
