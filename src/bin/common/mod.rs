//! What the benchmark binaries share: their common arguments, fresh
//! databases, a server run as a child process and measured from `/proc`,
//! tokens it accepts, and the statistics they print.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ticketd::auth::{Claims, sign_hs256};

#[allow(dead_code)] // only the seeder and the search bench fill databases
pub mod seed;

/// The secret the child servers verify tokens with.
pub const SECRET: &str = "bench-secret-bench-secret-bench-secret";

/// Where a benchmark runs: on which database, with which server binary.
#[derive(clap::Args)]
// Without these, clap would show the doc comment above as the description
// of every binary that flattens it in.
#[command(about = None, long_about = None)]
pub struct Target {
    /// Run on PostgreSQL: a server URL whose user may create databases.
    /// Default: a fresh SQLite file in a temporary directory.
    #[arg(long)]
    pub postgres: Option<String>,
    /// The server binary. Default: the `ticketd` next to this binary.
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
}

/// A benchmark's `main`: parses its arguments, runs `run` on fresh
/// databases named `names` on the target `target_of` picks from them (see
/// `Target::with_databases`), and drops them after.
#[allow(dead_code)] // the seeder, the search and the watch bench loop their own way
pub fn bench<A: clap::Parser, const N: usize>(
    target_of: fn(&A) -> &Target,
    names: [&str; N],
    run: impl AsyncFnOnce(&A, [&str; N], &Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let args = A::parse();
    let bench = async |urls: [&str; N], dir: &Path| run(&args, urls, dir).await;
    tokio::runtime::Runtime::new()?.block_on(target_of(&args).with_databases(names, bench))
}

#[allow(dead_code)] // the watch bench runs its own fixed setup
impl Target {
    pub fn server_exe(&self) -> anyhow::Result<PathBuf> {
        match &self.server_bin {
            Some(exe) => Ok(exe.clone()),
            None => sibling("ticketd"),
        }
    }

    /// The database's name, for the lines a bench prints.
    pub fn backend(&self) -> &'static str {
        match self.postgres {
            Some(_) => "PostgreSQL",
            None => "SQLite",
        }
    }

    /// Runs `bench` on fresh databases, one per name in `names` (see
    /// `database`), and a temporary directory; drops the databases after,
    /// whatever `bench` returns.
    pub async fn with_databases<const N: usize, T>(
        &self,
        names: [&str; N],
        bench: impl AsyncFnOnce([&str; N], &Path) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let dir = tempfile::tempdir()?;
        let mut databases = Vec::with_capacity(N);
        let mut made = Ok(());
        for name in names {
            match self.database(dir.path(), name).await {
                Ok(database) => databases.push(database),
                Err(e) => {
                    made = Err(e);
                    break;
                }
            }
        }
        let result = match made {
            Ok(()) => {
                let urls = std::array::from_fn(|i| databases[i].url());
                bench(urls, dir.path()).await
            }
            Err(e) => Err(e),
        };
        for database in databases {
            database.drop().await;
        }
        result
    }

    /// A fresh database for a run: on PostgreSQL one created beside
    /// `--postgres` (dropped by `BenchDatabase::drop`), else the SQLite file
    /// `name`.db in `dir`.
    pub async fn database(&self, dir: &Path, name: &str) -> anyhow::Result<BenchDatabase> {
        match &self.postgres {
            Some(admin) => BenchDatabase::postgres(admin).await,
            None => Ok(BenchDatabase::sqlite(&dir.join(format!("{name}.db")))),
        }
    }
}

/// How a load bench measures: runs of a fixed length, after a warm-up.
#[derive(clap::Args)]
// Without these, clap would show the doc comment above as the description
// of every binary that flattens it in.
#[command(about = None, long_about = None)]
pub struct Runs {
    /// Length of each measured run, of each thing the bench measures.
    #[arg(long, default_value_t = 5, value_parser = positive::<u64>())]
    pub seconds: u64,
    /// Measured runs; each measures everything the bench compares, in an
    /// order that rotates run by run.
    #[arg(long = "runs", value_name = "RUNS", default_value_t = 3, value_parser = positive::<usize>())]
    pub count: usize,
    /// Untimed warm-up of everything measured before the first run.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
}

#[allow(dead_code)] // the load benches use it
impl Runs {
    /// The length of one measured run.
    pub fn length(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    /// The warm-up, if there is one.
    pub fn warmup(&self) -> Option<Duration> {
        (self.warmup > 0).then(|| Duration::from_secs(self.warmup))
    }
}

/// A count or a length that must be at least 1.
pub fn positive<T>() -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// A binary next to this one (`cargo build --release` builds them together).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// A token for subject `bench` with `role` (and `account`), valid for an hour.
pub fn token(role: &str, account: Option<&str>) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    sign_hs256(SECRET.as_bytes(), &Claims::new("bench", role, account, exp)).unwrap_or_default()
}

