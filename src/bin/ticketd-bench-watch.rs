//! Live-events benchmark: N WatchTicket streams on one incident while an agent
//! comments at a fixed rate; reports commit-to-delivery latency and the
//! server's memory per open stream, next to a bare tokio-broadcast-over-tonic
//! server measured the same way in the same run (the ceiling). Also times
//! CreateIncident with and without a subscriber that never reads.
//!
//! `cargo run --release --bin ticketd-bench-watch -- --streams 1000 --rate 10 --seconds 15`
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use ticketd::pb::incident_service_client::IncidentServiceClient;
use ticketd::pb::notification_service_client::NotificationServiceClient;
use ticketd::pb::notification_service_server::{NotificationService, NotificationServiceServer};
use ticketd::pb::*;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

mod common;
use common::{Server, connect, new_incident, request, sibling, token};

/// Streams per HTTP/2 connection.
const PER_CONNECTION: usize = 100;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Open streams.
    #[arg(long, default_value_t = 1000)]
    streams: usize,
    /// Events per second.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// How long events are committed.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// The ceiling: a bare tonic server fanning a tokio broadcast out to every stream.
    RawServer {
        #[arg(long)]
        rate: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Cmd::RawServer { rate }) = args.command {
        return raw_server(rate).await;
    }
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );

    // ticketd.
    let mut server = Server::start(
        &sibling("ticketd")?,
        // One agent opens every stream: lift the per-caller and per-server caps.
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-watch-streams",
            "1000000",
            "--max-watch-streams-per-principal",
            "1000000",
        ],
        &url,
        dir.path(),
    )?;
    let store = token("requester", Some("acme"));
    let agent = token("agent", None);
    let channel = connect(&server.addr).await?;
    let mut incidents = IncidentServiceClient::new(channel.clone());
    // Alternate rounds without and with a subscriber that never reads (another
    // client, on its own connection), so that database growth hits both alike.
    let (mut without, mut with) = (vec![], vec![]);
    for _ in 0..4 {
        // Both halves start after the same pause.
        tokio::time::sleep(Duration::from_millis(500)).await;
        without.extend(create_times(&mut incidents, &store, 100).await?);
        let stalled = NotificationServiceClient::new(connect(&server.addr).await?)
            .watch_notifications(request(
                &agent,
                WatchNotificationsRequest { after_sequence: 0 },
            ))
            .await?
            .into_inner();
        // Let it replay until it stalls: the cost of opening a stream is not the question.
        tokio::time::sleep(Duration::from_millis(500)).await;
        with.extend(create_times(&mut incidents, &store, 100).await?);
        drop(stalled);
    }
    let (without, with) = (p99(without), p99(with));
    let incident = incidents
        .create_incident(request(&store, new_incident()))
        .await?
        .into_inner();
    let rss_before = server.rss_kb()?;
    let ticket = incident.id.clone();
    let open = |channel: Channel| {
        let (agent, ticket) = (agent.clone(), ticket.clone());
        async move {
            let mut client = IncidentServiceClient::new(channel);
            let request = request(
                &agent,
                WatchTicketRequest {
                    ticket_id: ticket,
                    after_sequence: 0,
                },
            );
            Ok::<_, tonic::Status>(client.watch_ticket(request).await?.into_inner())
        }
    };
    let ours = measure(&server, args.streams, args.rate, args.seconds, open, || {
        let (agent, ticket) = (agent.clone(), ticket.clone());
        let mut client = incidents.clone();
        async move {
            let body = AddCommentRequest {
                ticket_id: ticket,
                body: "bench".into(),
                internal: false,
            };
            client.add_comment(request(&agent, body)).await.map(drop)
        }
    })
    .await?;
    let ours_memory = ours.rss_kb.saturating_sub(rss_before) as f64 / args.streams as f64;
    server.stop();

    // The ceiling.
    let rate = args.rate.to_string();
    let mut raw = Server::start(
        &std::env::current_exe()?,
        &["raw-server", "--rate", &rate],
        &url,
        dir.path(),
    )?;
    let raw_before = raw.rss_kb()?;
    let open_raw = |channel: Channel| async move {
        let mut client = NotificationServiceClient::new(channel);
        Ok::<_, tonic::Status>(
            client
                .watch_notifications(WatchNotificationsRequest { after_sequence: 0 })
                .await?
                .into_inner(),
        )
    };
    let ceiling = measure(
        &raw,
        args.streams,
        args.rate,
        args.seconds,
        open_raw,
        || async { Ok(()) },
    )
    .await?;
    let raw_memory = ceiling.rss_kb.saturating_sub(raw_before) as f64 / args.streams as f64;
    raw.stop();

    println!();
    println!(
        "| {} streams, {} events/s for {} s | ticketd | raw broadcast over tonic | ratio |",
        args.streams, args.rate, args.seconds
    );
    println!("|---|---|---|---|");
    println!(
        "| delivered / expected | {} / {} | {} / {} | |",
        ours.delivered, ours.expected, ceiling.delivered, ceiling.expected
    );
    println!(
        "| latency p50 | {:.1} ms | {:.1} ms | {:.1}× |",
        ours.p50,
        ceiling.p50,
        ours.p50 / ceiling.p50.max(0.01)
    );
    println!(
        "| latency p99 | {:.1} ms | {:.1} ms | {:.1}× |",
        ours.p99,
        ceiling.p99,
        ours.p99 / ceiling.p99.max(0.01)
    );
    println!(
        "| latency max | {:.1} ms | {:.1} ms | |",
        ours.max, ceiling.max
    );
    println!(
        "| server memory per open stream | {:.1} KiB | {:.1} KiB | {:.1}× |",
        ours_memory,
        raw_memory,
        ours_memory / raw_memory.max(0.01)
    );
    println!(
        "| server RSS with all streams open | {:.1} MiB | {:.1} MiB | |",
        ours.rss_kb as f64 / 1024.0,
        ceiling.rss_kb as f64 / 1024.0
    );
    println!(
        "| CreateIncident p99 without / with a stalled subscriber | {without:.2} ms / {with:.2} ms | | {:.2}× |",
        with / without
    );
    Ok(())
}

