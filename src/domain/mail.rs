//! The e-mails of issue #15: addresses, and the message each recipient of an
//! event gets (`notify::recipients` decides who), in Spanish or English,
//! as plain text and HTML. Pure: `service::notify` renders them into the
//! outbox with their event; `service::mail` sends them over SMTP.
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::event::{EventPayload, TicketType};
use super::principal::Locale;
use super::{Error, Result};

/// Longest address accepted (RFC 5321's path limit).
pub const MAX_ADDRESS: usize = 254;

/// One e-mail address, as a create request's `contact_email`, an
/// assignment's `assignee_email` or a token's `email` claim gives it. The
/// syntax is lettre's own (`lettre::Address`, a parser without I/O), so that
/// every address accepted here is one the sender can put in an envelope.
pub fn parse_address(field: &str, value: &str) -> Result<String> {
    let refuse = |why: &str| Err(Error::invalid(field, why));
    if value.chars().count() > MAX_ADDRESS {
        return refuse("must be at most 254 characters");
    }
    if value.trim() != value || value.chars().any(char::is_control) {
        return refuse("must have no control characters and no spaces at either end");
    }
    match value.parse::<lettre::Address>() {
        Ok(_) => Ok(value.to_owned()),
        Err(_) => refuse("is not an e-mail address like tienda@example.com"),
    }
}

/// What an e-mail is about: the event, as a recipient reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Created,
    StatusChanged,
    Comment,
    Assigned,
    SlaBreached,
}

impl Subject {
    /// The e-mail an event makes, if any (reclassifications tell nobody).
    pub fn of(payload: &EventPayload) -> Option<Self> {
        match payload {
            EventPayload::Created { .. } => Some(Self::Created),
            EventPayload::StatusChanged { .. } => Some(Self::StatusChanged),
            EventPayload::CommentAdded {
                internal: false, ..
            } => Some(Self::Comment),
            EventPayload::CommentAdded { internal: true, .. } => None,
            EventPayload::Assigned { .. } => Some(Self::Assigned),
            EventPayload::SlaBreached { .. } => Some(Self::SlaBreached),
            EventPayload::Reclassified { .. } => None,
        }
    }
}

/// Everything a message says, gathered by the caller.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub locale: Locale,
    pub ticket_type: TicketType,
    pub number: i64,
    pub subject: Subject,
    /// The status label after the event, in `locale`.
    pub status: &'a str,
    /// The category's name: the message's title.
    pub title: &'a str,
    /// The comment (of a comment, or of a status change that carries one),
    /// else the ticket's description.
    pub body: &'a str,
    /// Who wrote the comment, for a comment.
    pub author: Option<&'a str>,
    /// When an incident waiting for data closes by itself (µs).
    pub closes_at: Option<i64>,
    /// The calendar's time zone, in which `closes_at` is shown.
    pub time_zone: Tz,
    /// `{frontend_url}/incidents/{id}` (or consultations); none without a front-end URL.
    pub link: Option<String>,
}

/// A rendered e-mail, as the outbox keeps it until it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(e.into()))
    }
}

/// The link to a ticket in the front end: `{base}/incidents/{id}`.
pub fn link(frontend_url: &str, ticket_type: TicketType, id: &str) -> String {
    let path = match ticket_type {
        TicketType::Incident => "incidents",
        TicketType::Consultation => "consultations",
    };
    format!("{}/{path}/{id}", frontend_url.trim_end_matches('/'))
}

/// The words of one language.
struct Words {
    incident: &'static str,
    consultation: &'static str,
    new_comment: &'static str,
    assigned: &'static str,
    breached: &'static str,
    status: &'static str,
    comment_by: &'static str,
    closes: &'static str,
    closes_tail: &'static str,
    see: &'static str,
    date: &'static str,
    footer: &'static str,
}

const ES: Words = Words {
    incident: "Incidencia",
    consultation: "Consulta",
    new_comment: "Nuevo comentario",
    assigned: "Asignada a ti",
    breached: "Fecha estimada vencida",
    status: "Estado",
    comment_by: "Comentario de",
    closes: "Se cerrará automáticamente el",
    closes_tail: "si no se envían los datos que faltan",
    see: "Ver en línea",
    date: "%d/%m/%Y %H:%M",
    footer: "Este correo lo envía ticketd automáticamente; no lo responda.",
};

