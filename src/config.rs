//! Command line and environment configuration. Every knob has a flag, an
//! environment variable and a default; doc comments are the `--help` text.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::notify_rules::{DEFAULT_RULES, Rules};

#[derive(Debug, Parser)]
#[command(
    name = "ticketd",
    version,
    about = "gRPC ticket backend for logistics platforms"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Directory for the embedded SQLite database and the generated JWT secret.
    #[arg(
        long,
        env = "TICKETD_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://path/to/file.db` or `postgres://user@host/db`.
    /// Defaults to the SQLite file `<data-dir>/ticketd.db`.
    #[arg(long, env = "TICKETD_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// HS256 secret for bearer tokens (at least 32 bytes). Without it (and
    /// without a public key), a random secret is kept in `<data-dir>/jwt-secret`.
    #[arg(
        long,
        env = "TICKETD_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,
    /// PEM file with an RS256 public key; tokens are then verified with it
    /// (and minted elsewhere).
    #[arg(long, env = "TICKETD_JWT_PUBLIC_KEY_FILE", global = true)]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Log lines as `text` or `json` (one JSON object per line, with the
    /// request span's `trace_id` when OpenTelemetry export is on).
    #[arg(
        long,
        env = "TICKETD_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Common {
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("ticketd.db").display()
            )
        })
    }
}

// Parsed once at start: the size of `serve`'s options costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the gRPC server (migrating the database first).
    Serve(ServeArgs),
    /// Applies database migrations and exits.
    Migrate,
    /// Prints a bearer token signed with the configured (or generated) secret.
    Token(TokenArgs),
    /// Asks a running server's grpc.health.v1 service; exits 0 when it is
    /// SERVING, 1 otherwise (for container health checks and humans).
    Health(HealthArgs),
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The server to ask. Read from `TICKETD_LISTEN` like `serve`'s
    /// `--listen`, so in a container the same setting serves both; an
    /// unspecified address (`0.0.0.0`, `[::]`) is asked on loopback.
    #[arg(long, env = "TICKETD_LISTEN", default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    /// The service whose health to ask for (empty: the server as a whole).
    #[arg(long, default_value = "")]
    pub service: String,
    /// Give up (and exit 1) after this long.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TICKETD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Due time of TECHNOLOGY consultations, counted from filing.
    #[arg(long, env = "TICKETD_TECHNOLOGY_DUE", default_value = "48h", value_parser = parse_duration)]
    pub technology_due: Duration,
    /// An idle watch stream gets a progress message (with its resume point) this often.
    #[arg(long, env = "TICKETD_PROGRESS_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub progress_interval: Duration,
    /// Events kept in memory for streams that fall behind; a stream further
    /// behind catches up from the database.
    #[arg(long, env = "TICKETD_EVENT_BUFFER", default_value_t = 4096)]
    pub event_buffer: usize,
    /// The event follower re-reads the log at least this often. Local commits
    /// and (on PostgreSQL) other replicas' NOTIFY wake it at once; the poll
    /// only covers a wake-up that was lost (e.g. while LISTEN reconnects).
    #[arg(long, env = "TICKETD_EVENT_POLL", default_value = "1s", value_parser = parse_duration)]
    pub event_poll: Duration,
    /// At shutdown, how long open streams and requests get before connections are closed.
    #[arg(long, env = "TICKETD_DRAIN_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// The calendar's time zone (IANA name): reports show dates in it and
    /// read their date ranges in it.
    #[arg(long, env = "TICKETD_TIMEZONE", default_value = "America/Mexico_City")]
    pub time_zone: chrono_tz::Tz,
    /// A JSON file with the business calendar (opening hours per day, holidays,
    /// closed dates, time zone); see the README. Default: Mon–Fri 09:00–18:00,
    /// Sat 09:00–14:00, Mexican federal holidays.
    #[arg(long, env = "TICKETD_CALENDAR_FILE")]
    pub calendar_file: Option<PathBuf>,
    /// Count consultation due times in business hours on the calendar instead of wall-clock time.
    #[arg(long, env = "TICKETD_CONSULTATION_BUSINESS_HOURS")]
    pub consultation_business_hours: bool,
    /// The deadline scheduler (auto-close) looks for due work at least this often;
    /// it also wakes at the next deadline and when a change sets one.
    #[arg(long, env = "TICKETD_SCHEDULER_POLL", default_value = "30s", value_parser = parse_duration)]
    pub scheduler_poll: Duration,
    /// A report download whose client takes no data for this long is abandoned
    /// (it ends with ABORTED), so that a stalled client does not keep one of
    /// the server's report slots and its database snapshot.
    #[arg(long, env = "TICKETD_EXPORT_STALL_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub export_stall_timeout: Duration,
    /// How far a token issuer's clock may be from this server's: a token is
    /// accepted until its `exp` plus this, from its `nbf` minus this, and with
    /// an `iat` at most this far ahead.
    #[arg(long, env = "TICKETD_JWT_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    pub jwt_leeway: Duration,
    /// Health checks the database this often; after two failed checks in a
    /// row it reports NOT_SERVING until the database answers again.
    #[arg(long, env = "TICKETD_HEALTH_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub health_interval: Duration,
    #[command(flatten)]
    pub limits: crate::limits::Limits,
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// Serve Prometheus metrics (`GET /metrics`) on this address, e.g.
    /// `0.0.0.0:9090`. Off when not given.
    #[arg(long, env = "TICKETD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Outbound notifications: who is told what, and how the outbox dispatcher
