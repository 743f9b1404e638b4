//! Startup: open the database, migrate, build the services, serve.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tower::util::MapResponseLayer;

use crate::auth::Verifier;
use crate::domain::calendar::Calendar;
use crate::domain::clock::Clock;
use crate::domain::consultation::Targets;
use crate::events::Hub;
use crate::grpc::Authenticate;
use crate::grpc::consultation_api::ConsultationApi;
use crate::grpc::incident_api::IncidentApi;
use crate::grpc::limits::{Limited, StreamLimits};
use crate::grpc::notification_api::NotificationApi;
use crate::grpc::watch::{WatchSettings, Watcher};
use crate::grpc::webhook_api::WebhookApi;
use crate::pb::consultation_service_server::ConsultationServiceServer;
use crate::pb::incident_service_server::IncidentServiceServer;
use crate::pb::notification_service_server::NotificationServiceServer;
use crate::pb::webhook_service_server::WebhookServiceServer;
use crate::service::consultations::Consultations;
use crate::service::dispatcher::Dispatcher;
use crate::service::incidents::Incidents;
use crate::service::mail::{Mailer, Mailing};
use crate::service::notify::{Notifications, Outbound};
use crate::service::scheduler;
use crate::service::webhook::WebhookClient;
use crate::store::Store;

/// Largest request accepted, in bytes.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// What a running server needs.
pub struct Settings {
    pub database_url: String,
    pub verifier: Verifier,
    pub clock: Arc<dyn Clock>,
    pub consultation_targets: Targets,
    /// An idle watch stream gets a progress message this often.
    pub progress_interval: Duration,
    /// Events kept in memory for streams that fall behind.
    pub event_buffer: usize,
    /// The event follower re-reads the log at least this often, wake-ups aside.
    pub event_poll: Duration,
    /// How long open streams and requests get to finish at shutdown.
    pub drain_timeout: Duration,
    /// The business calendar; report dates and date ranges are in its time zone.
    pub calendar: Calendar,
    /// The deadline scheduler looks for due work at least this often.
    pub scheduler_poll: Duration,
    /// An export whose client takes nothing for this long is abandoned and
    /// its read snapshot released.
    pub export_stall_timeout: Duration,
    /// How often health checks the database.
    pub health_interval: Duration,
    /// Connections and streams clients may hold open.
    pub limits: crate::limits::Limits,
    /// Serves Prometheus metrics here when given (`crate::metrics`).
    pub metrics_listener: Option<TcpListener>,
    /// How the outbox dispatcher delivers webhooks.
    pub notify: crate::config::NotifyArgs,
}

