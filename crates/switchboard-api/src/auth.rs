//! Who is asking: JWT bearer tokens (HS256, secret from the configuration) and the viewer they
//! name.
//!
//! A token names a user by id. Every request looks the user up in the current directory, so a
//! role change or a removed user takes effect at once, whatever the token says.

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

/// The keys tokens are signed and checked with. `Debug` never prints the secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
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
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
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
    fn bearer_headers_are_parsed() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
