//! Request bodies that are not the method's message, sent as raw HTTP/2 gRPC
//! frames: every one is the client's error (INVALID_ARGUMENT), never INTERNAL.
use std::net::SocketAddr;
use std::time::Duration;

use tonic::codegen::http;
use tonic::{Code, Status};

use crate::helpers::*;

/// One gRPC length-prefixed message: the compressed flag, the length, the bytes.
fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut framed = vec![flag];
    framed.extend((message.len() as u32).to_be_bytes());
    framed.extend(message);
    framed
}

/// POSTs `body` to `path` over a fresh HTTP/2 connection with the gRPC
/// headers and `token`, and returns the call's status (from the headers of a
/// trailers-only answer, or from the trailers).
async fn raw_call(addr: SocketAddr, path: &str, token: &str, body: Vec<u8>) -> Status {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("h2 ready");
    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let (response, mut send) = client
        .send_request(request, body.is_empty())
        .expect("send headers");
    if !body.is_empty() {
        send.send_data(body.into(), true).expect("send body");
    }
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("an answer within 10 s")
        .expect("response");
    if let Some(status) = Status::from_header_map(response.headers()) {
        return status;
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body
        .trailers()
        .await
        .expect("trailers")
        .expect("grpc trailers");
    Status::from_header_map(&trailers).expect("grpc-status")
}

/// A varint as protobuf writes it.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// The malformed bodies, each with what is wrong with it.
fn malformed_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let valid = prost::Message::encode_to_vec(&new_incident("EST-1"));
    // Field 2 (tracking_number, a string) holding bytes that are not UTF-8.
    let bad_utf8 = [&[0x12, 2, 0xff, 0xfe][..], &valid].concat();
    // Field 1 (kind) whose varint never ends within ten bytes.
    let bad_varint = [&[0x08][..], &[0xff; 11]].concat();
    // Wire type 7 does not exist.
    let bad_wire_type = vec![0x0f, 0x01];
    // Field 5 (description) says 100 bytes and has 3.
    let short_field = vec![0x2a, 100, b'a', b'b', b'c'];
    // 200 nested groups of an unknown field: past prost's recursion limit.
    let start_group = varint((100 << 3) | 3);
    let deep = start_group.repeat(200);
    vec![
        ("invalid UTF-8 in a string field", frame(0, &bad_utf8)),
        ("a varint longer than ten bytes", frame(0, &bad_varint)),
        ("an unknown wire type", frame(0, &bad_wire_type)),
        ("a field longer than the message", frame(0, &short_field)),
        ("nesting past the recursion limit", frame(0, &deep)),
        ("a frame cut short", frame(0, &valid)[..12].to_vec()),
        ("a frame header cut short", vec![0, 0, 0]),
        ("no message at all", vec![]),
        (
            "the compressed flag without grpc-encoding",
            frame(1, &valid),
        ),
        ("a compressed flag that does not exist", frame(2, &valid)),
    ]
}

#[tokio::test]
async fn malformed_request_bodies_are_invalid_argument_on_unary_and_streaming_calls() {
    let app = TestApp::spawn().await;
    let token = requester("acme");
    for path in [
        "/ticketd.v1.IncidentService/CreateIncident",
        "/ticketd.v1.ConsultationService/ListConsultations",
        "/ticketd.v1.NotificationService/WatchNotifications",
        "/ticketd.v1.IncidentService/ExportReport",
    ] {
        for (what, body) in malformed_bodies() {
            let status = raw_call(app.addr(), path, &token, body).await;
            // A message that decodes as something else is fine for messages
            // whose fields differ; what must never come back is INTERNAL.
            assert_ne!(status.code(), Code::Internal, "{path}, {what}: {status:?}");
            assert_ne!(status.code(), Code::Unknown, "{path}, {what}: {status:?}");
        }
    }
    // Against the message the bodies were made for, each is INVALID_ARGUMENT.
    for (what, body) in malformed_bodies() {
        let status = raw_call(
            app.addr(),
            "/ticketd.v1.IncidentService/CreateIncident",
            &token,
            body,
        )
        .await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }
    // The raw client itself is sound: a well-formed body is served.
    let valid = prost::Message::encode_to_vec(&new_incident("EST-OK"));
    let status = raw_call(
        app.addr(),
        "/ticketd.v1.IncidentService/CreateIncident",
        &token,
        frame(0, &valid),
    )
    .await;
    assert_eq!(status.code(), Code::Ok, "{status:?}");
}

#[tokio::test]
async fn a_malformed_request_is_logged_once_in_one_line_as_a_client_error() {
    let app = TestApp::spawn().await;
    let server = crate::process::ServerProcess::start(&app.database_url).await;
    let bodies = malformed_bodies();
    for (_, body) in &bodies {
        raw_call(
            server.addr(),
            "/ticketd.v1.IncidentService/CreateIncident",
            &requester("acme"),
            body.clone(),
        )
        .await;
    }
    let refusals = |log: &[String]| {
        log.iter()
            .filter(|l| l.contains("malformed request"))
            .cloned()
            .collect::<Vec<_>>()
    };
    wait_for(
        "a log line per malformed request",
        Duration::from_secs(10),
        || {
            let found = refusals(&server.log()).len() >= bodies.len();
            async move { found.then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log();
    let lines = refusals(&log);
    assert_eq!(lines.len(), bodies.len(), "{lines:#?}");
    for line in &lines {
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("CreateIncident"), "names the method: {line}");
    }
    assert!(
        !log.iter()
            .any(|l| l.contains("ERROR") || l.contains("internal error")),
        "{log:#?}"
    );
}
