//! Does a hanging receiver slow the RPCs? (issue #15). Two release servers,
//! each on its own fresh database: one plain, one sending e-mail to an SMTP
//! server that accepts connections and never says a word and posting
//! webhooks to a receiver that accepts connections and never answers (both
//! listeners live in this process). CreateIncident, with `--concurrency`
//! calls in flight, runs against each in turn, the order alternating run by
//! run (plain first, then hanging first, …) so that a slow spell of this
//! shared machine falls on both; each run reports req/s and p50/p99/p999,
//! and the ratio of the p99s. The issue asks for the hanging server's p99
//! within 1.2× of the plain one's.
//!
//! `cargo build --release --bins && target/release/ticketd-bench-hang --runs 3`
//! (`--postgres postgres://postgres@127.0.0.1:5432/test` runs on fresh
//! PostgreSQL databases created next to that one, and dropped after.)
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use ticketd::pb::incident_service_client::IncidentServiceClient;
use ticketd::pb::webhook_service_client::WebhookServiceClient;
use ticketd::pb::*;
use tokio::net::TcpListener;
use tonic::transport::Channel;

mod common;
use common::{
    Runs, Server, Target, connect, load_average, machine, median, new_incident, positive, request,
    token,
};

#[derive(Parser)]
struct Args {
    /// CreateIncident calls in flight.
    #[arg(long, default_value_t = 16, value_parser = positive::<usize>())]
    concurrency: usize,
    // Each run measures both servers.
    #[command(flatten)]
    runs: Runs,
    #[command(flatten)]
    target: Target,
}

fn main() -> anyhow::Result<()> {
    common::bench(|args: &Args| &args.target, ["plain", "hanging"], run)
}

/// A listener that accepts connections and never writes to them.
async fn hang() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(port)
}

