//! Prometheus metrics, off unless `--metrics-listen` is given: then a
//! recorder is installed for the process and `GET /metrics` on that address
//! answers in the Prometheus text format.
//!
//! RPCs are measured by one tower layer around every service ([`RpcMetrics`]),
//! so no handler knows about metrics. Its labels come from the descriptor sets the
//! server registers: a path that names no method is counted as `unknown`, so a
//! client cannot grow the label set. Gauges that are state rather than events
//! (the database pool, report slots) are read from the store at each scrape.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `ticketd_grpc_requests_total` | counter | `method`, `code` |
//! | `ticketd_grpc_request_duration_seconds` | histogram | `method`, `code` |
//! | `ticketd_grpc_open_streams` | gauge | `method` (server-streaming RPCs) |
//! | `ticketd_report_slots_in_use`, `ticketd_report_slots` | gauge | |
//! | `ticketd_scheduler_lag_seconds` | histogram | |
//! | `ticketd_db_pool_connections` | gauge | `state` (`in_use`, `idle`) |
//! | `ticketd_db_pool_max_connections` | gauge | |
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use prost::Message as _;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http;

use crate::net::{AfterResponse, Hook};
use crate::store::Store;

/// Latency buckets, in seconds: a unary call here takes 1–10 ms (README,
/// Benchmarks); the long tail reaches the database's 10 s acquire timeout.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed on first use. `metrics` has one
/// global recorder, so servers started in one process share it.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        handle
    })
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, store: Store) -> anyhow::Result<()> {
    let handle = handle();
    metrics::gauge!("ticketd_report_slots").set(crate::store::MAX_SNAPSHOTS as f64);
    metrics::gauge!("ticketd_db_pool_max_connections")
        .set(f64::from(crate::store::MAX_CONNECTIONS));
    let scrape = move || {
        let store = store.clone();
        async move {
            metrics::gauge!("ticketd_report_slots_in_use").set(store.snapshots_in_use() as f64);
            let (open, idle) = pool_size(store.conn());
            metrics::gauge!("ticketd_db_pool_connections", "state" => "in_use")
                .set(open.saturating_sub(idle) as f64);
            metrics::gauge!("ticketd_db_pool_connections", "state" => "idle").set(idle as f64);
            (
                [(
                    http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                handle.render(),
            )
        }
    };
    let router = axum::Router::new().route("/metrics", axum::routing::get(scrape));
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    // Histogram samples wait in lock-free buckets until upkeep folds them in;
    // without it they would pile up between scrapes.
    let upkeep = async {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    };
    tokio::select! {
        served = axum::serve(listener, router).into_future() => served.context("metrics endpoint failed"),
        () = upkeep => unreachable!("upkeep runs forever"),
    }
}

/// The pool's open and idle connections (sqlx counts them without a query).
fn pool_size(db: &sea_orm::DatabaseConnection) -> (usize, usize) {
    fn of<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> (usize, usize) {
        (pool.size() as usize, pool.num_idle())
    }
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => of(db.get_postgres_connection_pool()),
        _ => of(db.get_sqlite_connection_pool()),
    }
}

/// What the layer knows about a method.
#[derive(Clone, Copy)]
struct Method {
    name: &'static str,
    server_streaming: bool,
}

/// Every method the server registers, by request path (`/pkg.Service/Method`).
fn methods() -> &'static HashMap<String, Method> {
    static METHODS: OnceLock<HashMap<String, Method>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let sets = [
            crate::pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut methods = HashMap::new();
        for set in sets {
            let set = prost_types::FileDescriptorSet::decode(set).expect("a descriptor set");
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        let name =
                            format!("{}.{}/{}", file.package(), service.name(), method.name());
                        methods.insert(
                            format!("/{name}"),
                            Method {
                                // Bounded: the registered methods, once per process.
                                name: Box::leak(name.into_boxed_str()),
                                server_streaming: method.server_streaming(),
                            },
                        );
                    }
                }
            }
        }
        methods
    })
}

/// Counts and times every RPC by method and status code, and keeps the
/// open-streams gauge of the server-streaming ones:
/// `.layer(Around(RpcMetrics))`.
#[derive(Clone, Copy, Default)]
pub struct RpcMetrics;

impl Hook for RpcMetrics {
    fn before<B>(&self, request: &mut http::Request<B>) -> AfterResponse {
        let method = methods()
            .get(request.uri().path())
            .copied()
            .unwrap_or(Method {
                name: "unknown",
                server_streaming: false,
            });
        let started = Instant::now();
        Box::new(move |response| {
            // Trailers-only: the call ended before any message.
            if let Some(status) = tonic::Status::from_header_map(response.headers()) {
                record(method, status.code(), started);
                return response;
            }
            let (parts, body) = response.into_parts();
            let body = Metered::new(body, method, started);
            http::Response::from_parts(parts, Body::new(body))
        })
    }
}

fn record(method: Method, code: Code, started: Instant) {
    let labels = [("method", method.name), ("code", code_name(code))];
    metrics::counter!("ticketd_grpc_requests_total", &labels).increment(1);
    metrics::histogram!("ticketd_grpc_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
}

pin_project_lite::pin_project! {
    /// A response body that records its call when its trailers go out (or,
    /// if the client leaves first, when it is dropped, as CANCELLED).
    struct Metered {
        #[pin]
        inner: Body,
        method: Method,
        started: Instant,
        code: Option<Code>,
    }

    impl PinnedDrop for Metered {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            record(*this.method, this.code.unwrap_or(Code::Cancelled), *this.started);
            if this.method.server_streaming {
                metrics::gauge!("ticketd_grpc_open_streams", "method" => this.method.name)
                    .decrement(1);
            }
        }
    }
}

impl Metered {
    fn new(inner: Body, method: Method, started: Instant) -> Self {
        if method.server_streaming {
            metrics::gauge!("ticketd_grpc_open_streams", "method" => method.name).increment(1);
        }
        Self {
            inner,
            method,
            started,
            code: None,
        }
    }
}

impl http_body::Body for Metered {
    type Data = tonic::codegen::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    *this.code = Some(
                        tonic::Status::from_header_map(trailers).map_or(Code::Ok, |s| s.code()),
                    );
                }
            }
            Some(Err(status)) => *this.code = Some(status.code()),
            None => {
                this.code.get_or_insert(Code::Ok);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The status code's name as the gRPC specification spells it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
