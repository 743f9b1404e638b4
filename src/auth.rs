//! JWT bearer authentication (DESIGN §7): HS256 with a shared secret, or RS256
//! with a public key. Without a configured secret, a random one is kept in
//! `<data-dir>/jwt-secret` (mode 0600), shared by `ticketd serve` and `ticketd token`.
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::Error;
use crate::domain::principal::{Principal, Role};

const SECRET_FILE: &str = "jwt-secret";
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Longest `sub` and `account` (the ticket columns that keep them hold 128).
const MAX_ID_CHARS: usize = 128;
const MAX_NAME_CHARS: usize = 256;
/// The longest address SMTP carries (RFC 5321's path limit less its brackets).
const MAX_EMAIL_CHARS: usize = 254;

/// The claims ticketd reads and `ticketd token` writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub exp: u64,
    /// Not before (Unix seconds); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at (Unix seconds); 0 when absent.
    #[serde(default)]
    pub iat: u64,
}

impl Claims {
    /// `sub` with `role` (and, for requesters, `account`) until `exp` (Unix
    /// seconds); no name, e-mail or issue time.
    pub fn new(sub: &str, role: &str, account: Option<&str>, exp: u64) -> Self {
        Self {
            sub: sub.into(),
            role: role.into(),
            account: account.map(Into::into),
            name: None,
            email: None,
            exp,
            nbf: None,
            iat: 0,
        }
    }
}

/// How far the token issuer's clock may be from ours by default: `exp`, `nbf`
/// and `iat` are each allowed this much either way.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Verifies bearer tokens.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    pub fn rs256_pem(pem: &[u8]) -> anyhow::Result<Self> {
        let key = DecodingKey::from_rsa_pem(pem).context("invalid RS256 public key")?;
        Ok(Self::new(key, Algorithm::RS256))
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { key, validation }.with_leeway(DEFAULT_LEEWAY)
    }

    /// Allows the issuer's clock this far from ours (whole seconds): a token
    /// passes until `exp` + leeway, from `nbf` − leeway, and with an `iat` up
    /// to leeway ahead.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.validation.leeway = leeway.as_secs();
        self
    }

    /// Checks an `authorization` header value and returns the caller.
    pub fn verify(&self, header: Option<&str>) -> Result<Principal, Error> {
        let header = header.ok_or_else(|| {
            Error::Unauthenticated(
                "missing authorization metadata: send `authorization: Bearer <token>`".into(),
            )
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| Error::Unauthenticated("authorization must be `Bearer <token>`".into()))?
            .trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(Error::Unauthenticated("malformed bearer token".into()));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(rejection)?;
        // jsonwebtoken checks exp and nbf but not iat.
        let now = jsonwebtoken::get_current_timestamp();
        if data.claims.iat > now.saturating_add(self.validation.leeway) {
            return Err(Error::Unauthenticated(
                "token is issued in the future (its iat is ahead of this server's clock)".into(),
            ));
        }
        principal(data.claims)
    }
}

/// A plain message for a token jsonwebtoken refused. Its own messages name
/// serde and base64 internals (`unknown variant `none`, expected one of…`,
/// `Invalid last symbol 116`), which tell a client nothing it can act on;
/// they are logged at debug level for whoever runs the server.
fn rejection(err: jsonwebtoken::errors::Error) -> Error {
    use jsonwebtoken::errors::ErrorKind;
    tracing::debug!(error = %err, "bearer token refused");
    let message = match err.kind() {
        ErrorKind::ExpiredSignature => "token expired".to_owned(),
        ErrorKind::ImmatureSignature => {
            "token is not valid yet (its nbf is in the future)".to_owned()
        }
        ErrorKind::InvalidSignature | ErrorKind::Crypto(_) => {
            "token signature is invalid".to_owned()
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => {
            "token is signed with an algorithm this server does not accept".to_owned()
        }
        // The name is one of the claims the validation requires (exp, sub).
        ErrorKind::MissingRequiredClaim(claim) => format!("token has no {claim} claim"),
        ErrorKind::Json(_) => "token header or claims are not the expected JSON".to_owned(),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            "malformed bearer token".to_owned()
        }
        // Key errors and kinds added by later versions (the enum is non-exhaustive).
        _ => "invalid token".to_owned(),
    };
    Error::Unauthenticated(message)
}

