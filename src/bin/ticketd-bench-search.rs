//! Search and list latency as the tables grow (issue #13). For each size N it
//! seeds N incidents and N consultations (see `common::seed`) into a fresh
//! database, starts the release `ticketd serve` on it, and times, one call at
//! a time with an agent's token, every list of the goal on
//! ListIncidents and ListConsultations: the first page of each tab with its
//! counts, and a tracking-number (order-reference) fragment, a rare word, a
//! common word, a word typed without its accents, a ticket number and an
//! assignee's name, each alone and with a tab and a 30-day range; and page 50
//! of a common word. Each call searches for another term taken from the
//! seeded data. Prints p50/p95 per query and size as a Markdown table.
//!
//! `cargo run --release --bin ticketd-bench-search -- --sizes 10000,100000`
//! (`--postgres postgres://postgres@127.0.0.1:5432/test` seeds fresh
//! PostgreSQL databases created next to that one, and dropped after.)
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ticketd::domain::text::fold;
use ticketd::pb::consultation_service_client::ConsultationServiceClient;
use ticketd::pb::incident_service_client::IncidentServiceClient;
use ticketd::pb::{
    ConsultationStatus, IncidentStage, ListConsultationsRequest, ListIncidentsRequest,
};
use tonic::transport::Channel;

mod common;
use common::seed::{
    AGENTS, COMMON_WORDS, Options, Population, Seeded, accented_words, rare_words, seed,
};
use common::{Server, Target, connect, machine, request, token};

#[derive(Parser)]
struct Args {
    /// Sizes to measure: each is N incidents and N consultations.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    sizes: Vec<u64>,
    /// Timed calls per query, each with another term.
    #[arg(long, default_value_t = 30)]
    repeat: usize,
    /// Timed walks to page 50 per ticket type.
    #[arg(long, default_value_t = 5)]
    deep_repeat: usize,
    /// A query stops repeating once its calls have taken this many seconds
    /// (after 3 calls, or 1 walk to page 50): large sizes get fewer samples.
    #[arg(long, default_value_t = 20)]
    budget: u64,
    // Its seed also picks the terms searched.
    #[command(flatten)]
    population: Population,
    #[command(flatten)]
    target: Target,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.sizes.is_empty() || args.repeat == 0 || args.deep_repeat == 0 {
        bail!("--sizes, --repeat and --deep-repeat must be positive");
    }
    let exe = args.target.server_exe()?;
    let backend = args.target.backend();
    println!("{}; {backend}", machine());
    let mut table: Vec<(String, Vec<Stats>)> = vec![];
    for &size in &args.sizes {
        let bench = async |[url]: [&str; 1], dir: &Path| measure(&args, &exe, size, url, dir).await;
        for (name, stats) in args.target.with_databases(["search"], bench).await? {
            match table.iter_mut().find(|(n, _)| *n == name) {
                Some((_, row)) => row.push(stats),
                None => table.push((name, vec![stats])),
            }
        }
    }
    print_table(backend, &args.sizes, &table);
    Ok(())
}

/// One query's latency at one size (ms).
#[derive(Clone, Copy)]
struct Stats {
    p50: f64,
    p95: f64,
}

/// Seeds `size` tickets of each type into `url`, serves it, and times every
/// query.
async fn measure(
    args: &Args,
    exe: &Path,
    size: u64,
    url: &str,
    dir: &Path,
) -> anyhow::Result<Vec<(String, Stats)>> {
    let until = chrono::Utc::now().timestamp_micros();
    let options = Options {
        incidents: size,
        consultations: size,
        accounts: args.population.accounts,
        seed: args.population.seed,
        until,
        batch: 5000,
    };
    let seeded = seed(url, &options).await?;
    println!(
        "\n{size} incidents + {size} consultations seeded in {:.1} s ({:.0} rows/s)",
        seeded.seconds,
        seeded.rows as f64 / seeded.seconds
    );
    let mut server = Server::start(exe, &["serve", "--listen", "127.0.0.1:0"], url, dir)?;
    let mut bench = Bench {
        incidents: IncidentServiceClient::new(connect(&server.addr).await?),
        consultations: ConsultationServiceClient::new(connect(&server.addr).await?),
        token: token("agent", None),
        rng: StdRng::seed_from_u64(args.population.seed),
        until,
    };
    let mut results = vec![];
    for ty in [Type::Incident, Type::Consultation] {
        // Untimed: the first call opens connections and warms the caches.
        bench.list(ty, &Params::default()).await?;
        for (name, make) in queries(ty) {
            let budget = Duration::from_secs(args.budget);
            let (started, mut times) = (Instant::now(), vec![]);
            while times.len() < args.repeat && (times.len() < 3 || started.elapsed() < budget) {
                let params = make(&mut bench, &seeded, times.len());
                times.push(bench.list(ty, &params).await?.0);
            }
            results.push(report(ty, &name, times));
        }
        let (started, mut times) = (Instant::now(), vec![]);
        while times.len() < args.deep_repeat
            && (times.is_empty() || started.elapsed() < Duration::from_secs(args.budget))
        {
            let mut params = Params {
                query: COMMON_WORDS[times.len() % COMMON_WORDS.len()].into(),
                ..Params::default()
            };
            let mut elapsed = 0.0;
            for _ in 0..50 {
                let (ms, next) = bench.list(ty, &params).await?;
                (elapsed, params.page_token) = (ms, next);
            }
            times.push(elapsed);
        }
        results.push(report(ty, "page 50 of a common word", times));
    }
    server.stop();
    Ok(results)
}

