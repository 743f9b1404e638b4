//! Fuzzing every RPC of a real server with bodies a client could send: random
//! bytes, mutations of well-formed requests, and well-formed requests whose
//! field values come from a structured generator (every field of the
//! method's message, from its descriptor, with edge values). Whatever the
//! body, the answer is a gRPC status the client can act on: never INTERNAL,
//! never UNKNOWN, never a broken stream (a panic).
//!
//! Seeded: `TICKETD_FUZZ_SEED=n` repeats a run; failures print the seed, the
//! method and the body.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;
use tonic::codegen::{Bytes, http};

use crate::helpers::*;

const RANDOM: usize = 5_000;
const MUTATED: usize = 5_000;
const STRUCTURED: usize = 3_000;
/// Calls in flight at once.
const CONCURRENCY: usize = 24;

/// Every method: its path and input message's full name.
fn methods(set: &FileDescriptorSet) -> Vec<(String, String)> {
    let mut out = vec![];
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                out.push((
                    format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    method.input_type().trim_start_matches('.').to_owned(),
                ));
            }
        }
    }
    out
}

/// Every message type by full name.
fn messages(set: &FileDescriptorSet) -> HashMap<String, DescriptorProto> {
    fn add(prefix: &str, m: &DescriptorProto, out: &mut HashMap<String, DescriptorProto>) {
        let name = format!("{prefix}.{}", m.name());
        for nested in &m.nested_type {
            add(&name, nested, out);
        }
        out.insert(name, m.clone());
    }
    let mut out = HashMap::new();
    for file in &set.file {
        for m in &file.message_type {
            add(file.package(), m, &mut out);
        }
    }
    out
}

/// Values a client might put in a string field.
struct Pools {
    ids: Vec<String>,
}

impl Pools {
    /// Mostly a value that fits the field's name, sometimes anything.
    fn for_field(&self, field: &str, rng: &mut StdRng) -> String {
        let fitting: &[&str] = if field.ends_with("id") && !self.ids.is_empty() {
            return if rng.random_bool(0.8) {
                self.ids[rng.random_range(0..self.ids.len())].clone()
            } else {
                self.string(rng)
            };
        } else if field.contains("carrier") {
            &["estafeta", "dhl", "fedex", "nope"]
        } else if field.contains("category") {
            &[
                "damaged",
                "lost",
                "overweight",
                "delivery_not_acknowledged",
                "route_remove_orders",
            ]
        } else if field.contains("tracking") {
            &["EST-7788990011", "DHL-1234", "ab"]
        } else if field.contains("currency") {
            &["MXN", "USD", "mxn"]
        } else if field == "amount" {
            &["1250.50", "0.01", "-3", "1e3"]
        } else if field.contains("date") {
            &["2026-11-29", "2026-01-01", "2025-12-31"]
        } else if field == "locale" {
            &["es", "en", "fr"]
        } else if field.contains("order_by") {
            &["created_at desc", "created_at asc", "number"]
        } else {
            &["Falta la foto", "dañado", "ok"]
        };
        if rng.random_bool(0.8) {
            fitting[rng.random_range(0..fitting.len())].to_owned()
        } else {
            self.string(rng)
        }
    }

