//! Who is asking: JWT bearer tokens and the viewer they name.
//!
//! Two kinds of token are accepted:
//! - Switchboard's own (HS256, signed with the configured secret, minted by `switchboard token`),
//!   naming a user by id (`sub`), with this server's issuer (`iss`) and audience (`aud`), an id
//!   (`jti`), and issue and expiry times. Tokens minted before they carried `iss` and `aud` are
//!   refused (mint a new one): without them a token says nothing about whom it was meant for.
//! - An OpenID Connect provider's ID or access tokens (RS256 or ES256, see [`oidc`]), naming a
//!   user by `email`.
//!
//! Every request looks the user up in the current directory, so a role change, a deactivation
//! or a revocation (tokens issued before its cut-off) takes effect at once, whatever the token
//! says.
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

pub mod oidc;

/// What a Switchboard token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// The user's e-mail when the token was minted (for people reading the token; not trusted).
    pub email: String,
    /// Issued at, seconds since the epoch: a revocation refuses tokens issued before it.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Who issued it: the configured issuer. (Absent from tokens minted before it was
    /// written; the validation refuses those, naming the claim.)
    #[serde(default)]
    pub iss: String,
    /// Whom it is for: the configured audience.
    #[serde(default)]
    pub aud: String,
    /// The token's own id, for logs and audits.
    #[serde(default)]
    pub jti: Uuid,
}

/// The issuer and audience Switchboard's own tokens name, from the configuration. Tokens with
/// another issuer or audience (another installation's, a staging server's) are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// `iss` of minted tokens, and the only one accepted.
    pub issuer: String,
    /// `aud` of minted tokens, and the only one accepted.
    pub audience: String,
}

/// The issuer and audience unless configured.
pub const DEFAULT_ISSUER: &str = "switchboard";
/// See [`DEFAULT_ISSUER`].
pub const DEFAULT_AUDIENCE: &str = "switchboard-api";

impl Default for TokenSettings {
    fn default() -> TokenSettings {
        TokenSettings {
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
        }
    }
}

/// Seconds a token is still accepted after its `exp`.
pub(crate) const LEEWAY: u64 = 30;

/// Most verified tokens [`Keys`] remembers; when full it drops the expired ones, and starts
/// afresh if that is not enough.
const VERIFIED_TOKENS: usize = 4_096;

/// The keys tokens are signed and checked with. `Debug` never prints the secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    settings: TokenSettings,
    /// Tokens whose signature verified with these keys, and their claims.
    verified: Arc<Mutex<HashMap<String, Claims>>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<secret>)")
    }
}

impl Keys {
    /// Keys from the shared secret, for tokens naming `settings`' issuer and audience.
    pub fn new(secret: &[u8], settings: TokenSettings) -> Keys {
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            settings,
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
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            jti: Uuid::new_v4(),
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

    /// Checks `token`'s signature, required claims, issuer, audience and expiry.
    fn decode(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.leeway = LEEWAY;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| ApiError::Unauthenticated(refusal(&e)))
    }
}

/// Why a token was refused, in words its holder can act on.
pub(crate) fn refusal(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::ExpiredSignature => "the token has expired".to_owned(),
        K::InvalidSignature => "the token's signature does not verify".to_owned(),
        K::InvalidIssuer => "the token's issuer (iss) is not one this server accepts".to_owned(),
        K::InvalidAudience => "the token is not meant for this API (aud)".to_owned(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
        K::MissingRequiredClaim(claim) => format!(
            "the token has no {claim} claim; tokens minted before they named their issuer and \
             audience are refused: mint a new one (`switchboard token --user EMAIL`)"
        ),
        K::InvalidAlgorithm => "the token is signed with an algorithm not accepted here".to_owned(),
        _ => "the token is malformed".to_owned(),
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
    /// When their token was issued (`iat`, seconds since the epoch): a revocation or
    /// deactivation refuses tokens issued before it.
    pub issued_at: i64,
}

/// What a request proved about its sender: a viewer, or why not. Resolvers ask for it with
/// [`crate::state::viewer`], which checks the viewer against the directory on every request.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// A valid token.
    Viewer(Viewer),
    /// No token, or an invalid one (the message says which).
    Refused(String),
}

/// The message for a request without a token.
pub(crate) const SEND_A_TOKEN: &str =
    "send a token: `Authorization: Bearer <token>` (`switchboard token --user EMAIL`)";

/// Whether the secrets `a` and `b` are equal, in time that depends on neither where they differ
/// nor their lengths: their SHA-256 digests are compared byte by byte, all of them. For shared
/// secrets presented by callers (ingest secrets, webhook verify tokens).
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_and_a_tampered_one_does_not() {
        let keys = Keys::new(b"secret", TokenSettings::default());
        let user = Uuid::now_v7();
        let token = keys.mint(user, "a@example.com", Utc::now(), TimeDelta::hours(1));
        assert_eq!(keys.verify(&token).map(|c| c.sub).ok(), Some(user));
        assert!(
            Keys::new(b"other", TokenSettings::default())
                .verify(&token)
                .is_err()
        );
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
        let keys = Keys::new(b"secret", TokenSettings::default());
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
        assert!(
            Keys::new(b"other", TokenSettings::default())
                .verify(&token)
                .is_err()
        );
    }

    #[test]
    fn tokens_of_another_issuer_or_audience_or_without_them_are_refused() {
        let keys = Keys::new(b"secret", TokenSettings::default());
        let user = Uuid::now_v7();
        let token = keys.mint(user, "a@example.com", Utc::now(), TimeDelta::hours(1));
        let claims = keys.verify(&token).expect("verifies");
        assert_eq!(claims.iss, DEFAULT_ISSUER);
        assert_eq!(claims.aud, DEFAULT_AUDIENCE);
        let other = |issuer: &str, audience: &str| {
            Keys::new(
                b"secret",
                TokenSettings {
                    issuer: issuer.to_owned(),
                    audience: audience.to_owned(),
                },
            )
        };
        let says = |keys: &Keys, text: &str| match keys.verify(&token) {
            Err(ApiError::Unauthenticated(why)) => assert!(why.contains(text), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        };
        says(&other("staging", DEFAULT_AUDIENCE), "issuer (iss)");
        says(&other(DEFAULT_ISSUER, "another-api"), "(aud)");
        // A token minted before tokens named their issuer and audience.
        #[derive(Serialize)]
        struct Old {
            sub: Uuid,
            email: String,
            iat: i64,
            exp: i64,
        }
        let now = Utc::now().timestamp();
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Old {
                sub: user,
                email: "a@example.com".into(),
                iat: now,
                exp: now + 3_600,
            },
            &EncodingKey::from_secret(b"secret"),
        )
        .expect("encodes");
        match keys.verify(&old) {
            Err(ApiError::Unauthenticated(why)) => assert!(why.contains("mint a new one"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Every token has its own id.
        let again = keys.mint(user, "a@example.com", Utc::now(), TimeDelta::hours(1));
        assert_ne!(keys.verify(&again).map(|c| c.jti).ok(), Some(claims.jti));
    }

    #[test]
    fn bearer_headers_are_parsed() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