/// Prints one query's line as it is measured and returns its row.
fn report(ty: Type, query: &str, mut times: Vec<f64>) -> (String, Stats) {
    times.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    let (p50, p95) = (at(0.5), at(0.95));
    let name = format!("{}: {query}", ty.name());
    println!(
        "{name:<60} p50 {p50:>9.1} ms  p95 {p95:>9.1} ms  ({} calls)",
        times.len()
    );
    (name, Stats { p50, p95 })
}

fn print_table(backend: &str, sizes: &[u64], table: &[(String, Vec<Stats>)]) {
    let label = |n: u64| match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    };
    let mut header = format!("\n| query ({backend}) |");
    let mut rule = "|---|".to_owned();
    for &size in sizes {
        header += &format!(" {} p50 / p95 ms |", label(size));
        rule += "---|";
    }
    let ratio = (sizes.len() >= 2).then(|| (sizes[sizes.len() - 1], sizes[sizes.len() - 2]));
    if let Some((big, small)) = ratio {
        header += &format!(" p95 {} / {} |", label(big), label(small));
        rule += "---|";
    }
    println!("{header}\n{rule}");
    for (name, stats) in table {
        let mut line = format!("| {name} |");
        for s in stats {
            line += &format!(" {} / {} |", ms(s.p50), ms(s.p95));
        }
        if ratio.is_some() && stats.len() >= 2 {
            let (big, small) = (stats[stats.len() - 1].p95, stats[stats.len() - 2].p95);
            line += &format!(" {:.1}× |", big / small);
        }
        println!("{line}");
    }
}

fn ms(v: f64) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v => format!("{v:.1}"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Incident,
    Consultation,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Self::Incident => "ListIncidents",
            Self::Consultation => "ListConsultations",
        }
    }

    /// The list tabs: incidents' stages, consultations' statuses (0 is all).
    fn tabs(self) -> [&'static str; 4] {
        match self {
            Self::Incident => ["all", "Nuevos", "En revisión", "Resueltos"],
            Self::Consultation => ["all", "Recepcionado", "En curso", "Solución"],
        }
    }
}

/// One list call: a search term, a tab, a created range, a page.
#[derive(Default, Clone)]
struct Params {
    query: String,
    tab: usize,
    range: Option<(i64, i64)>,
    page_token: String,
}

/// The call of a query's i-th repetition.
type Make = Box<dyn Fn(&mut Bench, &Seeded, usize) -> Params>;
/// The search term of a query's i-th repetition.
type Term = Box<dyn Fn(&mut Bench, &Seeded, usize) -> String>;

