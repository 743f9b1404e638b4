//! Opaque page tokens: base64url JSON of a position plus a fingerprint of the
//! request they belong to, so a token replayed with other filters is refused.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Error, Result};

#[derive(Serialize, Deserialize)]
struct Token<T> {
    /// The request fingerprint.
    f: String,
    /// The position after which the next page starts.
    k: T,
}

/// A short digest of the parts of a request that must not change between pages.
pub fn fingerprint(parts: &[u8]) -> String {
    let digest = Sha256::digest(parts);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn encode<T: Serialize>(position: T, fingerprint: &str) -> String {
    let token = Token {
        f: fingerprint.to_owned(),
        k: position,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// Decodes `token`; empty means the first page.
pub fn decode<T: DeserializeOwned>(token: &str, fingerprint: &str) -> Result<Option<T>> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("page_token", "not a page token returned by this RPC");
    if token.len() > 1024 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let token: Token<T> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if token.f != fingerprint {
        return Err(Error::invalid(
            "page_token",
            "the page token belongs to a request with other filters; keep them the same while paging",
        ));
    }
    Ok(Some(token.k))
}

/// Validates a page size: negative is invalid, 0 means `default`, above `max` is clamped.
pub fn page_size(value: i32, default: u64, max: u64) -> Result<u64> {
    match value {
        v if v < 0 => Err(Error::invalid(
            "page_size",
            format!("must not be negative, got {v}"),
        )),
        0 => Ok(default),
        v => Ok((v as u64).min(max)),
    }
}