/// A server process listening on 127.0.0.1; killed by [`Server::stop`] or on drop.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    /// Runs `exe args…` against the database `url`, with `dir` as its data
    /// directory, and waits for the address it logs.
    pub fn start(exe: &Path, args: &[&str], url: &str, dir: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(exe)
            .args(args)
            .env("TICKETD_DATABASE_URL", url)
            .env("TICKETD_JWT_SECRET", SECRET)
            .env("TICKETD_DATA_DIR", dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!(
                    "start {} (build it first: cargo build --release)",
                    exe.display()
                )
            })?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line
                    .find("127.0.0.1:")
                    .filter(|_| line.contains("listening"))
                {
                    let addr = line[at..].split_whitespace().next().unwrap_or("");
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .context("server address")?;
        Ok(Self { child, addr })
    }

    fn status_kb(&self, key: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/<pid>/status"))?;
        Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
    }

    /// Resident memory now (KiB).
    #[allow(dead_code)] // the search bench does not measure memory
    pub fn rss_kb(&self) -> anyhow::Result<u64> {
        self.status_kb("VmRSS:")
    }

    /// Peak resident memory so far (KiB).
    #[allow(dead_code)] // one bench reads only the current RSS
    pub fn hwm_kb(&self) -> anyhow::Result<u64> {
        self.status_kb("VmHWM:")
    }

    /// The process id (for `strace -p`, `perf -p`).
    #[allow(dead_code)] // only the RPC bench prints it
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a bench's data lives: a SQLite file, or a PostgreSQL database
/// created for the run beside the one given, and dropped after it.
#[allow(dead_code)] // the watch bench uses none
pub enum BenchDatabase {
    Sqlite(String),
    /// (server URL, the database's name, its URL).
    Postgres(String, String, String),
}

#[allow(dead_code)] // the watch bench uses none
impl BenchDatabase {
    pub fn sqlite(file: &Path) -> Self {
        Self::Sqlite(format!("sqlite://{}?mode=rwc", file.display()))
    }

    pub async fn postgres(admin_url: &str) -> anyhow::Result<Self> {
        use sea_orm::ConnectionTrait;
        let name = format!("ticketd_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(admin_url).await?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        admin.close().await?;
        let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = if query.is_empty() {
            format!("{server}/{name}")
        } else {
            format!("{server}/{name}?{query}")
        };
        Ok(Self::Postgres(admin_url.to_owned(), name, url))
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite(url) | Self::Postgres(_, _, url) => url,
        }
    }

    pub async fn drop(self) {
        use sea_orm::ConnectionTrait;
        if let Self::Postgres(admin_url, name, _) = self
            && let Ok(admin) = sea_orm::Database::connect(&admin_url).await
        {
            let dropped = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            if let Err(e) = dropped {
                eprintln!("cannot drop {name}: {e}");
            }
        }
    }
}

/// A request carrying `token`.
#[allow(dead_code)] // the export bench builds its one request itself
pub fn request<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// A channel to a child server at `addr`.
#[allow(dead_code)] // the export bench connects itself
pub async fn connect(addr: &str) -> anyhow::Result<tonic::transport::Channel> {
    Ok(
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?,
    )
}

/// The incident the benches file: a damaged Estafeta shipment.
#[allow(dead_code)] // the export bench seeds rows directly
pub fn new_incident() -> ticketd::pb::CreateIncidentRequest {
    use ticketd::pb::{CreateIncidentRequest, IncidentKind};
    CreateIncidentRequest {
        kind: IncidentKind::Shipment as i32,
        tracking_number: "EST-BENCH".into(),
        carrier: "estafeta".into(),
        category: "damaged".into(),
        description: "bench".into(),
        ..Default::default()
    }
}

/// An incidents row as a bench writes it straight to the database: number
/// `number`, a damaged Estafeta shipment filed by `bench` for `acme` at
/// `created_at`, NEW_TICKET, its estimate the default 21 days on.
#[allow(dead_code)] // the benches that write rows without the server use it
pub fn incident_row(number: i64, created_at: i64) -> ticketd::store::entity::incident::Model {
    const DAY: i64 = 86_400_000_000;
    ticketd::store::entity::incident::Model {
        id: uuid::Uuid::now_v7().to_string(),
        number,
        account: "acme".into(),
        kind: "SHIPMENT".into(),
        status: "NEW_TICKET".into(),
        previous_status: None,
        tracking_number: "EST-BENCH".into(),
        carrier_code: "estafeta".into(),
        category_code: "damaged".into(),
        description: "bench".into(),
        shipped_at: None,
        claimed_amount: None,
        claimed_currency: None,
        requester_id: "bench".into(),
        requester_name: "bench".into(),
        assignee_id: None,
        assignee_name: None,
        requester_email: None,
        notify_locale: None,
        assignee_email: None,
        resolution_reason: None,
        resolution_note: None,
        version: 1,
        created_at,
        updated_at: created_at,
        resolved_at: None,
        search_text: String::new(),
        idempotency_key: None,
        request_hash: None,
        auto_close_at: None,
        estimated_resolution_at: Some(created_at + 21 * DAY),
        paused_since: None,
        breached_at: None,
    }
}

/// Quantile `q` of a latency histogram recorded in µs, in ms.
#[allow(dead_code)] // the load benches use it
pub fn ms(latency: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    latency.value_at_quantile(q) as f64 / 1000.0
}

/// The median of `values` (0 when there are none).
#[allow(dead_code)] // the benches that compare runs use it
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The 1, 5 and 15 minute load averages.
#[allow(dead_code)] // the benches that compare runs use it
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// What a bench's first line says of this machine: its cores and its load.
#[allow(dead_code)] // the benches that compare runs use it
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores; load average {}", load_average())
}

/// p50 / p99 / p999 of a latency histogram recorded in µs, in ms.
#[allow(dead_code)] // the load benches use it
pub fn percentiles(latency: &hdrhistogram::Histogram<u64>) -> String {
    let [p50, p99, p999] = [0.5, 0.99, 0.999].map(|q| ms(latency, q));
    format!("{p50:.2} / {p99:.2} / {p999:.2}")
}