struct Measured {
    delivered: usize,
    expected: usize,
    p50: f64,
    p99: f64,
    max: f64,
    /// Server RSS with every stream open.
    rss_kb: u64,
}

/// Opens `n` streams, waits for their first message, then publishes at `rate`
/// for `seconds` and collects every event's delivery latency.
async fn measure<O, OF, P, PF>(
    server: &Server,
    n: usize,
    rate: u32,
    seconds: u64,
    open: O,
    publish: P,
) -> anyhow::Result<Measured>
where
    O: Fn(Channel) -> OF,
    OF: std::future::Future<Output = Result<tonic::Streaming<WatchResponse>, tonic::Status>>,
    P: Fn() -> PF,
    PF: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let publish_end = Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
    // Nothing counts before publishing starts (the raw server publishes from its start).
    let publish_from = Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        n * (rate as usize) * seconds as usize,
    )));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(n.max(1));
    let mut tasks = vec![];
    let addr = server.addr.as_str();
    let mut channel = connect(addr).await?;
    for i in 0..n {
        if i % PER_CONNECTION == 0 && i > 0 {
            channel = connect(addr).await?;
        }
        let mut stream = open(channel.clone()).await?;
        let (latencies, ready) = (latencies.clone(), ready_tx.clone());
        let (publish_from, publish_end) = (publish_from.clone(), publish_end.clone());
        tasks.push(tokio::spawn(async move {
            let mut first = true;
            while let Some(Ok(message)) = stream.next().await {
                let received = now_micros();
                if first {
                    first = false;
                    let _ = ready.send(()).await;
                }
                if let Some(watch_response::Kind::Event(e)) = message.kind {
                    let at = e
                        .occurred_at
                        .map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000);
                    let is_comment =
                        matches!(e.payload, Some(ticket_event::Payload::CommentAdded(_)));
                    // Events committed after the publishing window are not counted.
                    let end = publish_end.load(std::sync::atomic::Ordering::Relaxed);
                    let from = publish_from.load(std::sync::atomic::Ordering::Relaxed);
                    if at >= from && at <= end && (is_comment || e.payload.is_none()) {
                        latencies
                            .lock()
                            .unwrap()
                            .push((received - at) as f64 / 1000.0);
                    }
                }
            }
        }));
    }
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(120), ready_rx.recv())
            .await
            .context("streams did not open")?;
    }
    let rss_kb = server.rss_kb()?;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut tick = tokio::time::interval(period);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut published = 0usize;
    let publish_start = now_micros();
    publish_from.store(publish_start, std::sync::atomic::Ordering::Relaxed);
    while Instant::now() < deadline {
        tick.tick().await;
        publish().await?;
        published += 1;
    }
    publish_end.store(now_micros(), std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut all = std::mem::take(&mut *latencies.lock().unwrap());
    all.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(Measured {
        delivered: all.len(),
        // The raw server publishes by itself, at the same rate.
        expected: if published > 0 {
            published * n
        } else {
            raw_expected(publish_start, rate, n)
        },
        p50: pick(0.5),
        p99: pick(0.99),
        max: all.last().copied().unwrap_or(f64::NAN),
        rss_kb,
    })
}

