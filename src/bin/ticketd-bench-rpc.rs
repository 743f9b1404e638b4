//! RPC load generator (issue #12): keeps `--concurrency` requests of one
//! scenario in flight against the release `ticketd serve` (one or two
//! replicas on one database) and reports req/s, p50/p99/p999 and errors by
//! gRPC code. Every run also measures two anchors at the same concurrency,
//! in an order that rotates run by run so that a slow spell of this shared
//! machine falls on all three: Health/Check against the same server(s), and
//! the raw database write (an incidents row plus an event-log row in one
//! transaction, through ticketd's own pool and driver, no gRPC).
//!
//! `cargo run --release --bin ticketd-bench-rpc -- --scenario create --concurrency 64`
//! (`--postgres postgres://postgres@127.0.0.1:5432/test` runs on fresh PostgreSQL
//! databases created next to that one, and dropped after.)
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use sea_orm::{EntityTrait, IntoActiveModel, TransactionTrait};
use ticketd::pb::incident_service_client::IncidentServiceClient;
use ticketd::pb::*;
use ticketd::store::Store;
use ticketd::store::entity::{incident, ticket_event};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

mod common;
use common::{
    Runs, Server, Target, connect, incident_row, load_average, machine, median, new_incident,
    positive, request, token,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// grpc.health.v1.Health/Check (no token, no database).
    Health,
    /// CreateIncident by a requester.
    Create,
    /// GetIncident of a seeded incident, by its requester.
    Get,
    /// The first page of ListIncidents, no query, by an agent.
    List,
    /// AddComment by an agent on a seeded incident.
    Comment,
    /// ChangeIncidentStatus by an agent along NEW_TICKET → IN_PROGRESS →
    /// PRE_APPROVED → FINALIZED on fresh incidents, with expected_version.
    Status,
    /// 50 % get, 15 % list, 15 % comment, 10 % create, 10 % status.
    Mix,
}

#[derive(Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Create)]
    scenario: Scenario,
    /// Requests in flight (for the scenario and for both anchors).
    #[arg(long, default_value_t = 64, value_parser = positive::<usize>())]
    concurrency: usize,
    /// HTTP/2 connections the requests share (at least one per replica).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Incidents created (untimed) for get, list, comment and mix.
    #[arg(long, default_value_t = 1000)]
    seed: usize,
    /// ticketd processes serving the same database; load is split across them.
    #[arg(long, default_value_t = 1, value_parser = positive::<usize>())]
    replicas: usize,
    // Each run measures the scenario and both anchors.
    #[command(flatten)]
    runs: Runs,
    #[command(flatten)]
    target: Target,
}

fn main() -> anyhow::Result<()> {
    common::bench(|args: &Args| &args.target, ["bench", "raw"], run)
}

