//! OpenTelemetry export: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, request spans
//! reach an OTLP/gRPC collector (a real one over loopback, written here with
//! the protocol's generated server), inside the caller's trace.
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use ticketd::pb::incident_service_client::IncidentServiceClient;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::helpers::*;
use crate::process::ServerProcess;

/// Hands every export request it receives to the test.
struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let _ = self.0.send(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

pub async fn start_collector() -> (String, mpsc::UnboundedReceiver<ExportTraceServiceRequest>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), rx)
}

// Multi-threaded: the collector must answer while the test waits for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_the_otlp_collector_in_the_callers_trace() {
    let app = TestApp::spawn().await;
    let (endpoint, mut exported) = start_collector().await;
    let mut server = ServerProcess::start_with_env(
        &app.database_url,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut request = req(&requester("acme"), new_incident("EST-OTEL"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01").parse().unwrap(),
    );
    IncidentServiceClient::new(server.channel.clone())
        .create_incident(request)
        .await
        .unwrap();
    // Shutting down exports whatever is still buffered.
    server.terminate();
    assert!(
        server.wait_exit(Duration::from_secs(10)).is_some(),
        "ticketd did not exit after SIGTERM"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let batch = tokio::time::timeout_at(deadline, exported.recv())
            .await
            .expect("no CreateIncident span reached the collector within 10 s")
            .expect("collector running");
        for resource_spans in batch.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref()?.value.clone());
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                if span.name != "ticketd.v1.IncidentService/CreateIncident" {
                    continue;
                }
                assert_eq!(service, Some(Value::StringValue("ticketd".into())));
                assert_eq!(hex(&span.trace_id), trace_id, "the caller's trace");
                assert_eq!(hex(&span.parent_span_id), parent_id, "the caller's span");
                assert_eq!(span.kind, SpanKind::Server as i32);
                return;
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
