//! Who is calling, as the verified token says, and in which language labels go back.

/// The `role` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A store or a driver: files tickets, sees only its account's.
    Requester,
    /// An operations agent (asesor): works every ticket.
    Agent,
    /// An agent with administrative rights.
    Admin,
}

impl Role {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "requester" => Some(Self::Requester),
            "agent" => Some(Self::Agent),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requester => "requester",
            Self::Agent => "agent",
            Self::Admin => "admin",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub role: Role,
    /// The tenant; always present for requesters.
    pub account: Option<String>,
    pub name: String,
    pub email: Option<String>,
}

impl Principal {
    pub fn is_agent(&self) -> bool {
        matches!(self.role, Role::Agent | Role::Admin)
    }

    /// The account a requester is confined to; `None` for agents, who see all.
    pub fn scope(&self) -> Option<&str> {
        match self.role {
            Role::Requester => self.account.as_deref(),
            Role::Agent | Role::Admin => None,
        }
    }

    /// A caller "u" named "U" for unit tests.
    #[cfg(test)]
    pub fn for_tests(role: Role, account: Option<&str>) -> Self {
        Self {
            sub: "u".into(),
            role,
            account: account.map(str::to_owned),
            name: "U".into(),
            email: None,
        }
    }

    /// Who a shared resource is counted against: a requester's account (its
    /// users share it), or the agent.
    pub fn quota_key(&self) -> String {
        match self.scope() {
            Some(account) => format!("account {account}"),
            None => format!("agent {}", self.sub),
        }
    }
}

/// The language of customer-facing labels (`accept-language` metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    Es,
    En,
}

impl Locale {
    /// The stored tag: "es" or "en".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es => "es",
            Self::En => "en",
        }
    }

    /// A stored tag back; anything else is Spanish, the default.
    pub fn parse(tag: &str) -> Self {
        match tag {
            "en" => Self::En,
            _ => Self::Es,
        }
    }

    /// Picks the first supported language of an Accept-Language value.
    pub fn from_accept_language(value: &str) -> Self {
        for part in value.split(',') {
            let tag = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag == "en" || tag.starts_with("en-") {
                return Self::En;
            }
            if tag == "es" || tag.starts_with("es-") {
                return Self::Es;
            }
        }
        Self::Es
    }
}
