//! Where the dashboard is mounted, and its CSRF tokens.
//!
//! A token is `nonce.mac`: 16 random bytes and their HMAC-SHA256 under a key made when the
//! router is built (hex). A page without a valid token in its `skiff_csrf` cookie mints one
//! and sets the cookie (`HttpOnly`, `SameSite=Strict`, scoped to the dashboard's path); every
//! form carries the same value in a hidden `csrf` field. A `POST` is accepted only when the
//! field equals the cookie and the MAC verifies: another site can neither read the token nor
//! make a browser send the cookie with its request, and a cookie planted by a neighbouring
//! subdomain fails the MAC.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::Shared;

const COOKIE_NAME: &str = "skiff_csrf";

/// The key that signs CSRF tokens; a new one per router (tokens die with the process).
pub(super) struct CsrfKey([u8; 32]);

impl CsrfKey {
    pub(super) fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    fn mac(&self, nonce: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        mac.update(b"skiff-dashboard-csrf:");
        mac.update(nonce);
        Some(mac)
    }

    fn mint(&self) -> String {
        let mut nonce = [0u8; 16];
        rand::rng().fill_bytes(&mut nonce);
        let tag = self
            .mac(&nonce)
            .map(|m| m.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        format!("{}.{}", hex(&nonce), hex(&tag))
    }

    /// Whether `token` was minted with this key.
    pub(super) fn verify(&self, token: &str) -> bool {
        let Some((nonce, tag)) = token.split_once('.') else {
            return false;
        };
        let (Some(nonce), Some(tag)) = (unhex(nonce), unhex(tag)) else {
            return false;
        };
        self.mac(&nonce)
            .is_some_and(|m| m.verify_slice(&tag).is_ok())
    }
}

/// The request's view of the dashboard: where it is mounted and its CSRF token.
pub(super) struct Session {
    /// The path the dashboard is mounted at, without a trailing slash (`""` at the root).
    pub(super) base: String,
    /// The CSRF token the page's forms carry.
    pub(super) token: String,
    /// Whether the token was minted for this response (its cookie must be set).
    fresh: bool,
}

impl Session {
    /// The `Set-Cookie` header a response must carry, if any.
    pub(super) fn cookie(&self) -> Option<HeaderValue> {
        if !self.fresh {
            return None;
        }
        let path = if self.base.is_empty() {
            "/"
        } else {
            &self.base
        };
        HeaderValue::from_str(&format!(
            "{COOKIE_NAME}={}; Path={path}; HttpOnly; SameSite=Strict",
            self.token
        ))
        .ok()
    }

    /// The CSRF cookie sent with the request, if any (valid or not).
    pub(super) fn cookie_token(headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE_NAME)
            .map(|(_, value)| value.to_owned())
    }
}

impl FromRequestParts<Shared> for Session {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Infallible> {
        let base = mount_path(parts);
        match Self::cookie_token(&parts.headers).filter(|t| state.csrf.verify(t)) {
            Some(token) => Ok(Self {
                base,
                token,
                fresh: false,
            }),
            None => Ok(Self {
                base,
                token: state.csrf.mint(),
                fresh: true,
            }),
        }
    }
}

/// Sets the session's cookie on a response when it was minted for it.
pub(super) fn with_cookie(
    session: &Session,
    mut response: axum::response::Response,
) -> axum::response::Response {
    if let Some(cookie) = session.cookie() {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// The path the dashboard's router is nested under: the original path minus the part the
/// router saw.
pub(super) fn mount_path(parts: &Parts) -> String {
    let inner = parts.uri.path();
    let original = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(inner, |o| o.0.path());
    let base = if inner == "/" {
        original.trim_end_matches('/')
    } else {
        original.strip_suffix(inner).unwrap_or("")
    };
    base.to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Percent-encodes one path segment or query value.
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_under_their_key() {
        let key = CsrfKey::generate();
        let token = key.mint();
        assert!(key.verify(&token));
        assert!(!CsrfKey::generate().verify(&token));
        let (nonce, _) = token.split_once('.').unwrap_or_default();
        assert!(!key.verify(&format!("{nonce}.{}", "00".repeat(32))));
        assert!(!key.verify("garbage"));
        assert!(!key.verify(""));
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode("emails"), "emails");
        assert_eq!(encode("a b/<c>"), "a%20b%2F%3Cc%3E");
    }
}