async fn run(args: &Args, [url, raw_url]: [&str; 2], dir: &Path) -> anyhow::Result<()> {
    let exe = args.target.server_exe()?;
    let mut servers = vec![];
    for replica in 0..args.replicas {
        let data = dir.join(format!("replica-{replica}"));
        std::fs::create_dir_all(&data)?;
        servers.push(Server::start(
            &exe,
            &["serve", "--listen", "127.0.0.1:0"],
            url,
            &data,
        )?);
    }
    // The anchor's database: same schema, driver and pool settings as the
    // server's, but its own file or database, so that its rows do not reach
    // the server's event-log follower.
    let raw = Store::connect(raw_url).await?;
    raw.migrate().await?;
    let raw = Arc::new(RawDb {
        store: raw,
        next: AtomicI64::new(1),
    });

    let connections = args.connections.max(args.replicas);
    let mut channels = vec![];
    for i in 0..connections {
        channels.push(connect(&servers[i % servers.len()].addr).await?);
    }
    println!(
        "{}; {} on {}; {} replica(s) (pids {}); {} in flight over {} HTTP/2 connection(s); {} × {} s runs",
        machine(),
        name(args.scenario),
        args.target.backend(),
        args.replicas,
        servers
            .iter()
            .map(|s| s.pid().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        args.concurrency,
        connections,
        args.runs.count,
        args.runs.seconds,
    );

    let (requester, agent) = (token("requester", Some("acme")), token("agent", None));
    let existing = match args.scenario {
        Scenario::Get | Scenario::List | Scenario::Comment | Scenario::Mix => {
            create_many(&channels, &requester, args.seed).await?
        }
        Scenario::Health | Scenario::Create | Scenario::Status => vec![],
    };
    let ctx = Arc::new(Ctx {
        requester,
        agent,
        existing,
        fresh: Mutex::default(),
    });
    if !ctx.existing.is_empty() {
        println!("seeded {} incidents over gRPC", ctx.existing.len());
    }
    // Status changes need fresh incidents (three changes each); estimated
    // from the last rate seen and topped up before each run, untimed.
    let status_share = match args.scenario {
        Scenario::Status => 1.0,
        Scenario::Mix => 0.1,
        _ => 0.0,
    };
    let mut rate_estimate = 1000.0_f64;
    let workers = |call: Call| -> Vec<Worker> {
        (0..args.concurrency)
            .map(|i| Worker {
                call,
                channel: channels[i % channels.len()].clone(),
                ctx: ctx.clone(),
                raw: raw.clone(),
                status: None,
            })
            .collect()
    };
    let mut scenario = workers(Call::Scenario(args.scenario));
    let mut health = workers(Call::Health);
    let mut database = workers(Call::Raw);

    if let Some(warmup) = args.runs.warmup() {
        top_up(&channels, &ctx, status_share, rate_estimate, warmup).await?;
        let m;
        (scenario, m) = drive(scenario, warmup).await;
        rate_estimate = m.rate();
        (health, _) = drive(health, warmup).await;
        (database, _) = drive(database, warmup).await;
    }

    let duration = args.runs.length();
    let mut rows = vec![];
    for run in 0..args.runs.count {
        let load = load_average();
        let (mut s, mut h, mut r) = (None, None, None);
        // S H R, then H R S, then R S H, …
        for slot in 0..3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            match (slot + run) % 3 {
                0 => {
                    top_up(&channels, &ctx, status_share, rate_estimate, duration).await?;
                    let m;
                    (scenario, m) = drive(scenario, duration).await;
                    rate_estimate = rate_estimate.max(m.rate());
                    s = Some(m);
                }
                1 => {
                    let m;
                    (health, m) = drive(health, duration).await;
                    h = Some(m);
                }
                _ => {
                    let m;
                    (database, m) = drive(database, duration).await;
                    r = Some(m);
                }
            }
        }
        let (s, h, r) = (
            s.context("scenario")?,
            h.context("health")?,
            r.context("raw")?,
        );
        println!(
            "run {}: load {load}\n  {:<8} {}\n  {:<8} {}\n  {:<8} {}\n  ratios: ÷health {:.3}×, ÷raw insert {:.3}×",
            run + 1,
            name(args.scenario),
            s.line(),
            "health",
            h.line(),
            "raw",
            r.line(),
            s.rate() / h.rate(),
            s.rate() / r.rate(),
        );
        rows.push(Run {
            scenario: s,
            health: h,
            raw: r,
            load,
        });
    }

    let name = name(args.scenario);
    println!();
    println!(
        "| run | {name} req/s | p50 / p99 / p999 ms | errors | Health/Check req/s | raw insert /s | raw p50 / p99 ms | ÷ health | ÷ raw | load avg |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (
        i,
        Run {
            scenario: s,
            health: h,
            raw: r,
            load,
        },
    ) in rows.iter().enumerate()
    {
        println!(
            "| {} | {:.0} | {} | {} | {:.0} | {:.0} | {:.2} / {:.2} | {:.3}× | {:.3}× | {} |",
            i + 1,
            s.rate(),
            s.percentiles(),
            s.errors_text(),
            h.rate(),
            r.rate(),
            r.ms(0.5),
            r.ms(0.99),
            s.rate() / h.rate(),
            s.rate() / r.rate(),
            load.split_whitespace().next().unwrap_or("")
        );
    }
    let med = |f: &dyn Fn(&Run) -> f64| median(rows.iter().map(f).collect());
    println!(
        "| median | {:.0} | {:.2} / {:.2} / {:.2} | | {:.0} | {:.0} | {:.2} / {:.2} | {:.3}× | {:.3}× | |",
        med(&|x| x.scenario.rate()),
        med(&|x| x.scenario.ms(0.5)),
        med(&|x| x.scenario.ms(0.99)),
        med(&|x| x.scenario.ms(0.999)),
        med(&|x| x.health.rate()),
        med(&|x| x.raw.rate()),
        med(&|x| x.raw.ms(0.5)),
        med(&|x| x.raw.ms(0.99)),
        med(&|x| x.scenario.rate() / x.health.rate()),
        med(&|x| x.scenario.rate() / x.raw.rate()),
    );
    let errors: u64 = rows
        .iter()
        .map(|run| run.scenario.error_count() + run.health.error_count() + run.raw.error_count())
        .sum();
    for server in &servers {
        println!(
            "server {} RSS at the end: {:.1} MiB",
            server.pid(),
            server.rss_kb()? as f64 / 1024.0
        );
    }
    if errors > 0 {
        println!("NOT A CLEAN RUN: {errors} errors (see above)");
    }
    drop(servers);
    Ok(())
}

