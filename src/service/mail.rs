//! The e-mail channel (issue #15): what rendering an e-mail into the outbox
//! needs (`Mailing`, used by `notify::enqueue` inside the event's
//! transaction), and the SMTP sender the dispatcher hands e-mail rows to
//! (`Mailer`). Both exist only when `--smtp-url` is set.
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::catalog::Catalog;
use crate::domain::mail::Mail;

/// What an e-mail is rendered with, besides its ticket and event.
#[derive(Debug, Clone)]
pub struct Mailing {
    /// Links are `{frontend_url}/incidents/{id}`; none without it.
    pub frontend_url: Option<String>,
    /// The calendar's zone: the auto-close instant is shown in it.
    pub time_zone: Tz,
    /// The category's name is the e-mail's title.
    pub catalog: Arc<Catalog>,
}

/// Sends the outbox's e-mails over SMTP, one connection per message (the
/// dispatcher runs up to 32 attempts at once; lettre's pool is left out to
/// keep the build lean, and a relay handles connections this cheap).
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl Mailer {
    /// A sender for `url` in lettre's form: `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://…:465` (TLS), `smtp://127.0.0.1:2525` (plain, for
    /// a relay on loopback). Each attempt gets `timeout` in all.
    pub fn new(url: &str, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        use anyhow::Context;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context(
                "--smtp-url is not an SMTP URL like smtp://user:pass@host:587?tls=required, \
                 smtps://user:pass@host:465 or smtp://127.0.0.1:2525",
            )?
            .timeout(Some(timeout))
            .build();
        let from: Mailbox = from.parse().with_context(|| {
            format!("--smtp-from {from:?} is not an address like \"Soporte <soporte@example.com>\"")
        })?;
        Ok(Self {
            transport,
            from,
            timeout,
        })
    }

    /// One attempt at sending a rendered e-mail (the outbox row's payload),
    /// with the delivery id as its Message-ID (the same on every attempt, so
    /// that a duplicate after a lost answer can be recognised). The error is
    /// what the row's `last_error` shows.
    pub async fn send(&self, delivery_id: &str, payload: &str) -> Result<(), String> {
        let mail: Mail = serde_json::from_str(payload)
            .map_err(|e| format!("the stored e-mail cannot be read: {e}"))?;
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| format!("recipient {:?}: {e}", mail.to))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(Some(format!("<{delivery_id}@ticketd>")))
            .multipart(MultiPart::alternative_plain_html(mail.text, mail.html))
            .map_err(|e| format!("cannot build the e-mail: {e}"))?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("SMTP: {e}")),
            Err(_) => Err(format!("SMTP: no answer within {:?}", self.timeout)),
        }
    }
}
