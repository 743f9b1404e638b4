//! Request bodies tonic cannot decode are the client's error.
//!
//! tonic decodes a request before the handler runs and answers whatever it
//! cannot decode with INTERNAL, as the gRPC status-code guide prescribes for
//! a peer's framing and parse errors: bytes that are not protobuf of the
//! method's message (invalid UTF-8, a bad varint or wire type, nesting past
//! prost's recursion limit, a field longer than the message), a frame cut
//! short, no message at all, a compressed flag without `grpc-encoding`. For
//! ticketd INTERNAL means a bug of ours, which those are not: a client reading
//! INTERNAL cannot tell that resending the same bytes will fail the same way,
//! and an operator cannot tell them from faults. So this layer turns them into
//! INVALID_ARGUMENT, logged in one line at WARN.
//!
//! The answer is recognised by tonic's messages, because the decoding happens
//! inside tonic with no hook of ours between it and the handler. A decoding
//! error always comes back trailers-only (before any response message), and
//! the handlers' own INTERNAL says only "internal error", so nothing else can
//! match; `tests/api/malformed.rs` sends each kind of body, so a tonic upgrade
//! that rewords one fails there.
use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Code, Status};

/// How tonic (0.14) and tonic-prost begin the message of each decoding failure.
/// (Compressed requests never get this far: ticketd enables no compression,
/// so tonic answers a `grpc-encoding` with UNIMPLEMENTED.)
const DECODE_FAILURES: [&str; 4] = [
    // tonic-prost: prost's DecodeError.
    "failed to decode Protobuf message",
    // tonic's framing: the compressed flag set without grpc-encoding, or a flag other than 0 and 1.
    "protocol error: received message with",
    // The stream ended inside a frame.
    "Unexpected EOF decoding stream",
    // The stream ended before one whole message.
    "Missing request message",
];

/// Maps a trailers-only INTERNAL answer to a body tonic could not decode to
/// INVALID_ARGUMENT; every other response passes untouched.
pub fn refuse_as_invalid(response: http::Response<Body>) -> http::Response<Body> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let detail = status.message();
    if status.code() != Code::Internal || !DECODE_FAILURES.iter().any(|m| detail.starts_with(m)) {
        return response;
    }
    // Inside the request's span, which names the method.
    tracing::warn!(error = %detail, "malformed request message refused");
    Status::invalid_argument(format!("malformed request message: {detail}")).into_http()
}