const EN: Words = Words {
    incident: "Incident",
    consultation: "Consultation",
    new_comment: "New comment",
    assigned: "Assigned to you",
    breached: "Past its estimated date",
    status: "Status",
    comment_by: "Comment by",
    closes: "It will close by itself on",
    closes_tail: "unless the missing data is sent",
    see: "View online",
    date: "%Y-%m-%d %H:%M",
    footer: "This e-mail is sent by ticketd automatically; please do not reply.",
};

/// The e-mail `to` gets: subject `Incidencia 123: En curso`, the category
/// as title, the status, the comment or description, the auto-close instant
/// in the calendar's zone, and the link; plain text and the same as HTML
/// (every value escaped).
pub fn render(to: &str, f: &Facts<'_>) -> Mail {
    let w = match f.locale {
        Locale::Es => &ES,
        Locale::En => &EN,
    };
    let noun = match f.ticket_type {
        TicketType::Incident => w.incident,
        TicketType::Consultation => w.consultation,
    };
    let what = match f.subject {
        Subject::Created | Subject::StatusChanged => f.status,
        Subject::Comment => w.new_comment,
        Subject::Assigned => w.assigned,
        Subject::SlaBreached => w.breached,
    };
    let subject = format!("{noun} {}: {what}", f.number);
    let status = format!("{}: {}", w.status, f.status);
    let by = f.author.map(|a| format!("{} {a}:", w.comment_by));
    let closes = f.closes_at.map(|at| {
        let local = DateTime::<Utc>::from_timestamp_micros(at)
            .unwrap_or_default()
            .with_timezone(&f.time_zone);
        format!(
            "{} {} ({}), {}.",
            w.closes,
            local.format(w.date),
            f.time_zone.name(),
            w.closes_tail
        )
    });

    let mut text = format!("{noun} {} — {}\n\n{status}\n\n", f.number, f.title);
    if let Some(by) = &by {
        text += &format!("{by}\n");
    }
    text += f.body;
    text += "\n\n";
    if let Some(closes) = &closes {
        text += &format!("{closes}\n\n");
    }
    if let Some(link) = &f.link {
        text += &format!("{}: {link}\n\n", w.see);
    }
    text += &format!("-- \n{}\n", w.footer);

    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head><body>\n\
         <h1>{} {} — {}</h1>\n<p><strong>{}</strong></p>\n",
        f.locale.as_str(),
        escape(&subject),
        escape(noun),
        f.number,
        escape(f.title),
        escape(&status),
    );
    if let Some(by) = &by {
        html += &format!("<p>{}</p>\n", escape(by));
    }
    html += &format!(
        "<blockquote>{}</blockquote>\n",
        escape(f.body).replace('\n', "<br>\n")
    );
    if let Some(closes) = &closes {
        html += &format!("<p><strong>{}</strong></p>\n", escape(closes));
    }
    if let Some(link) = &f.link {
        html += &format!(
            "<p><a href=\"{}\">{}</a></p>\n",
            escape(link),
            escape(w.see)
        );
    }
    html += &format!(
        "<p><small>{}</small></p>\n</body></html>\n",
        escape(w.footer)
    );
    Mail {
        to: to.to_owned(),
        subject,
        text,
        html,
    }
}

