//! Who is told about what (issue #15: "configurable, these defaults"): for
//! each relation to a ticket (its requester, its assignee), the triggers
//! that tell them, read once at start from `--notify-rules`.
//!
//! The syntax is `relation=trigger,trigger;relation=…`, e.g. the defaults:
//! `requester=created,status,comment,missing_data,auto_close;assignee=assigned,requester_comment,breach`.
//! A relation left out keeps its defaults; `assignee=` (nothing after the
//! `=`) tells the assignee nothing. Two rules are not configurable and hold
//! whatever the text says (`notify::recipients`): internal notes reach
//! nobody, and tickets without a number (SIMPLE consultations) notify nobody.
use std::fmt;

use super::event::{Actor, EventPayload};
use super::incident::{IncidentStatus, ResolutionReason};

/// Something that happens to a ticket that someone may be told about.
/// An event may be several at once: a request for missing data is also a
/// status change, and so is the auto-close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// `created`: the ticket was filed (incidents, ticketed consultations).
    Created,
    /// `status`: any status change, the request for missing data, the
    /// return from it and the auto-close among them.
    Status,
    /// `comment`: a public comment by an agent or an admin (anyone but a
    /// requester).
    Comment,
    /// `missing_data`: a request for missing data (an incident moved to
    /// MISSING_DATA).
    MissingData,
    /// `auto_close`: an incident closed by itself for want of an answer.
    AutoClose,
    /// `assigned`: the ticket was assigned (or reassigned, or unassigned).
    Assigned,
    /// `requester_comment`: a public comment by the requester.
    RequesterComment,
    /// `breach`: the ticket passed its due time (SLA breach).
    Breach,
}

impl Trigger {
    pub const ALL: &'static [Trigger] = &[
        Self::Created,
        Self::Status,
        Self::Comment,
        Self::MissingData,
        Self::AutoClose,
        Self::Assigned,
        Self::RequesterComment,
        Self::Breach,
    ];

    /// Its name in `--notify-rules`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Status => "status",
            Self::Comment => "comment",
            Self::MissingData => "missing_data",
            Self::AutoClose => "auto_close",
            Self::Assigned => "assigned",
            Self::RequesterComment => "requester_comment",
            Self::Breach => "breach",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == text)
    }
}

/// The text of the default rules, as `--help` shows it.
pub const DEFAULT_RULES: &str = "requester=created,status,comment,missing_data,auto_close;\
                                 assignee=assigned,requester_comment,breach";

/// A set of triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Triggers(u16);

impl Triggers {
    pub const NONE: Self = Self(0);

    const fn bit(t: Trigger) -> u16 {
        1 << t as u16
    }

    pub const fn of(triggers: &[Trigger]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < triggers.len() {
            bits |= Self::bit(triggers[i]);
            i += 1;
        }
        Self(bits)
    }

    pub fn contains(self, t: Trigger) -> bool {
        self.0 & Self::bit(t) != 0
    }

    pub fn with(self, t: Trigger) -> Self {
        Self(self.0 | Self::bit(t))
    }

    /// Whether the two sets share a trigger.
    pub fn meets(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// In declaration order.
    pub fn iter(self) -> impl Iterator<Item = Trigger> {
        Trigger::ALL
            .iter()
            .copied()
            .filter(move |&t| self.contains(t))
    }

    /// What `payload`, caused by `actor`, is. An internal note is nothing:
    /// no rule can send it anywhere.
    pub fn of_event(actor: &Actor, payload: &EventPayload) -> Self {
        use Trigger::*;
        match payload {
            EventPayload::Created { .. } => Self::of(&[Created]),
            EventPayload::StatusChanged { to, reason, .. } => {
                let mut is = Self::of(&[Status]);
                if to == IncidentStatus::MissingData.as_str() {
                    is = is.with(MissingData);
                }
                let no_answer =
                    reason.as_deref() == Some(ResolutionReason::NoCustomerResponse.as_str());
                if actor.role == "system" && to == IncidentStatus::Finalized.as_str() && no_answer {
                    is = is.with(AutoClose);
                }
                is
            }
            EventPayload::CommentAdded { internal: true, .. } => Self::NONE,
            EventPayload::CommentAdded { .. } if actor.role == "requester" => {
                Self::of(&[RequesterComment])
            }
            EventPayload::CommentAdded { .. } => Self::of(&[Comment]),
            EventPayload::Assigned { .. } => Self::of(&[Assigned]),
            EventPayload::SlaBreached { .. } => Self::of(&[Breach]),
            EventPayload::Reclassified { .. } => Self::NONE,
        }
    }
}

impl fmt::Display for Triggers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(t.as_str())?;
        }
        Ok(())
    }
}

/// Who is told about what: the triggers of each relation to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub requester: Triggers,
    pub assignee: Triggers,
}

impl Default for Rules {
    /// DESIGN §4 and issue #15: the requester on creation, every status
    /// change, every public agent comment, a request for missing data and
    /// the auto-close; the assignee on assignment, requester comments and
    /// an SLA breach.
    fn default() -> Self {
        use Trigger::*;
        Self {
            requester: Triggers::of(&[Created, Status, Comment, MissingData, AutoClose]),
            assignee: Triggers::of(&[Assigned, RequesterComment, Breach]),
        }
    }
}

