//! Who is asking: JWT bearer tokens (HS256, secret from the configuration) and the viewer they
//! name.
//!
//! A token names a user by id. Every request looks the user up in the current directory, so a
//! role change or a removed user takes effect at once, whatever the token says.
//!
//! A client sends the same token with every request, so [`Keys::verify`] remembers the tokens
//! whose signature it has checked (a bounded map from token text to claims) and skips the
//! HMAC, base64 and JSON work when it sees one again; the expiry is still checked on every
//! request. Only tokens that verified are remembered: a forged or malformed one costs the full
//! check every time, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// What a Switchboard token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// The user's e-mail when the token was minted (for people reading the token; not trusted).
    pub email: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// Seconds a token is still accepted after its `exp`.
const LEEWAY: u64 = 30;

/// Most verified tokens [`Keys`] remembers; when full it drops the expired ones, and starts
/// afresh if that is not enough.
const VERIFIED_TOKENS: usize = 4_096;

/// The keys tokens are signed and checked with. `Debug` never prints the secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Tokens whose signature verified with these keys, and their claims.
    verified: Arc<Mutex<HashMap<String, Claims>>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<secret>)")
    }
}

impl Keys {
    /// Keys from the shared secret.
    pub fn new(secret: &[u8]) -> Keys {
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            verified: Arc::default(),
        }
    }

    /// A token for `user_id`, valid for `ttl` from `now`.
    pub fn mint(&self, user_id: Uuid, email: &str, now: DateTime<Utc>, ttl: TimeDelta) -> String {
        let claims = Claims {
            sub: user_id,
            email: email.to_owned(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        // Encoding HS256 claims that serialise cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(claims) = self.remembered(token, now) {
            return Ok(claims);
        }
        let claims = self.decode(token)?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_TOKENS {
                verified.retain(|_, claims| unexpired(claims, now));
                if verified.len() >= VERIFIED_TOKENS {
                    verified.clear();
                }
            }
            verified.insert(token.to_owned(), claims.clone());
        }
        Ok(claims)
    }

    /// The claims of `token` if it verified before and has not expired at `now` (seconds since
    /// the epoch). An expired one is left to [`Keys::decode`], which says so.
    fn remembered(&self, token: &str, now: u64) -> Option<Claims> {
        let verified = self.verified.lock().ok()?;
        verified
            .get(token)
            .filter(|claims| unexpired(claims, now))
            .cloned()
    }

    /// Checks `token`'s signature, required claims and expiry.
    fn decode(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = LEEWAY;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "the token's signature does not verify"
                    }
                    _ => "the token is malformed",
                };
                ApiError::Unauthenticated(why.to_owned())
            })
    }
}

/// Whether `claims` are still valid at `now`, as `jsonwebtoken` decides it (`exp` no earlier
/// than `now` less the leeway).
fn unexpired(claims: &Claims, now: u64) -> bool {
    u64::try_from(claims.exp).is_ok_and(|exp| exp >= now.saturating_sub(LEEWAY))
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The authenticated user of one request or subscription connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    /// The user's id; the directory says what they may see.
    pub user_id: Uuid,
}

/// What a request proved about its sender: a viewer, or why not. Resolvers ask for it with
/// [`crate::state::viewer`]; schema introspection needs none, so GraphiQL loads without a token.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// A valid token.
    Viewer(Viewer),
    /// No token, or an invalid one (the message says which).
    Refused(String),
}

impl Authentication {
    /// Checks the token of an `Authorization` header value, if any.
    pub fn from_header(keys: &Keys, header: Option<&str>) -> Authentication {
        let Some(header) = header else {
            return Authentication::Refused(
                "send a token: `Authorization: Bearer <token>` (`switchboard token --user EMAIL`)"
                    .to_owned(),
            );
        };
        let Some(token) = bearer(header) else {
            return Authentication::Refused(
                "the Authorization header must be `Bearer <token>`".to_owned(),
            );
        };
        match keys.verify(token) {
            Ok(claims) => Authentication::Viewer(Viewer {
                user_id: claims.sub,
            }),
            Err(e) => Authentication::Refused(e.message()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_and_a_tampered_one_does_not() {
        let keys = Keys::new(b"secret");
        let user = Uuid::now_v7();
        let token = keys.mint(user, "a@example.com", Utc::now(), TimeDelta::hours(1));
        assert_eq!(keys.verify(&token).map(|c| c.sub).ok(), Some(user));
        assert!(Keys::new(b"other").verify(&token).is_err());
        let expired = keys.mint(
            user,
            "a@example.com",
            Utc::now() - TimeDelta::days(2),
            TimeDelta::hours(1),
        );
        assert!(keys.verify(&expired).is_err());
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let keys = Keys::new(b"secret");
        let user = Uuid::now_v7();
        let minted = Utc::now();
        let token = keys.mint(user, "a@example.com", minted, TimeDelta::hours(1));
        let now = u64::try_from(minted.timestamp()).unwrap_or_default();
        assert!(keys.remembered(&token, now).is_none());
        assert_eq!(keys.verify(&token).map(|c| c.sub).ok(), Some(user));
        assert_eq!(keys.remembered(&token, now).map(|c| c.sub), Some(user));
        let exp = now + 3_600;
        assert!(keys.remembered(&token, exp + LEEWAY).is_some());
        assert!(keys.remembered(&token, exp + LEEWAY + 1).is_none());
        // Another secret does not share what these keys remember.
        assert!(Keys::new(b"other").verify(&token).is_err());
    }

    #[test]
    fn bearer_headers_are_parsed() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