async fn run(args: &Args, [plain_url, hanging_url]: [&str; 2], dir: &Path) -> anyhow::Result<()> {
    let exe = args.target.server_exe()?;
    let (smtp, http) = (hang().await?, hang().await?);
    let plain_dir = dir.join("plain");
    let hanging_dir = dir.join("hanging");
    std::fs::create_dir_all(&plain_dir)?;
    std::fs::create_dir_all(&hanging_dir)?;
    let plain = Server::start(
        &exe,
        &["serve", "--listen", "127.0.0.1:0"],
        plain_url,
        &plain_dir,
    )?;
    let smtp_url = format!("smtp://127.0.0.1:{smtp}");
    let hanging = Server::start(
        &exe,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--smtp-url",
            &smtp_url,
            "--frontend-url",
            "https://soporte.example.com",
        ],
        hanging_url,
        &hanging_dir,
    )?;
    let plain_channel = connect(&plain.addr).await?;
    let hanging_channel = connect(&hanging.addr).await?;
    WebhookServiceClient::new(hanging_channel.clone())
        .create_webhook_endpoint(request(
            &token("admin", None),
            CreateWebhookEndpointRequest {
                account: "acme".into(),
                url: format!("http://127.0.0.1:{http}/hook"),
                secret: String::new(),
                event_types: vec![],
            },
        ))
        .await
        .context("register the hanging webhook endpoint")?;
    println!(
        "{}; CreateIncident on {}; {} in flight; {} × {} s runs per server; \
         hanging SMTP on 127.0.0.1:{smtp}, hanging webhook receiver on 127.0.0.1:{http} \
         (--notify-timeout 10s: each attempt hangs 10 s)",
        machine(),
        args.target.backend(),
        args.concurrency,
        args.runs.count,
        args.runs.seconds,
    );
    let requester = Arc::new(token("requester", Some("acme")));
    let servers = [
        ("plain", plain_channel),
        ("hanging", hanging_channel.clone()),
    ];
    if let Some(warmup) = args.runs.warmup() {
        for (_, channel) in &servers {
            drive(channel, &requester, args.concurrency, warmup).await;
        }
    }
    let duration = args.runs.length();
    let mut rows = vec![];
    for run in 0..args.runs.count {
        let load = load_average();
        let mut measured: [Option<Measured>; 2] = [None, None];
        for slot in 0..2 {
            let which = (slot + run) % 2;
            tokio::time::sleep(Duration::from_millis(200)).await;
            measured[which] =
                Some(drive(&servers[which].1, &requester, args.concurrency, duration).await);
        }
        let [Some(p), Some(h)] = measured else {
            bail!("a run measured nothing");
        };
        let order = if run % 2 == 0 {
            "plain, hanging"
        } else {
            "hanging, plain"
        };
        println!(
            "run {} ({order}): load {load}\n  plain    {}\n  hanging  {}\n  p99 hanging ÷ plain {:.3}×",
            run + 1,
            p.line(),
            h.line(),
            h.ms(0.99) / p.ms(0.99)
        );
        rows.push((p, h, load));
    }
    println!();
    println!(
        "| run | plain req/s | plain p50 / p99 / p999 ms | hanging req/s | hanging p50 / p99 / p999 ms | p99 ÷ | errors | load avg |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (p, h, load)) in rows.iter().enumerate() {
        println!(
            "| {} | {:.0} | {} | {:.0} | {} | {:.3}× | {} | {} |",
            i + 1,
            p.rate(),
            p.percentiles(),
            h.rate(),
            h.percentiles(),
            h.ms(0.99) / p.ms(0.99),
            p.errors + h.errors,
            load.split_whitespace().next().unwrap_or("")
        );
    }
    let ratios: Vec<f64> = rows
        .iter()
        .map(|(p, h, _)| h.ms(0.99) / p.ms(0.99))
        .collect();
    println!("| median | | | | | {:.3}× | | |", median(ratios));
    // What the hanging server's outbox holds: proof that its receivers hung.
    let deliveries = WebhookServiceClient::new(hanging_channel)
        .list_deliveries(request(
            &token("admin", None),
            ListDeliveriesRequest {
                page_size: 500,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .deliveries;
    for channel in ["email", "webhook"] {
        let of: Vec<&Delivery> = deliveries.iter().filter(|d| d.channel == channel).collect();
        let tried = of.iter().filter(|d| d.attempts > 0).count();
        let delivered = of
            .iter()
            .filter(|d| d.state == DeliveryState::Delivered as i32)
            .count();
        let error = of
            .iter()
            .find(|d| !d.last_error.is_empty())
            .map_or("", |d| d.last_error.as_str());
        println!(
            "hanging server, first {} {channel} deliveries: {tried} attempted, {delivered} delivered; last error e.g. {error:?}",
            of.len()
        );
    }
    drop((plain, hanging));
    Ok(())
}

/// Latencies and errors of one run against one server.
struct Measured {
    latencies: Histogram<u64>,
    errors: u64,
    elapsed: Duration,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn ms(&self, q: f64) -> f64 {
        common::ms(&self.latencies, q)
    }

    fn percentiles(&self) -> String {
        common::percentiles(&self.latencies)
    }

    fn line(&self) -> String {
        format!(
            "{:>7.0} req/s  p50/p99/p999 {} ms  errors {}",
            self.rate(),
            self.percentiles(),
            self.errors
        )
    }
}

/// `concurrency` CreateIncident loops on `channel` for `duration`.
async fn drive(
    channel: &Channel,
    requester: &Arc<String>,
    concurrency: usize,
    duration: Duration,
) -> Measured {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let mut client = IncidentServiceClient::new(channel.clone());
        let requester = requester.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Histogram::<u64>::new(3).expect("histogram");
            let mut errors = 0;
            while Instant::now() < deadline {
                let r = CreateIncidentRequest {
                    contact_email: "tienda@example.com".into(),
                    ..new_incident()
                };
                let t = Instant::now();
                match client.create_incident(request(&requester, r)).await {
                    Ok(_) => {
                        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                        let _ = latencies.record(us.max(1));
                    }
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    let mut errors = 0;
    for task in tasks {
        if let Ok((latencies, e)) = task.await {
            let _ = all.add(&latencies);
            errors += e;
        }
    }
    Measured {
        latencies: all,
        errors,
        elapsed: started.elapsed(),
    }
}
