//! Logging through tracing, filtered by `RUST_LOG` (default `info`, with
//! sqlx's per-statement logs quieted), and, when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set, the same spans exported to an OpenTelemetry collector over OTLP/gRPC
//! (the standard `OTEL_*` variables configure the exporter and the resource).
use anyhow::Context as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

pub use crate::config::LogFormat;

/// Keeps the span exporter alive; [`Telemetry::shutdown`] flushes it.
#[must_use = "dropping it loses the spans not yet exported; call shutdown() at exit"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber with text logs; see [`init_with`].
pub fn init() -> anyhow::Result<Telemetry> {
    init_with(LogFormat::Text)
}

/// Installs the global subscriber, logging in `format` to stdout. Exporting
/// starts only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; it needs a running
/// tokio runtime.
pub fn init_with(format: LogFormat) -> anyhow::Result<Telemetry> {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,h2=warn"))
    };
    // Colors only on a terminal: logs written to files stay greppable.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(ansi)
            .with_filter(filter())
            .boxed(),
        // One object per line: the event's fields at the top level, and the
        // innermost span's fields (a request's method and `trace_id`) under "span".
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter())
            .boxed(),
    };
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.trim().is_empty());
    let provider = endpoint.as_ref().map(|_| provider()).transpose()?;
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("ticketd"))
            // The exporter speaks gRPC itself: its own h2/hyper/tonic spans
            // would be exported in turn, forever.
            .with_filter(
                [
                    "h2",
                    "hyper",
                    "hyper_util",
                    "tonic",
                    "tower",
                    "opentelemetry",
                ]
                .iter()
                .fold(filter(), |f, target| {
                    f.add_directive(format!("{target}=off").parse().expect("a directive"))
                }),
            )
    });
    // Another subscriber may already be installed (tests run many servers in one process).
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    if let Some(endpoint) = endpoint {
        tracing::info!(%endpoint, "exporting spans over OTLP/gRPC");
    }
    Ok(Telemetry { provider })
}

fn provider() -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .context("cannot build the OTLP span exporter")?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("ticketd");
    }
    // Exports from a task on our runtime: tonic needs its reactor.
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource.build())
        .build())
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // Blocks until the export task is done: keep it off the runtime's workers.
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                eprintln!("cannot flush the OpenTelemetry exporter: {e}");
            }
        }
    }
}

/// The span of one gRPC request, named after its method
/// (`ticketd.v1.IncidentService/CreateIncident`); a W3C `traceparent` header
/// makes it part of the caller's trace. With export on, its `trace_id` field
/// puts the trace in every log line of the request (JSON logs show it).
pub fn request_span(request: &tonic::codegen::http::Request<()>) -> tracing::Span {
    let method = request.uri().path().trim_start_matches('/').to_owned();
    let span = tracing::info_span!(
        "grpc request",
        otel.name = %method,
        otel.kind = "server",
        rpc.system = "grpc",
        trace_id = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    let _ = span.set_parent(parent);
    // Without an OpenTelemetry layer the context is empty and invalid.
    let context = span.context();
    let trace = context.span().span_context().clone();
    if trace.is_valid() {
        span.record("trace_id", tracing::field::display(trace.trace_id()));
    }
    span
}
