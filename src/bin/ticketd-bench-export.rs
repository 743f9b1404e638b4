//! Export benchmark: seeds N incidents into a fresh database, runs
//! `ticketd serve` as a child process, downloads ExportReport over gRPC and
//! reports wall time and the server's peak memory growth; then times Python
//! XlsxWriter (constant_memory) writing the same rows, in the same run.
//!
//! `cargo run --release --bin ticketd-bench-export -- --rows 100000 --runs 3`
//! (`--postgres postgres://postgres@127.0.0.1:5432/test` runs it on a fresh
//! PostgreSQL database created next to that one, and dropped after.)
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use ticketd::domain::incident::{Incident, IncidentStatus};
use ticketd::domain::principal::Locale;
use ticketd::pb::incident_service_client::IncidentServiceClient;
use ticketd::pb::{ExportIncidentsRequest, export_report_response};
use ticketd::store::Store;

use ticketd::store::entity::incident;
use ticketd::store::tickets::insert_many;
use tokio_stream::StreamExt;

mod common;
use common::{Server, Target, incident_row, median, token};

const CARRIERS: &[&str] = &[
    "estafeta",
    "dhl",
    "fedex",
    "redpack",
    "paquetexpress",
    "99minutos",
];
const CATEGORIES: &[&str] = &[
    "damaged",
    "lost",
    "delayed",
    "delivered_not_received",
    "returned_to_sender",
];
const STATUSES: &[&str] = &[
    "NEW_TICKET",
    "IN_PROGRESS",
    "PRE_APPROVED",
    "FINALIZED",
    "DECLINED",
];

#[derive(Parser)]
struct Args {
    /// Incidents to seed and export.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Measured runs of each side.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Python interpreter with XlsxWriter installed.
    #[arg(long, default_value = "python3")]
    python: String,
    #[command(flatten)]
    target: Target,
}

fn main() -> anyhow::Result<()> {
    common::bench(|args: &Args| &args.target, ["bench"], run)
}

async fn run(args: &Args, [url]: [&str; 1], dir: &Path) -> anyhow::Result<()> {
    let rows_csv = dir.join("rows.csv");
    seed(url, args.rows, &rows_csv).await?;
    println!("seeded {} incidents", args.rows);

    // Alternate the two, so that a slow spell of this shared machine falls on
    // both alike; each pair gives a ratio.
    let (mut ours, mut python, mut ratios) = (vec![], vec![], vec![]);
    for run in 1..=args.runs {
        let m = export_once(&args.target.server_exe()?, url, dir, args.rows).await?;
        let seconds = python_once(&args.python, &rows_csv, &dir.join("python.xlsx"))?;
        println!(
            "run {run}: ticketd export {:.2} s, peak server memory growth {:.1} MiB, {} bytes; \
             Python XlsxWriter (constant_memory) {seconds:.2} s; {:.1}×",
            m.0,
            m.1,
            m.2,
            seconds / m.0
        );
        ratios.push(seconds / m.0);
        ours.push(m);
        python.push(seconds);
    }
    let ours_time = median(ours.iter().map(|m| m.0).collect());
    let ours_mem = median(ours.iter().map(|m| m.1).collect());
    let py_time = median(python);
    println!();
    println!(
        "| {} rows × 10 columns | median of {} runs |",
        args.rows, args.runs
    );
    println!("|---|---|");
    println!("| ticketd ExportReport over gRPC (query + xlsx + stream) | {ours_time:.2} s |");
    println!("| ticketd server peak memory growth | {ours_mem:.1} MiB |");
    println!("| Python XlsxWriter constant_memory, rows already in memory | {py_time:.2} s |");
    println!(
        "| speed-up vs Python, median of the runs' ratios | {:.1}× |",
        median(ratios)
    );
    Ok(())
}

/// Seeds the incidents and writes the same rows, as the report shows them, to a CSV for Python.
async fn seed(url: &str, rows: usize, csv: &Path) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let catalog = ticketd::store::catalog::load(store.conn()).await?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(csv)?);
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")?.timestamp_micros();
    let now = chrono::Utc::now().timestamp_micros();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..rows {
        let number = i as i64 + 1;
        // Spread over the year, in creation order.
        let created_at = start + (i as i64) * 300_000_000;
        let status = STATUSES[i % STATUSES.len()];
        let estimate = created_at + 21 * 86_400_000_000;
        // As a server that ran all year left them: an open incident past its
        // estimate was marked breached then. (Unmarked, the server's scheduler
        // would spend the benchmark writing tens of thousands of breach events.)
        let open = IncidentStatus::parse(status).is_some_and(|s| !s.is_terminal());
        let breached_at = (open && estimate < now).then_some(estimate);
        let model = incident::Model {
            account: format!("store-{}", i % 50),
            status: status.into(),
            tracking_number: format!("TRK{number:09}"),
            carrier_code: CARRIERS[i % CARRIERS.len()].into(),
            category_code: CATEGORIES[i % CATEGORIES.len()].into(),
            description: format!("Incidencia de prueba {number}"),
            requester_name: "Bench".into(),
            assignee_id: (i % 3 == 0).then(|| "ana".into()),
            assignee_name: (i % 3 == 0).then(|| "Ana López".into()),
            breached_at,
            ..incident_row(number, created_at)
        };
        writeln!(
            out,
            "{},{},Envío,{},{},{},{},{},{}",
            number,
            IncidentStatus::parse(&model.status).map_or("", |s| s.label(Locale::Es)),
            model.tracking_number,
            catalog
                .category_name(&model.category_code)
                .replace(',', " "),
            catalog.carrier_name(&model.carrier_code).replace(',', " "),
            model.assignee_name.as_deref().unwrap_or(""),
            created_at,
            created_at + 21 * 86_400_000_000,
        )?;
        batch.push(model);
        if batch.len() == 1000 {
            insert_many::<Incident>(store.conn(), std::mem::take(&mut batch)).await?;
        }
    }
    insert_many::<Incident>(store.conn(), batch).await?;
    store.close().await;
    Ok(())
}

/// One export: (seconds, peak memory growth in MB, bytes).
async fn export_once(
    exe: &Path,
    url: &str,
    dir: &Path,
    rows: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let mut server = Server::start(exe, &["serve", "--listen", "127.0.0.1:0"], url, dir)?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))?
        .connect()
        .await?;
    let mut client = IncidentServiceClient::new(channel).max_decoding_message_size(1 << 20);
    let token = token("agent", None);
    let before = server.rss_kb()?;
    let mut request = tonic::Request::new(ExportIncidentsRequest {
        from_date: "2026-01-01".into(),
        to_date: "2026-12-31".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let started = Instant::now();
    let mut stream = client.export_report(request).await?.into_inner();
    let mut bytes = 0;
    let mut row_count = 0;
    while let Some(message) = stream.next().await {
        match message?.kind {
            Some(export_report_response::Kind::Header(h)) => row_count = h.row_count,
            Some(export_report_response::Kind::Data(d)) => bytes += d.len(),
            None => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = server.hwm_kb()?;
    if row_count as usize != rows {
        bail!("exported {row_count} rows, expected {rows}");
    }
    server.stop();
    Ok((
        seconds,
        (peak.saturating_sub(before)) as f64 / 1024.0,
        bytes,
    ))
}

fn python_once(python: &str, csv: &Path, out: &Path) -> anyhow::Result<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_xlsxwriter.py");
    let output = Command::new(python)
        .arg(&script)
        .arg(csv)
        .arg(out)
        .output()
        .context("run python")?;
    if !output.status.success() {
        bail!("python failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}