/// One measured run: the scenario, its two anchors, and the load average at its start.
struct Run {
    scenario: Measured,
    health: Measured,
    raw: Measured,
    load: String,
}

/// What the workers share.
struct Ctx {
    requester: String,
    agent: String,
    /// Seeded incidents (get, list, comment).
    existing: Vec<String>,
    /// Incidents still NEW_TICKET, for status changes; workers take them.
    fresh: Mutex<Vec<String>>,
}

/// The anchor: raw writes on their own database.
struct RawDb {
    store: Store,
    /// Next incident number and event sequence.
    next: AtomicI64,
}

#[derive(Clone, Copy)]
enum Call {
    Scenario(Scenario),
    Health,
    Raw,
}

/// One request in flight: it sends the next as soon as the last is answered.
struct Worker {
    call: Call,
    channel: Channel,
    ctx: Arc<Ctx>,
    raw: Arc<RawDb>,
    /// The incident this worker is moving through statuses: id, status, version.
    status: Option<(String, IncidentStatus, i64)>,
}

impl Worker {
    async fn once(&mut self) -> Result<(), String> {
        let scenario = match self.call {
            Call::Health => return self.health().await,
            Call::Raw => return self.raw().await,
            Call::Scenario(Scenario::Mix) => match rand::random_range(0..100) {
                0..50 => Scenario::Get,
                50..65 => Scenario::List,
                65..80 => Scenario::Comment,
                80..90 => Scenario::Create,
                _ => Scenario::Status,
            },
            Call::Scenario(s) => s,
        };
        let mut client = IncidentServiceClient::new(self.channel.clone());
        let ctx = &self.ctx;
        let result = match scenario {
            Scenario::Health => return self.health().await,
            Scenario::Mix => unreachable!("mix picks a scenario above"),
            Scenario::Create => client
                .create_incident(request(&ctx.requester, new_incident()))
                .await
                .map(drop),
            Scenario::Get => {
                let id = pick(&ctx.existing)?;
                let body = GetIncidentRequest {
                    lookup: Some(get_incident_request::Lookup::Id(id)),
                };
                client
                    .get_incident(request(&ctx.requester, body))
                    .await
                    .map(drop)
            }
            Scenario::List => client
                .list_incidents(request(&ctx.agent, ListIncidentsRequest::default()))
                .await
                .map(drop),
            Scenario::Comment => {
                let body = AddCommentRequest {
                    ticket_id: pick(&ctx.existing)?,
                    body: "Reportado a la paquetería, esperamos respuesta.".into(),
                    internal: false,
                };
                client
                    .add_comment(request(&ctx.agent, body))
                    .await
                    .map(drop)
            }
            Scenario::Status => return self.change_status(client).await,
        };
        result.map_err(|s| format!("{:?}", s.code()))
    }

    async fn health(&mut self) -> Result<(), String> {
        HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(drop)
            .map_err(|s| format!("{:?}", s.code()))
    }

    /// The next legal step of this worker's incident, passing the version it
    /// last read; a fresh incident when the last one is finalized.
    async fn change_status(
        &mut self,
        mut client: IncidentServiceClient<Channel>,
    ) -> Result<(), String> {
        let (id, from, version) = match self.status.take() {
            Some(current) => current,
            None => {
                let id = self
                    .ctx
                    .fresh
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop()
                    .ok_or("bench: out of fresh incidents")?;
                (id, IncidentStatus::NewTicket, 1)
            }
        };
        let (to, reason) = match from {
            IncidentStatus::NewTicket => {
                (IncidentStatus::InProgress, ResolutionReason::Unspecified)
            }
            IncidentStatus::InProgress => {
                (IncidentStatus::PreApproved, ResolutionReason::Unspecified)
            }
            _ => (IncidentStatus::Finalized, ResolutionReason::Resolved),
        };
        let body = ChangeIncidentStatusRequest {
            id: id.clone(),
            status: to as i32,
            expected_version: version,
            reason: reason as i32,
            comment: String::new(),
        };
        let incident = client
            .change_incident_status(request(&self.ctx.agent, body))
            .await
            .map_err(|s| format!("{:?}", s.code()))?
            .into_inner();
        if to != IncidentStatus::Finalized {
            self.status = Some((id, to, incident.version));
        }
        Ok(())
    }