/// How long each of `n` sequential CreateIncident calls took, in ms.
async fn create_times(
    client: &mut IncidentServiceClient<Channel>,
    token: &str,
    n: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut times = vec![];
    for _ in 0..n {
        let started = Instant::now();
        client
            .create_incident(request(token, new_incident()))
            .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(times)
}

fn p99(mut times: Vec<f64>) -> f64 {
    times.sort_by(|a, b| a.total_cmp(b));
    times
        .get((times.len() * 99 / 100).min(times.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The ceiling: NotificationService whose streams forward a broadcast channel
/// that a timer feeds at `rate` events per second.
async fn raw_server(rate: u32) -> anyhow::Result<()> {
    if rate == 0 {
        bail!("--rate must be positive");
    }
    let (tx, _) = broadcast::channel::<WatchResponse>(4096);
    let publisher = tx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        let mut sequence = 0u64;
        loop {
            tick.tick().await;
            sequence += 1;
            let now = now_micros();
            let event = TicketEvent {
                sequence,
                occurred_at: Some(prost_types::Timestamp {
                    seconds: now / 1_000_000,
                    nanos: ((now % 1_000_000) * 1000) as i32,
                }),
                ..Default::default()
            };
            let _ = publisher.send(WatchResponse {
                kind: Some(watch_response::Kind::Event(event)),
            });
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("raw server listening {}", listener.local_addr()?);
    tonic::transport::Server::builder()
        .add_service(NotificationServiceServer::new(Raw { tx }))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
        .await?;
    Ok(())
}

struct Raw {
    tx: broadcast::Sender<WatchResponse>,
}

#[tonic::async_trait]
impl NotificationService for Raw {
    type WatchNotificationsStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<WatchResponse, tonic::Status>> + Send>,
    >;

    async fn watch_notifications(
        &self,
        _: tonic::Request<WatchNotificationsRequest>,
    ) -> Result<tonic::Response<Self::WatchNotificationsStream>, tonic::Status> {
        let (out, rx) = tokio::sync::mpsc::channel(32);
        let mut events = self.tx.subscribe();
        tokio::spawn(async move {
            // A first message so the client knows the stream is open.
            let hello = WatchResponse {
                kind: Some(watch_response::Kind::Progress(Progress {
                    head_sequence: 0,
                })),
            };
            if out.send(Ok(hello)).await.is_err() {
                return;
            }
            while let Ok(event) = events.recv().await {
                if out.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// What the raw server published between `start` and the end of publishing
/// (2 s ago), at `rate`, to `n` streams: it publishes by itself.
fn raw_expected(start: i64, rate: u32, n: usize) -> usize {
    let seconds = (now_micros() - start) as f64 / 1e6 - 2.0;
    (seconds * f64::from(rate)).round() as usize * n
}