/// Opens and migrates the database, then serves gRPC on `listener` until
/// `shutdown` resolves.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database_url).await?;
    store.migrate().await?;
    let catalog = Arc::new(
        crate::store::catalog::load(store.conn())
            .await
            .context("cannot load the catalogs")?,
    );
    let time_zone = settings.calendar.time_zone();
    let calendar = Arc::new(settings.calendar);
    let outbox_wake = Arc::new(tokio::sync::Notify::new());
    // E-mail is on with an SMTP URL: events write e-mails (rendered with
    // `mailing`), the dispatcher sends them (`mailer`). A bad URL or From
    // stops the start, with what is wrong.
    let n = &settings.notify;
    let (mailing, mailer) = match &n.smtp_url {
        Some(url) => {
            let mailer = Mailer::new(url, &n.smtp_from, n.timeout)?;
            let mailing = Mailing {
                frontend_url: n.frontend_url.clone(),
                time_zone,
                catalog: catalog.clone(),
            };
            tracing::info!(from = %n.smtp_from, "e-mail notifications are on");
            (Some(mailing), Some(Arc::new(mailer)))
        }
        None => (None, None),
    };
    // Who events tell: the e-mails' recipients and the webhook documents'
    // `notify` list (`--notify-rules`, checked when the flags were read).
    tracing::info!(rules = %n.rules, "notification rules");
    let outbound = Arc::new(Outbound {
        rules: n.rules,
        mail: mailing,
    });
    // https:// endpoints: a CA file that cannot be used stops the start.
    let webhooks = WebhookClient::new(n.webhook_ca_file.as_deref(), n.timeout)?;
    let dispatcher = Dispatcher::new(
        store.clone(),
        settings.clock.clone(),
        &settings.notify,
        outbox_wake.clone(),
        mailer,
        webhooks,
    );
    let notifications = Notifications::new(store.clone(), settings.clock.clone(), outbox_wake);
    let incidents = Incidents::new(
        store.clone(),
        catalog.clone(),
        settings.clock.clone(),
        calendar.clone(),
        settings.export_stall_timeout,
    )
    .with_outbound(outbound.clone());
    let consultations = Consultations::new(
        store.clone(),
        catalog,
        settings.clock,
        settings.consultation_targets,
        calendar,
        settings.export_stall_timeout,
        incidents.deadlines(),
    )
    .with_outbound(outbound);
    let limits = settings.limits;
    let watch_limits = StreamLimits::watch(
        limits.max_watch_streams,
        limits.max_watch_streams_per_principal,
    );
    let open_limits = StreamLimits::unauthenticated(limits.max_unauthenticated_streams);
    let auth = Authenticate::new(Arc::new(settings.verifier));
    let (stop_tx, stop_rx) = watch::channel(false);
    let hub = Hub::start(
        store.clone(),
        settings.event_buffer,
        settings.event_poll,
        stop_rx.clone(),
    )
    .await
    .context("cannot start the event hub")?;
    tokio::spawn(scheduler::run(
        incidents.clone(),
        consultations.clone(),
        settings.scheduler_poll,
        stop_rx.clone(),
    ));
    let dispatching = tokio::spawn(dispatcher.run(hub.subscribe(), stop_rx.clone()));
    let watcher = Watcher::new(
        hub,
        WatchSettings {
            progress_interval: settings.progress_interval,
        },
    );

    let (health_reporter, health) = tonic_health::server::health_reporter();
    crate::grpc::health::start(
        health_reporter,
        crate::service::Readiness::new(store.clone()),
        settings.health_interval,
        stop_rx.clone(),
    )
    .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    // Watch streams are counted behind authentication, per caller.
    let incident_api = InterceptedService::new(
        Limited::new(
            IncidentServiceServer::new(IncidentApi::new(incidents, watcher.clone(), time_zone))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            watch_limits.clone(),
            &["WatchTicket"],
        ),
        auth.clone(),
    );
    let consultation_api = InterceptedService::new(
        Limited::new(
            ConsultationServiceServer::new(ConsultationApi::new(
                consultations,
                watcher.clone(),
                time_zone,
            ))
            .max_decoding_message_size(MAX_REQUEST_BYTES),
            watch_limits.clone(),
            &["WatchTicket"],
        ),
        auth.clone(),
    );
    let webhook_api = InterceptedService::new(
        WebhookServiceServer::new(WebhookApi::new(notifications))
            .max_decoding_message_size(MAX_REQUEST_BYTES),
        auth.clone(),
    );
    let notification_api = InterceptedService::new(
        Limited::new(
            NotificationServiceServer::new(NotificationApi::new(watcher))
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            watch_limits,
            &["WatchNotifications"],
        ),
        auth,
    );
    // Health Watch and every reflection call (each is a stream) need no token.
    let health = Limited::new(health, open_limits.clone(), &["Watch"]);
    let reflection_v1 = Limited::new(reflection_v1, open_limits.clone(), &[]);
    let reflection_v1alpha = Limited::new(reflection_v1alpha, open_limits, &[]);

    let metrics = settings
        .metrics_listener
        .map(|listener| tokio::spawn(crate::metrics::serve(listener, store.clone())));

    let addr = listener.local_addr()?;
    tracing::info!(%addr, "ticketd listening");
    // On the shutdown signal, open streams are told to end (UNAVAILABLE, so
    // clients resume elsewhere) and tonic stops accepting; whatever is still
    // open after the drain timeout is dropped.
    let signal = async move {
        shutdown.await;
        // Health turns NOT_SERVING (grpc::health) while the open streams drain.
        let _ = stop_tx.send(true);
    };
    let server = Server::builder()
        .trace_fn(crate::telemetry::request_span)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .max_concurrent_streams(limits.max_streams_per_connection)
        // Outermost, so that it counts the status the client receives.
        .layer(crate::net::Around(crate::metrics::RpcMetrics))
        .layer(MapResponseLayer::new(
            crate::grpc::malformed::refuse_as_invalid,
        ))
        .layer(crate::net::Around(crate::net::CountCalls))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(incident_api)
        .add_service(consultation_api)
        .add_service(notification_api)
        .add_service(webhook_api)
        .serve_with_incoming_shutdown(crate::net::incoming(listener, &limits), signal);
    let mut stopping = stop_rx;
    let drain_timeout = settings.drain_timeout;
    let drained = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        tokio::time::sleep(drain_timeout).await;
    };
    tokio::select! {
        result = server => result.context("gRPC server failed")?,
        _ = drained => tracing::warn!(?drain_timeout, "drain timeout reached; closing remaining connections"),
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    // The dispatcher gives back the leases of attempts it interrupts, which
    // needs the pool: let it before closing (briefly; leases also run out).
    let _ = tokio::time::timeout(Duration::from_secs(2), dispatching).await;
    store.close().await;
    tracing::info!("ticketd stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