/// `s` safe in HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(locale: Locale, subject: Subject) -> Facts<'static> {
        Facts {
            locale,
            ticket_type: TicketType::Incident,
            number: 123,
            subject,
            status: match locale {
                Locale::Es => "En curso",
                Locale::En => "In progress",
            },
            title: "Paquete dañado",
            body: "La caja llegó <rota> & mojada",
            author: None,
            closes_at: None,
            time_zone: chrono_tz::America::Mexico_City,
            link: Some(link(
                "https://soporte.example.com/",
                TicketType::Incident,
                "t-1",
            )),
        }
    }

    #[test]
    fn the_subject_names_the_ticket_and_the_event_in_its_language() {
        let es = render("a@example.com", &facts(Locale::Es, Subject::StatusChanged));
        assert_eq!(es.subject, "Incidencia 123: En curso");
        assert_eq!(es.to, "a@example.com");
        let en = render("a@example.com", &facts(Locale::En, Subject::StatusChanged));
        assert_eq!(en.subject, "Incident 123: In progress");
        let comment = render("a@example.com", &facts(Locale::Es, Subject::Comment));
        assert_eq!(comment.subject, "Incidencia 123: Nuevo comentario");
        let assigned = render("a@example.com", &facts(Locale::En, Subject::Assigned));
        assert_eq!(assigned.subject, "Incident 123: Assigned to you");
        let mut consultation = facts(Locale::Es, Subject::Created);
        consultation.ticket_type = TicketType::Consultation;
        consultation.status = "Recepcionado";
        assert_eq!(
            render("a@example.com", &consultation).subject,
            "Consulta 123: Recepcionado"
        );
    }

    #[test]
    fn the_body_has_title_status_text_and_link_and_html_escapes_them() {
        let m = render("a@example.com", &facts(Locale::Es, Subject::StatusChanged));
        assert!(
            m.text.starts_with("Incidencia 123 — Paquete dañado\n"),
            "{}",
            m.text
        );
        assert!(m.text.contains("Estado: En curso"));
        assert!(
            m.text.contains("La caja llegó <rota> & mojada"),
            "text is not escaped"
        );
        assert!(
            m.text
                .contains("Ver en línea: https://soporte.example.com/incidents/t-1")
        );
        assert!(m.html.contains("La caja llegó &lt;rota&gt; &amp; mojada"));
        assert!(!m.html.contains("<rota>"));
        assert!(
            m.html
                .contains("<a href=\"https://soporte.example.com/incidents/t-1\">")
        );
        assert!(m.html.contains("<html lang=\"es\">"));
        let mut no_link = facts(Locale::En, Subject::Created);
        no_link.link = None;
        let m = render("a@example.com", &no_link);
        assert!(!m.text.contains("View online") && !m.html.contains("<a "));
        let mut evil = facts(Locale::En, Subject::Created);
        evil.title = "<script>x</script>";
        assert!(!render("a@example.com", &evil).html.contains("<script>"));
    }

    #[test]
    fn a_missing_data_request_says_when_it_closes_in_the_calendars_zone() {
        let mut f = facts(Locale::Es, Subject::StatusChanged);
        f.status = "Datos faltantes";
        // 2026-12-01T19:05:00Z is 13:05 in Mexico City (UTC-6).
        f.closes_at = Some(1_796_151_900_000_000);
        let m = render("a@example.com", &f);
        assert!(
            m.text
                .contains("Se cerrará automáticamente el 01/12/2026 13:05 (America/Mexico_City)"),
            "{}",
            m.text
        );
        f.locale = Locale::En;
        let m = render("a@example.com", &f);
        assert!(
            m.text
                .contains("It will close by itself on 2026-12-01 13:05 (America/Mexico_City)"),
            "{}",
            m.text
        );
        assert!(m.html.contains("2026-12-01 13:05"));
    }

    #[test]
    fn comments_name_their_author() {
        let mut f = facts(Locale::En, Subject::Comment);
        f.author = Some("Ana <ops>");
        let m = render("a@example.com", &f);
        assert!(m.text.contains("Comment by Ana <ops>:"));
        assert!(m.html.contains("Comment by Ana &lt;ops&gt;:"));
    }

    #[test]
    fn only_public_events_make_e_mails() {
        let internal = EventPayload::CommentAdded {
            comment_id: "c".into(),
            body: "b".into(),
            internal: true,
        };
        assert_eq!(Subject::of(&internal), None);
        let public = EventPayload::CommentAdded {
            comment_id: "c".into(),
            body: "b".into(),
            internal: false,
        };
        assert_eq!(Subject::of(&public), Some(Subject::Comment));
    }

    #[test]
    fn addresses_are_checked_once() {
        assert!(parse_address("contact_email", "tienda@example.com").is_ok());
        assert!(parse_address("contact_email", "ana.lopez+ops@sub.example.mx").is_ok());
        for bad in [
            "",
            "tienda",
            "@example.com",
            "tienda@",
            " tienda@example.com",
            "tienda@example.com\n",
            "a b@example.com",
            "Tienda <tienda@example.com>",
        ] {
            match parse_address("contact_email", bad) {
                Err(Error::InvalidArgument(v)) => assert_eq!(v[0].field, "contact_email"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(parse_address("contact_email", &long).is_err());
    }
}
