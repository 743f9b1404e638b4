//! `ticketd serve | migrate | token | health`. Thin: parse config, init telemetry, run.
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use ticketd::auth::{self, Claims, Verifier};
use ticketd::config::{Cli, Command, Common, TokenArgs};
use ticketd::domain::clock::SystemClock;
use ticketd::domain::consultation::Targets;
use ticketd::{app, store::Store, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let telemetry = telemetry::init_with(cli.common.log_format)?;
            let verifier = verifier(&cli.common)?.with_leeway(args.jwt_leeway);
            let settings = app::Settings {
                database_url: database_url(&cli.common)?,
                verifier,
                clock: Arc::new(SystemClock),
                consultation_targets: Targets {
                    technology_due: args.technology_due,
                    business_hours: args.consultation_business_hours,
                },
                progress_interval: args.progress_interval,
                event_buffer: args.event_buffer,
                event_poll: args.event_poll,
                drain_timeout: args.drain_timeout,
                calendar: args.calendar()?,
                scheduler_poll: args.scheduler_poll,
                export_stall_timeout: args.export_stall_timeout,
                health_interval: args.health_interval,
                limits: args.limits,
                notify: args.notify,
                metrics_listener: match args.metrics_listen {
                    Some(addr) => Some(
                        tokio::net::TcpListener::bind(addr)
                            .await
                            .with_context(|| format!("cannot listen for metrics on {addr}"))?,
                    ),
                    None => None,
                },
            };
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            let served = app::serve(settings, listener, app::shutdown_signal()).await;
            telemetry.shutdown().await;
            served
        }
        Command::Migrate => {
            let telemetry = telemetry::init_with(cli.common.log_format)?;
            let url = database_url(&cli.common)?;
            let migrated = migrate(&url).await;
            telemetry.shutdown().await;
            migrated
        }
        Command::Token(args) => token(&cli.common, args),
        Command::Health(args) => {
            let status = ticketd::grpc::health::probe(args.addr, &args.service, args.timeout)
                .await
                .unwrap_or_else(|e| {
                    eprintln!("{e:#}");
                    std::process::exit(1)
                });
            use tonic_health::ServingStatus::*;
            println!(
                "{}",
                match status {
                    Serving => "SERVING",
                    NotServing => "NOT_SERVING",
                    Unknown => "UNKNOWN",
                }
            );
            if status != Serving {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn migrate(url: &str) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    tracing::info!(database = %ticketd::store::redact(url), "migrations applied");
    Ok(())
}

/// The database URL; for the SQLite default, makes sure the data directory exists.
fn database_url(common: &Common) -> anyhow::Result<String> {
    if common.database_url.is_none() {
        std::fs::create_dir_all(&common.data_dir).with_context(|| {
            format!("cannot create data directory {}", common.data_dir.display())
        })?;
    }
    Ok(common.database_url())
}

fn verifier(common: &Common) -> anyhow::Result<Verifier> {
    if let Some(path) = &common.jwt_public_key_file {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Verifier::rs256_pem(&pem);
    }
    let (secret, created) =
        auth::load_or_create_secret(common.jwt_secret.as_deref(), &common.data_dir, true)?;
    if created {
        tracing::warn!(
            path = %common.data_dir.join("jwt-secret").display(),
            "no TICKETD_JWT_SECRET configured: generated a random development secret (mode 0600); \
             `ticketd token` signs with it"
        );
    }
    Ok(Verifier::hs256(&secret))
}

fn token(common: &Common, args: TokenArgs) -> anyhow::Result<()> {
    if common.jwt_public_key_file.is_some() && common.jwt_secret.is_none() {
        bail!(
            "tokens for an RS256 deployment are minted by your identity provider, not by ticketd"
        );
    }
    if ticketd::domain::principal::Role::parse(&args.role).is_none() {
        bail!("--role must be requester, agent or admin");
    }
    if args.role == "requester" && args.account.is_none() {
        bail!("requester tokens need --account");
    }
    let (secret, _) =
        auth::load_or_create_secret(common.jwt_secret.as_deref(), &common.data_dir, true)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = Claims {
        sub: args.sub,
        role: args.role,
        account: args.account,
        name: args.name,
        email: args.email,
        exp: now + args.ttl.as_secs(),
        nbf: None,
        iat: now,
    };
    println!("{}", auth::sign_hs256(&secret, &claims)?);
    Ok(())
}