fn principal(claims: Claims) -> Result<Principal, Error> {
    let role = Role::parse(&claims.role).ok_or_else(|| {
        Error::Unauthenticated(format!(
            "unknown role {:?}: expected requester, agent or admin",
            claims.role
        ))
    })?;
    let sub = text_claim("sub", claims.sub, MAX_ID_CHARS)?;
    if sub.is_empty() {
        return Err(Error::Unauthenticated(
            "the sub claim must not be empty".into(),
        ));
    }
    // An empty optional claim counts as absent.
    let optional = |claim, value: Option<String>, max| {
        value
            .map(|v| text_claim(claim, v, max))
            .transpose()
            .map(|v| v.filter(|v| !v.is_empty()))
    };
    let account = optional("account", claims.account, MAX_ID_CHARS)?;
    let name = optional("name", claims.name, MAX_NAME_CHARS)?;
    let email = optional("email", claims.email, MAX_EMAIL_CHARS)?;
    // Requesters' e-mails go to it (issue #15): one address, checked once here.
    if let Some(address) = &email
        && crate::domain::mail::parse_address("email", address).is_err()
    {
        return Err(Error::Unauthenticated(
            "the email claim is not an e-mail address like tienda@example.com".into(),
        ));
    }
    if role == Role::Requester && account.is_none() {
        return Err(Error::Unauthenticated(
            "requester tokens need an account claim".into(),
        ));
    }
    Ok(Principal {
        name: name.unwrap_or_else(|| sub.clone()),
        sub,
        role,
        account,
        email,
    })
}

/// A text claim exactly as sent, or why it is refused: at most `max`
/// characters, no control characters (C0, DEL and C1: PostgreSQL's text
/// refuses NUL, and escape sequences would reach terminals and logs through
/// names and accounts), and no whitespace at either end. Nothing is trimmed or
/// normalised, so accounts compare byte for byte: " acme" is refused rather
/// than taken for "acme", and "Acme" is another account.
fn text_claim(claim: &str, value: String, max: usize) -> Result<String, Error> {
    let refuse = |what: &str| Err(Error::Unauthenticated(format!("the {claim} claim {what}")));
    if value.chars().count() > max {
        return refuse(&format!("must be at most {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return refuse("must not contain control characters");
    }
    if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        return refuse("must not begin or end with whitespace");
    }
    Ok(value)
}

/// Signs tokens with an HS256 secret (`ticketd token`, tests).
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> anyhow::Result<String> {
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )?)
}

/// The configured secret, or the one in `data_dir` (created, mode 0600, when
/// `create` is set and none exists yet). Returns the secret and whether it was
/// just created.
pub fn load_or_create_secret(
    configured: Option<&str>,
    data_dir: &Path,
    create: bool,
) -> anyhow::Result<(Vec<u8>, bool)> {
    if let Some(secret) = configured {
        if secret.len() < 32 {
            bail!("the JWT secret must be at least 32 bytes long");
        }
        return Ok((secret.as_bytes().to_vec(), false));
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok((text.trim().as_bytes().to_vec(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot read {} (start `ticketd serve` once, or set TICKETD_JWT_SECRET)",
                    path.display()
                )
            });
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, secret.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((secret.into_bytes(), true))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: &str, account: Option<&str>, exp: u64) -> Claims {
        Claims::new("ana", role, account, exp)
    }

    fn far_future() -> u64 {
        4_000_000_000
    }

    #[test]
    fn a_token_signed_with_the_secret_yields_its_principal() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let token = sign_hs256(secret, &claims("requester", Some("acme"), far_future())).unwrap();
        let p = Verifier::hs256(secret)
            .verify(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(
            (p.sub.as_str(), p.role, p.account.as_deref()),
            ("ana", Role::Requester, Some("acme"))
        );
    }

    #[test]
    fn forged_expired_and_accountless_requester_tokens_are_rejected() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let verifier = Verifier::hs256(secret);
        let forged = sign_hs256(
            b"another-secret-another-secret-xx",
            &claims("agent", None, far_future()),
        )
        .unwrap();
        let expired = sign_hs256(secret, &claims("agent", None, 1_000)).unwrap();
        let no_account = sign_hs256(secret, &claims("requester", None, far_future())).unwrap();
        for token in [forged, expired, no_account, "garbage".into()] {
            assert!(matches!(
                verifier.verify(Some(&format!("Bearer {token}"))),
                Err(Error::Unauthenticated(_))
            ));
        }
        assert!(matches!(
            verifier.verify(None),
            Err(Error::Unauthenticated(_))
        ));
    }
}