    fn string(&self, rng: &mut StdRng) -> String {
        const FIXED: &[&str] = &[
            "",
            " ",
            "estafeta",
            "dhl",
            "damaged",
            "overweight",
            "delivery_not_acknowledged",
            "route_remove_orders",
            "MXN",
            "USD",
            "1250.50",
            "-1",
            "0",
            "1e309",
            "NaN",
            "2026-11-29",
            "+2026-11-29",
            "2026-3-8",
            "-0001-01-01",
            "9999-12-31",
            "es",
            "en",
            "created_at desc",
            "created_at asc",
            "number",
            "status_label",
            "tracking_number",
            "EST-7788990011",
            "%",
            "_",
            "'",
            "\"; DROP TABLE incidents; --",
            "\u{0}",
            "a\u{0}b",
            "\u{1b}[31m",
            "\u{202e}",
            "ñandú dañado",
            "😀",
            "\u{feff}",
            "00000000-0000-0000-0000-000000000000",
            "not-a-token",
            "AAAA",
            "////",
        ];
        match rng.random_range(0..6) {
            0 if !self.ids.is_empty() => self.ids[rng.random_range(0..self.ids.len())].clone(),
            1 => "x".repeat(
                *[
                    64, 65, 128, 129, 200, 201, 2_000, 2_001, 10_000, 10_001, 70_000,
                ]
                .get(rng.random_range(0..11))
                .unwrap(),
            ),
            2 => (0..rng.random_range(0..40))
                .map(|_| char::from_u32(rng.random_range(0..0x3000)).unwrap_or('?'))
                .collect(),
            _ => FIXED[rng.random_range(0..FIXED.len())].to_owned(),
        }
    }
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn interesting_int(rng: &mut StdRng) -> u64 {
    if rng.random_bool(0.5) {
        return rng.random_range(0..10);
    }
    const EDGES: &[i64] = &[
        0,
        1,
        -1,
        2,
        7,
        50,
        500,
        501,
        1_000_000,
        i32::MAX as i64,
        i32::MIN as i64,
        i64::MAX,
        i64::MIN,
    ];
    if rng.random_bool(0.7) {
        EDGES[rng.random_range(0..EDGES.len())] as u64
    } else {
        rng.random::<u64>() >> rng.random_range(0..64)
    }
}

/// A well-formed encoding of message `name` with generated field values.
fn structured(
    name: &str,
    types: &HashMap<String, DescriptorProto>,
    pools: &Pools,
    rng: &mut StdRng,
    depth: usize,
) -> Vec<u8> {
    let mut out = vec![];
    let Some(message) = types.get(name) else {
        return out;
    };
    let presence = rng.random_range(0.1..0.9);
    for field in &message.field {
        if !rng.random_bool(presence) {
            continue;
        }
        let repeats = if field.label() == Label::Repeated {
            *[0, 1, 1, 2, 3, 20, 21, 30]
                .get(rng.random_range(0..8))
                .unwrap()
        } else {
            1
        };
        let number = field.number() as u64;
        for _ in 0..repeats {
            match field.r#type() {
                Type::String | Type::Bytes => {
                    let value = pools.for_field(field.name(), rng);
                    varint(number << 3 | 2, &mut out);
                    varint(value.len() as u64, &mut out);
                    out.extend(value.as_bytes());
                }
                Type::Message if depth < 4 => {
                    let inner = structured(
                        field.type_name().trim_start_matches('.'),
                        types,
                        pools,
                        rng,
                        depth + 1,
                    );
                    varint(number << 3 | 2, &mut out);
                    varint(inner.len() as u64, &mut out);
                    out.extend(inner);
                }
                Type::Message => {}
                Type::Bool => {
                    varint(number << 3, &mut out);
                    varint(rng.random_range(0..3), &mut out);
                }
                Type::Enum => {
                    varint(number << 3, &mut out);
                    let value = if rng.random_bool(0.9) {
                        rng.random_range(0..8)
                    } else {
                        interesting_int(rng)
                    };
                    varint(value, &mut out);
                }
                Type::Double | Type::Fixed64 | Type::Sfixed64 => {
                    varint(number << 3 | 1, &mut out);
                    out.extend(interesting_int(rng).to_le_bytes());
                }
                Type::Float | Type::Fixed32 | Type::Sfixed32 => {
                    varint(number << 3 | 5, &mut out);
                    out.extend((interesting_int(rng) as u32).to_le_bytes());
                }
                _ => {
                    varint(number << 3, &mut out);
                    varint(interesting_int(rng), &mut out);
                }
            }
        }
    }
    out
}

fn mutate(mut body: Vec<u8>, rng: &mut StdRng) -> Vec<u8> {
    for _ in 0..rng.random_range(1..4) {
        let len = body.len();
        match rng.random_range(0..6) {
            0 if len > 0 => body[rng.random_range(0..len)] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => body[rng.random_range(0..len)] = rng.random(),
            2 if len > 0 => body.truncate(rng.random_range(0..len)),
            3 => {
                let at = rng.random_range(0..=len);
                let extra: Vec<u8> = (0..rng.random_range(1..8)).map(|_| rng.random()).collect();
                body.splice(at..at, extra);
            }
            4 if len > 1 => {
                let (a, b) = (rng.random_range(0..len), rng.random_range(0..len));
                let (a, b) = (a.min(b), a.max(b));
                let copy = body[a..b].to_vec();
                body.extend(copy);
            }
            _ => body.extend([0xff; 3]),
        }
    }
    body
}

/// What a call came back with.
#[derive(Debug)]
enum Outcome {
    Status(Code, String),
    /// A streaming call still open, in good health, when the test let go.
    Open,
    Broken(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Self::Status(code, message) => format!("{code:?}: {message}"),
            Self::Open => "open stream".into(),
            Self::Broken(what) => format!("broken: {what}"),
        }
    }
}