impl Rules {
    /// Reads `requester=created,status;assignee=assigned` (see the module's
    /// doc). Spaces around names are ignored, as are empty parts (a trailing
    /// `;` or `,`). The error names the bad part and what would be right.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Self::default();
        let mut seen: Vec<&str> = vec![];
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((relation, list)) = part.split_once('=') else {
                return Err(format!(
                    "{part:?} is not a rule: write relation=trigger,… \
                     (e.g. requester=created,status)"
                ));
            };
            let relation = relation.trim();
            let slot = match relation {
                "requester" => &mut rules.requester,
                "assignee" => &mut rules.assignee,
                _ => {
                    return Err(format!(
                        "unknown recipient {relation:?} in {part:?}: use requester or assignee"
                    ));
                }
            };
            if seen.contains(&relation) {
                return Err(format!("{relation} has two rules; give it one"));
            }
            seen.push(relation);
            let mut triggers = Triggers::NONE;
            for token in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                let Some(t) = Trigger::parse(token) else {
                    return Err(format!(
                        "unknown trigger {token:?} for {relation}: use any of {}",
                        Trigger::ALL
                            .iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                };
                triggers = triggers.with(t);
            }
            *slot = triggers;
        }
        Ok(rules)
    }
}

impl std::str::FromStr for Rules {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl fmt::Display for Rules {
    /// The canonical text, which `parse` reads back to the same rules.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "requester={};assignee={}", self.requester, self.assignee)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Trigger::*;

    fn actor(role: &str) -> Actor {
        Actor {
            id: "x".into(),
            name: "X".into(),
            role: role.into(),
        }
    }

    fn status(to: &str, reason: Option<&str>) -> EventPayload {
        EventPayload::StatusChanged {
            from: "MISSING_DATA".into(),
            to: to.into(),
            reason: reason.map(Into::into),
            comment: None,
        }
    }

    fn comment(internal: bool) -> EventPayload {
        EventPayload::CommentAdded {
            comment_id: "c".into(),
            body: "b".into(),
            internal,
        }
    }

    #[test]
    fn the_default_text_reads_as_the_defaults_and_back() {
        assert_eq!(Rules::parse(DEFAULT_RULES), Ok(Rules::default()));
        assert_eq!(Rules::parse(""), Ok(Rules::default()));
        assert_eq!(Rules::parse(" ; "), Ok(Rules::default()));
        let text = Rules::default().to_string();
        assert_eq!(text, DEFAULT_RULES);
        assert_eq!(Rules::parse(&text), Ok(Rules::default()));
    }

    #[test]
    fn a_rule_replaces_its_relations_triggers_and_leaves_the_other_alone() {
        let only_created = Rules::parse("requester=created").unwrap();
        assert_eq!(only_created.requester, Triggers::of(&[Created]));
        assert_eq!(only_created.assignee, Rules::default().assignee);
        let rules = Rules::parse(" assignee = breach , assigned ; requester= ;").unwrap();
        assert_eq!(rules.requester, Triggers::NONE);
        assert_eq!(rules.assignee, Triggers::of(&[Assigned, Breach]));
        assert_eq!(rules.to_string(), "requester=;assignee=assigned,breach");
        assert_eq!(Rules::parse(&rules.to_string()), Ok(rules));
        // Any trigger may tell either relation; a repeated one is one.
        let wide = Rules::parse("assignee=status,comment,status").unwrap();
        assert_eq!(wide.assignee, Triggers::of(&[Status, Comment]));
        let all = Trigger::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let every = Rules::parse(&format!("requester={all};assignee={all}")).unwrap();
        assert_eq!(every.requester.iter().count(), Trigger::ALL.len());
    }

    #[test]
    fn a_bad_rule_is_refused_naming_what_is_wrong() {
        let cases = [
            (
                "requester=created,stauts",
                "unknown trigger \"stauts\" for requester",
            ),
            ("requester=Created", "unknown trigger \"Created\""),
            ("agent=created", "unknown recipient \"agent\""),
            ("requester", "\"requester\" is not a rule"),
            ("requester:created", "\"requester:created\" is not a rule"),
            (
                "requester=created;requester=status",
                "requester has two rules",
            ),
        ];
        for (text, expected) in cases {
            let error = Rules::parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
        let error = Rules::parse("assignee=nope").unwrap_err();
        assert!(
            error.contains("use any of created, status, comment, missing_data, auto_close"),
            "{error}"
        );
    }

    #[test]
    fn each_event_is_the_triggers_it_matches() {
        let created = EventPayload::Created {
            status: "NEW_TICKET".into(),
        };
        let assigned = EventPayload::Assigned {
            assignee_id: Some("ana".into()),
            assignee_name: None,
            previous_assignee_id: None,
        };
        let reclassified = EventPayload::Reclassified {
            from: "SIMPLE".into(),
            to: "TECHNOLOGY".into(),
            due_at: None,
            number: Some(1),
        };
        let closed = status("FINALIZED", Some("NO_CUSTOMER_RESPONSE"));
        type Row<'a> = (&'a str, EventPayload, &'a [Trigger]);
        let table: Vec<Row> = vec![
            ("requester", created, &[Created]),
            ("agent", status("IN_PROGRESS", None), &[Status]),
            (
                "agent",
                status("MISSING_DATA", None),
                &[Status, MissingData],
            ),
            ("system", closed.clone(), &[Status, AutoClose]),
            // Only the system closes by itself.
            ("agent", closed, &[Status]),
            ("system", status("FINALIZED", Some("RESOLVED")), &[Status]),
            // The return from MISSING_DATA is a status change like any.
            ("system", status("NEW_TICKET", None), &[Status]),
            ("agent", comment(false), &[Comment]),
            ("admin", comment(false), &[Comment]),
            ("requester", comment(false), &[RequesterComment]),
            ("agent", comment(true), &[]),
            ("agent", assigned, &[Assigned]),
            ("system", EventPayload::SlaBreached { due_at: 5 }, &[Breach]),
            ("agent", reclassified, &[]),
        ];
        for (by, payload, expected) in table {
            assert_eq!(
                Triggers::of_event(&actor(by), &payload),
                Triggers::of(expected),
                "{by} {payload:?}"
            );
        }
    }
}
