//! One webhook attempt: a signed POST over HTTP/1.1 (hyper's client, already
//! in the tree through tonic), bounded by a timeout; over TLS for
//! `https://` endpoints. TLS is rustls through tokio-rustls with ring and
//! webpki-roots, the stack lettre (SMTP) and sqlx (PostgreSQL) already
//! compile in, so https costs no new crate: hyper-rustls would only wrap the
//! same connector in a connection pool, and each attempt is one connection
//! anyway (deliveries of an endpoint are seconds apart, or retries).
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::domain::notify;

/// Posts webhook deliveries; built once at start.
#[derive(Clone)]
pub struct WebhookClient {
    tls: TlsConnector,
    timeout: Duration,
}

impl WebhookClient {
    /// A client that trusts the Mozilla roots (webpki-roots) and, for
    /// private or test CAs, every certificate in the PEM file `extra_roots`
    /// (`--webhook-ca-file`). Each attempt gets `timeout` in all. A file
    /// that cannot be read or holds no certificate stops the start.
    pub fn new(extra_roots: Option<&Path>, timeout: Duration) -> anyhow::Result<Self> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = extra_roots {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("--webhook-ca-file: cannot read {shown}"))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("--webhook-ca-file {shown} is not valid PEM"))?;
            if certs.is_empty() {
                anyhow::bail!("--webhook-ca-file {shown} holds no PEM certificate");
            }
            for (i, cert) in certs.into_iter().enumerate() {
                roots.add(cert).with_context(|| {
                    format!(
                        "--webhook-ca-file {shown}: certificate {} is not usable",
                        i + 1
                    )
                })?;
            }
        }
        // The provider is named rather than taken from the process default:
        // ring is the one compiled in (for lettre and sqlx), and naming it
        // keeps aws-lc-rs out should a dependency's default turn it on.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS for webhooks")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    /// POSTs `body` to `url`, signed with `secret` at the current
    /// wall-clock second, as delivery `delivery_id`. `Ok` when the receiver
    /// answered 2xx; otherwise why not, in a line for the delivery's
    /// `last_error` (a TLS failure says what failed, e.g. an unknown issuer).
    pub async fn post(
        &self,
        url: &str,
        secret: &str,
        delivery_id: &str,
        body: String,
    ) -> Result<(), String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => return Err(format!("unsupported URL scheme {other:?}")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| "the URL has no host".to_owned())?
            .clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let attempt = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let request = Request {
                authority: authority.as_str(),
                path: &path,
                secret,
                delivery_id,
                body,
            };
            match https {
                false => request.send(tcp).await,
                true => {
                    // An IP literal is checked against the certificate's IP
                    // addresses, a name against its DNS names (and sent as SNI).
                    let name = ServerName::try_from(host.clone())
                        .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
                    let tls = self
                        .tls
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake with {authority} failed: {e}"))?;
                    request.send(tls).await
                }
            }
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

/// One signed request, ready to go over a connection.
struct Request<'a> {
    authority: &'a str,
    path: &'a str,
    secret: &'a str,
    delivery_id: &'a str,
    body: String,
}

impl Request<'_> {
    async fn send<S>(self, stream: S) -> Result<(), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let authority = self.authority;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {authority} failed: {e}"))?;
        // The connection is driven beside the request and dropped with it.
        let connection = AbortOnDrop(tokio::spawn(connection));
        let sent_at = chrono::Utc::now().timestamp();
        let signature = notify::signature(self.secret.as_bytes(), sent_at, self.body.as_bytes());
        let request = hyper::Request::post(self.path)
            .header(HOST, authority)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("ticketd/", env!("CARGO_PKG_VERSION")))
            .header("ticketd-delivery", self.delivery_id)
            .header("ticketd-signature", signature)
            .body(Full::new(Bytes::from(self.body)))
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
    }
}

/// Aborts a spawned task when dropped (a timed-out attempt's connection).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &Path) -> String {
        match WebhookClient::new(Some(path), Duration::from_secs(1)) {
            Ok(_) => panic!("{} was taken", path.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_ca_file_that_cannot_be_used_stops_the_start_naming_it() {
        assert!(WebhookClient::new(None, Duration::from_secs(1)).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = refused(&missing);
        assert!(error.contains("--webhook-ca-file: cannot read"), "{error}");
        assert!(error.contains("missing.pem"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let error = refused(&empty);
        assert!(error.contains("holds no PEM certificate"), "{error}");
        let garbled = dir.path().join("garbled.pem");
        std::fs::write(
            &garbled,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let error = refused(&garbled);
        assert!(error.contains("garbled.pem"), "{error}");
    }
}
