//! One webhook attempt: a signed POST over HTTP/1.1 (hyper's client, already
//! in the tree through tonic), bounded by a timeout. Plain `http://` only:
//! TLS would need a rustls connector (see the README's limits).
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::domain::notify;

/// POSTs `body` to `url`, signed with `secret` at the current wall-clock
/// second, as delivery `delivery_id`. `Ok` when the receiver answered 2xx;
/// otherwise why not, in a line for the delivery's `last_error`.
pub async fn post(
    url: &str,
    secret: &str,
    delivery_id: &str,
    body: String,
    timeout: Duration,
) -> Result<(), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| "the URL has no host".to_owned())?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let attempt = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake with {authority} failed: {e}"))?;
        // The connection is driven beside the request and dropped with it.
        let connection = AbortOnDrop(tokio::spawn(connection));
        let sent_at = chrono::Utc::now().timestamp();
        let signature = notify::signature(secret.as_bytes(), sent_at, body.as_bytes());
        let request = hyper::Request::post(path)
            .header(HOST, authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("ticketd/", env!("CARGO_PKG_VERSION")))
            .header("ticketd-delivery", delivery_id)
            .header("ticketd-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request to {authority} failed: {e}"))?;
        drop(connection);
        let status = response.status();
        match status.is_success() {
            true => Ok(()),
            false => Err(format!("the receiver answered HTTP {status}")),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// Aborts a spawned task when dropped (a timed-out attempt's connection).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