    /// The same write as a create, without gRPC or ticketd's workflow: an
    /// incidents row and an event-log row, one transaction.
    async fn raw(&mut self) -> Result<(), String> {
        let number = self.raw.next.fetch_add(1, Ordering::Relaxed);
        let now = chrono::Utc::now().timestamp_micros();
        let row = incident::Model {
            search_text: format!("{number} est-bench estafeta damaged bench"),
            ..incident_row(number, now)
        };
        let id = row.id.clone();
        let event = ticket_event::Model {
            sequence: number,
            ticket_id: id,
            ticket_type: "incident".into(),
            ticket_number: number,
            account: "acme".into(),
            event_type: "created".into(),
            internal: false,
            actor_id: "bench".into(),
            actor_name: "bench".into(),
            actor_role: "requester".into(),
            payload: r#"{"type":"created","status":"NEW_TICKET","kind":"SHIPMENT","category":"damaged","carrier":"estafeta"}"#.into(),
            occurred_at: now,
        };
        let result = async {
            let txn = self.raw.store.conn().begin().await?;
            incident::Entity::insert(row.into_active_model())
                .exec_without_returning(&txn)
                .await?;
            ticket_event::Entity::insert(event.into_active_model())
                .exec_without_returning(&txn)
                .await?;
            txn.commit().await
        }
        .await;
        result.map_err(|e| format!("database: {e}"))
    }
}

fn name(scenario: Scenario) -> String {
    format!("{scenario:?}").to_lowercase()
}

fn pick(ids: &[String]) -> Result<String, String> {
    if ids.is_empty() {
        return Err("bench: nothing seeded".into());
    }
    Ok(ids[rand::random_range(0..ids.len())].clone())
}

/// One measured stretch.
struct Measured {
    ok: u64,
    elapsed: Duration,
    /// Latency of the successful calls, µs.
    latency: Histogram<u64>,
    /// gRPC code (or what failed) → count.
    errors: BTreeMap<String, u64>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn ms(&self, q: f64) -> f64 {
        common::ms(&self.latency, q)
    }

    fn percentiles(&self) -> String {
        common::percentiles(&self.latency)
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".into();
        }
        self.errors
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn line(&self) -> String {
        format!(
            "{:>8.0} req/s  p50 / p99 / p999 {} ms  errors {}",
            self.rate(),
            self.percentiles(),
            self.errors_text()
        )
    }
}

/// Runs every worker for `duration` (each starts no request after it), and
/// counts what completed until the last one answered.
async fn drive(workers: Vec<Worker>, duration: Duration) -> (Vec<Worker>, Measured) {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            tokio::spawn(async move {
                let mut latency = new_histogram();
                let mut errors = BTreeMap::<String, u64>::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    match worker.once().await {
                        Ok(()) => latency.saturating_record(sent.elapsed().as_micros() as u64),
                        Err(code) => *errors.entry(code).or_default() += 1,
                    }
                }
                (worker, latency, errors)
            })
        })
        .collect();
    let mut measured = Measured {
        ok: 0,
        elapsed: Duration::ZERO,
        latency: new_histogram(),
        errors: BTreeMap::new(),
    };
    let mut workers = vec![];
    for task in tasks {
        let Ok((worker, latency, errors)) = task.await else {
            *measured
                .errors
                .entry("bench: task panicked".into())
                .or_default() += 1;
            continue;
        };
        measured.ok += latency.len();
        let _ = measured.latency.add(&latency);
        for (code, n) in errors {
            *measured.errors.entry(code).or_default() += n;
        }
        workers.push(worker);
    }
    measured.elapsed = started.elapsed();
    (workers, measured)
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Creates `n` incidents, 32 in flight, and returns their ids.
async fn create_many(channels: &[Channel], token: &str, n: usize) -> anyhow::Result<Vec<String>> {
    const IN_FLIGHT: usize = 32;
    let mut tasks = vec![];
    for lane in 0..IN_FLIGHT.min(n) {
        let mut client = IncidentServiceClient::new(channels[lane % channels.len()].clone());
        let token = token.to_owned();
        let count = n / IN_FLIGHT + usize::from(lane < n % IN_FLIGHT);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(count);
            for _ in 0..count {
                let incident = client
                    .create_incident(request(&token, new_incident()))
                    .await?
                    .into_inner();
                ids.push(incident.id);
            }
            Ok::<_, tonic::Status>(ids)
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for task in tasks {
        ids.extend(task.await?.context("seeding incidents")?);
    }
    Ok(ids)
}

/// Makes sure there are enough NEW_TICKET incidents for `duration` of status
/// changes at 1.5× `rate` (three changes each), creating them untimed.
async fn top_up(
    channels: &[Channel],
    ctx: &Ctx,
    share: f64,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<()> {
    if share == 0.0 {
        return Ok(());
    }
    let need = (rate * 1.5 * share * duration.as_secs_f64() / 3.0).ceil() as usize + 64;
    let have = ctx.fresh.lock().unwrap_or_else(|e| e.into_inner()).len();
    if have >= need {
        return Ok(());
    }
    let ids = create_many(channels, &ctx.requester, need - have).await?;
    ctx.fresh
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(ids);
    Ok(())
}
