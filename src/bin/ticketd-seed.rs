//! Fills a database with realistic incidents and consultations (issue #13):
//! migrates it as the server does, then inserts the tickets in creation
//! order, thousands per transaction, and moves the ticket numbering past
//! them, so that a server started on it keeps counting.
//!
//! `cargo run --release --bin ticketd-seed -- --count 100000 sqlite://data/seed.db?mode=rwc`
//! (or `postgres://postgres@127.0.0.1:5432/seeded`; the database must exist.)
use clap::Parser;

#[allow(dead_code)] // the seeder uses only `common::seed`
mod common;
use common::seed::{Options, Population, seed};

#[derive(Parser)]
struct Args {
    /// The database to fill, as the server's TICKETD_DATABASE_URL.
    #[arg(env = "TICKETD_DATABASE_URL")]
    database_url: String,
    /// Incidents, and as many consultations.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Incidents, if not `--count`.
    #[arg(long)]
    incidents: Option<u64>,
    /// Consultations, if not `--count`.
    #[arg(long)]
    consultations: Option<u64>,
    #[command(flatten)]
    population: Population,
    /// Tickets are created over the year before this day (RFC 3339). Default: now.
    #[arg(long)]
    until: Option<String>,
    /// Tickets per transaction.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let until = match &args.until {
        Some(at) => chrono::DateTime::parse_from_rfc3339(at)?.timestamp_micros(),
        None => chrono::Utc::now().timestamp_micros(),
    };
    let options = Options {
        incidents: args.incidents.unwrap_or(args.count),
        consultations: args.consultations.unwrap_or(args.count),
        accounts: args.population.accounts,
        seed: args.population.seed,
        until,
        batch: args.batch,
    };
    let seeded = seed(&args.database_url, &options).await?;
    println!(
        "seeded {} incidents (numbers 1–{}) and {} consultations ({} numbered) in {:.1} s: {:.0} rows/s",
        options.incidents,
        seeded.last_incident,
        options.consultations,
        seeded.last_consultation,
        seeded.seconds,
        seeded.rows as f64 / seeded.seconds,
    );
    Ok(())
}