/// delivers webhooks and e-mails.
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// A failed webhook delivery is tried again after this delay, doubling
    /// per failure (at most 1 h between two attempts)…
    #[arg(long = "notify-retry-base", env = "TICKETD_NOTIFY_RETRY_BASE", default_value = "2s", value_parser = parse_duration)]
    pub retry_base: Duration,
    /// …until this long after its event (or after a manual RetryDelivery);
    /// then it is dead, listed by ListDeliveries and retryable by hand.
    #[arg(long = "notify-retry-horizon", env = "TICKETD_NOTIFY_RETRY_HORIZON", default_value = "24h", value_parser = parse_duration)]
    pub retry_horizon: Duration,
    /// Each webhook attempt (connect, send, answer) gets this long.
    #[arg(long = "notify-timeout", env = "TICKETD_NOTIFY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The dispatcher looks for due deliveries at least this often; new
    /// events (also other replicas'), retries and resumes wake it at once.
    #[arg(long = "notify-poll", env = "TICKETD_NOTIFY_POLL", default_value = "1s", value_parser = parse_duration)]
    pub poll: Duration,
    /// Send e-mail notifications through this SMTP server, in lettre's URL
    /// form: `smtp://user:pass@host:587?tls=required` (STARTTLS),
    /// `smtps://user:pass@host:465` (TLS), `smtp://127.0.0.1:2525` (plain,
    /// a relay on loopback). Off when not given: no e-mail is written.
    #[arg(long, env = "TICKETD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The From of the e-mails, e.g. `Soporte <soporte@example.com>`.
    #[arg(
        long,
        env = "TICKETD_SMTP_FROM",
        default_value = "ticketd <ticketd@localhost>"
    )]
    pub smtp_from: String,
    /// The front end's base URL: e-mails link to `<url>/incidents/<id>` and
    /// `<url>/consultations/<id>`. Without it they carry no link.
    #[arg(long, env = "TICKETD_FRONTEND_URL")]
    pub frontend_url: Option<String>,
    /// Who is told about what, by e-mail and in the webhook documents'
    /// `notify` list: `relation=trigger,…;relation=…`. Relations: requester,
    /// assignee. Triggers: created, status (any status change), comment (a
    /// public comment by an agent), missing_data, auto_close, assigned,
    /// requester_comment, breach (SLA). A relation left out keeps its
    /// defaults; `assignee=` tells the assignee nothing. Internal notes and
    /// SIMPLE consultations tell nobody, whatever this says.
    #[arg(
        long = "notify-rules",
        env = "TICKETD_NOTIFY_RULES",
        default_value = DEFAULT_RULES,
        value_parser = Rules::parse
    )]
    pub rules: Rules,
    /// A PEM file of extra root certificates to trust for `https://` webhook
    /// endpoints (a private CA), besides the built-in Mozilla roots
    /// (webpki-roots; the system's store is not read).
    #[arg(long, env = "TICKETD_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
}

impl Default for NotifyArgs {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(2),
            retry_horizon: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            smtp_url: None,
            smtp_from: "ticketd <ticketd@localhost>".into(),
            frontend_url: None,
            rules: Rules::default(),
            webhook_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// requester, agent or admin.
    #[arg(long)]
    pub role: String,
    /// The subject (user id).
    #[arg(long)]
    pub sub: String,
    /// The tenant account (required for requesters).
    #[arg(long)]
    pub account: Option<String>,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// E-mail address.
    #[arg(long)]
    pub email: Option<String>,
    /// Lifetime, e.g. `30m`, `24h`, `7d`.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub ttl: Duration,
}

/// Parses `500ms`, `30s`, `15m`, `24h` or `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 15m or 24h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

impl ServeArgs {
    /// The business calendar: the file's, or the default, in `--time-zone`
    /// unless the file names its own. Errors say what is wrong in the file.
    pub fn calendar(&self) -> anyhow::Result<crate::domain::calendar::Calendar> {
        use crate::domain::calendar::{Calendar, CalendarFile};
        use anyhow::Context;
        let Some(path) = &self.calendar_file else {
            return Ok(Calendar::mexico_default().with_time_zone(self.time_zone));
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read calendar file {}", path.display()))?;
        let file: CalendarFile = serde_json::from_str(&text)
            .with_context(|| format!("calendar file {} is not valid", path.display()))?;
        file.into_calendar(self.time_zone)
            .map_err(|e| anyhow::anyhow!("calendar file {}: {e}", path.display()))
    }
}