/// The queries of the goal, each a name and the call for its i-th repetition.
fn queries(ty: Type) -> Vec<(String, Make)> {
    let terms: Vec<(&str, Term)> = vec![
        (
            match ty {
                Type::Incident => "tracking-number fragment",
                Type::Consultation => "order-reference fragment",
            },
            Box::new(move |b, s, _| {
                let all = match ty {
                    Type::Incident => &s.tracking_numbers,
                    Type::Consultation => &s.order_references,
                };
                let whole = &all[b.rng.random_range(0..all.len())];
                let len = whole.len().min(8);
                let at = b.rng.random_range(0..=whole.len() - len);
                whole[at..at + len].to_owned()
            }),
        ),
        (
            "rare word",
            Box::new(|b, _, _| {
                let words = rare_words();
                words[b.rng.random_range(0..words.len())].clone()
            }),
        ),
        (
            "common word (~60 %)",
            Box::new(|_, _, i| COMMON_WORDS[i % COMMON_WORDS.len()].to_owned()),
        ),
        (
            "word typed without accents",
            Box::new(|b, _, _| {
                let words = accented_words();
                fold(&words[b.rng.random_range(0..words.len())])
            }),
        ),
        (
            "ticket number",
            Box::new(move |b, s, _| {
                let last = match ty {
                    Type::Incident => s.last_incident,
                    Type::Consultation => s.last_consultation,
                };
                b.rng.random_range(1..=last.max(1)).to_string()
            }),
        ),
        (
            "assignee's name",
            Box::new(|b, _, _| AGENTS[b.rng.random_range(0..AGENTS.len())].1.to_owned()),
        ),
    ];
    let mut all: Vec<(String, Make)> = vec![];
    for (tab, label) in ty.tabs().into_iter().enumerate() {
        let make: Make = Box::new(move |_, _, _| Params {
            tab,
            ..Params::default()
        });
        all.push((format!("no query, tab {label}, with counts"), make));
    }
    let terms: Vec<(&str, Rc<Term>)> = terms
        .into_iter()
        .map(|(name, term)| (name, Rc::new(term)))
        .collect();
    for (name, term) in &terms {
        let term = term.clone();
        let make: Make = Box::new(move |b, s, i| Params {
            query: term(b, s, i),
            ..Params::default()
        });
        all.push((name.to_string(), make));
    }
    // No term, then each term, narrowed to a tab (rotating) and a month of the year.
    let none: Rc<Term> = Rc::new(Box::new(|_, _, _| String::new()));
    for (name, term) in [("no query", none)].into_iter().chain(terms) {
        let make: Make = Box::new(move |b, s, i| {
            let days = b.rng.random_range(0..335);
            let from = b.until - 365 * DAY + days * DAY;
            Params {
                query: term(b, s, i),
                tab: 1 + i % 3,
                range: Some((from, from + 30 * DAY)),
                ..Params::default()
            }
        });
        all.push((format!("{name} + tab + 30-day range"), make));
    }
    all
}

const DAY: i64 = 86_400_000_000;

struct Bench {
    incidents: IncidentServiceClient<Channel>,
    consultations: ConsultationServiceClient<Channel>,
    token: String,
    rng: StdRng,
    until: i64,
}

impl Bench {
    /// One timed list call: (milliseconds, next page token).
    async fn list(&mut self, ty: Type, p: &Params) -> anyhow::Result<(f64, String)> {
        let stamp = |us: i64| prost_types::Timestamp {
            seconds: us.div_euclid(1_000_000),
            nanos: 0,
        };
        let (from, to) = (p.range.map(|r| stamp(r.0)), p.range.map(|r| stamp(r.1)));
        let started = Instant::now();
        let next = match ty {
            Type::Incident => {
                let stage = [
                    IncidentStage::Unspecified,
                    IncidentStage::New,
                    IncidentStage::InReview,
                    IncidentStage::Resolved,
                ][p.tab];
                let message = ListIncidentsRequest {
                    stage: stage as i32,
                    query: p.query.clone(),
                    created_from: from,
                    created_to: to,
                    page_token: p.page_token.clone(),
                    ..Default::default()
                };
                let response = self.incidents.list_incidents(request(&self.token, message));
                response.await?.into_inner().next_page_token
            }
            Type::Consultation => {
                let statuses = match p.tab {
                    1 => vec![ConsultationStatus::Received as i32],
                    2 => vec![ConsultationStatus::InProgress as i32],
                    3 => vec![ConsultationStatus::Solved as i32],
                    _ => vec![],
                };
                let message = ListConsultationsRequest {
                    statuses,
                    query: p.query.clone(),
                    created_from: from,
                    created_to: to,
                    page_token: p.page_token.clone(),
                    ..Default::default()
                };
                let response = self
                    .consultations
                    .list_consultations(request(&self.token, message));
                response.await?.into_inner().next_page_token
            }
        };
        Ok((started.elapsed().as_secs_f64() * 1000.0, next))
    }
}