async fn call(
    client: h2::client::SendRequest<Bytes>,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Outcome {
    let mut framed = vec![0u8];
    framed.extend((body.len() as u32).to_be_bytes());
    framed.extend(body);
    let mut request = http::Request::post(format!("http://ticketd{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut client = match client.ready().await {
        Ok(c) => c,
        Err(e) => return Outcome::Broken(format!("connection: {e}")),
    };
    let (response, mut send) = match client.send_request(request.body(()).unwrap(), false) {
        Ok(r) => r,
        Err(e) => return Outcome::Broken(format!("send: {e}")),
    };
    if let Err(e) = send.send_data(framed.into(), true) {
        return Outcome::Broken(format!("body: {e}"));
    }
    let response = match tokio::time::timeout(Duration::from_secs(20), response).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Outcome::Broken(format!("response: {e}")),
        Err(_) => return Outcome::Broken("no answer in 20 s".into()),
    };
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return Outcome::Status(status.code(), status.message().to_owned());
    }
    let mut body = response.into_body();
    // A stream that keeps sending (a replay, a report) or goes quiet while
    // open has answered well so far; a short look is enough.
    let mut ended = false;
    for _ in 0..200 {
        match tokio::time::timeout(Duration::from_millis(300), body.data()).await {
            Err(_) => return Outcome::Open,
            Ok(Some(Ok(chunk))) => {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Ok(Some(Err(e))) => return Outcome::Broken(format!("stream: {e}")),
            Ok(None) => {
                ended = true;
                break;
            }
        }
    }
    if !ended {
        return Outcome::Open;
    }
    match body.trailers().await {
        Ok(Some(trailers)) => match tonic::Status::from_header_map(&trailers) {
            Some(status) => Outcome::Status(status.code(), status.message().to_owned()),
            None => Outcome::Broken("trailers without grpc-status".into()),
        },
        Ok(None) => Outcome::Broken("no trailers".into()),
        Err(e) => Outcome::Broken(format!("trailers: {e}")),
    }
}

#[tokio::test]
async fn random_mutated_and_generated_bodies_on_every_rpc_are_never_internal_unknown_or_a_panic() {
    let seed: u64 = std::env::var("TICKETD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(14);
    let app = TestApp::spawn().await;
    let set = FileDescriptorSet::decode(ticketd::pb::FILE_DESCRIPTOR_SET).unwrap();
    let methods = methods(&set);
    let types = messages(&set);
    assert!(methods.len() >= 27, "{methods:?}");
    // Real tickets, so that generated ids sometimes name one.
    let (store, other) = (requester("acme"), requester("globex"));
    let mut ids = vec![];
    for n in 0..3 {
        ids.push(create(&app, &store, &format!("EST-F{n}")).await.id);
        ids.push(consult(&app, &store, "delivery_not_acknowledged").await.id);
    }
    ids.push(create(&app, &other, "EST-G1").await.id);
    let pools = Arc::new(Pools { ids });
    let tokens = [agent(), store, other, token("admin", "root", None)];

    let mut rng = StdRng::seed_from_u64(seed);
    let mut work = vec![];
    for n in 0..RANDOM + MUTATED + STRUCTURED {
        let (path, input) = &methods[rng.random_range(0..methods.len())];
        let body = if n < RANDOM {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        } else {
            let valid = structured(input, &types, &pools, &mut rng, 0);
            if n < RANDOM + MUTATED {
                mutate(valid, &mut rng)
            } else {
                valid
            }
        };
        let token = match rng.random_range(0..10) {
            0 => None,
            t => Some(tokens[t % tokens.len()].clone()),
        };
        work.push((path.clone(), token, body));
    }

    let tcp = tokio::net::TcpStream::connect(app.addr()).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let started = std::time::Instant::now();
    let work = Arc::new(std::sync::Mutex::new(work.into_iter().enumerate()));
    let mut workers = vec![];
    for _ in 0..CONCURRENCY {
        let (client, work) = (client.clone(), work.clone());
        workers.push(tokio::spawn(async move {
            let mut seen = vec![];
            loop {
                let Some((n, (path, token, body))) = work.lock().unwrap().next() else {
                    return seen;
                };
                let outcome = call(client.clone(), &path, token.as_deref(), &body).await;
                seen.push((n, path, body, outcome));
            }
        }));
    }
    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut bad = vec![];
    for worker in workers {
        for (n, path, body, outcome) in worker.await.unwrap() {
            let key = match &outcome {
                Outcome::Status(code, _) => format!("{code:?}"),
                Outcome::Open => "open stream".into(),
                Outcome::Broken(_) => "broken".into(),
            };
            *codes.entry(key).or_default() += 1;
            let wrong = matches!(
                outcome,
                Outcome::Status(Code::Internal | Code::Unknown, _) | Outcome::Broken(_)
            );
            if wrong {
                bad.push(format!(
                    "#{n} {path} {} body {body:02x?}",
                    outcome.describe()
                ));
            }
        }
    }
    let mut codes: Vec<_> = codes.into_iter().collect();
    codes.sort();
    eprintln!(
        "fuzz seed {seed}: {} calls in {:?}: {codes:?}",
        RANDOM + MUTATED + STRUCTURED,
        started.elapsed()
    );
    assert!(
        bad.is_empty(),
        "seed {seed}: {} calls were INTERNAL, UNKNOWN or broken; first ones:\n{}",
        bad.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        !connection.is_finished(),
        "the server closed the connection"
    );
    // Well-formed requests did get through to the handlers.
    let ok = codes.iter().find(|(c, _)| c == "Ok").map_or(0, |(_, n)| *n);
    assert!(
        ok > 100,
        "only {ok} calls succeeded: the generator is not reaching the handlers"
    );
    // And the server still works.
    create(&app, &requester("acme"), "EST-AFTER").await;
}
