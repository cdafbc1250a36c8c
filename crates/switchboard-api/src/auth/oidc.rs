//! Tokens from an OpenID Connect provider (Okta, Entra ID, Google, Keycloak...), beside
//! Switchboard's own.
//!
//! The configuration names the provider's issuer, the audience its tokens must carry (the client
//! id Switchboard is registered under) and the URL of its JSON Web Key Set. A token is accepted
//! when it is signed with RS256 or ES256 by a key of that set (found by the token's `kid`), names
//! that issuer and audience, has not expired, and carries an `email` that is a user of the
//! directory. A token whose `email_verified` is false is refused: the provider does not vouch
//! for the address. So is a token without `iat`, which a revocation could not be checked against.
//!
//! The key set is fetched on first use and kept. It is fetched again when a token names a key it
//! does not hold (the provider rotated its keys), at most once per `jwks_min_interval` so that
//! tokens with made-up key ids cannot make the server hammer the provider, and when it is older
//! than `jwks_refresh` (so a key the provider withdrew stops being accepted). If a fetch fails,
//! the keys already held keep working and the failure is logged.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::auth::{LEEWAY, refusal};
use crate::error::ApiError;

/// Where the provider is and what its tokens must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The provider's issuer (`iss`), e.g. `https://login.example.com/`.
    pub issuer: String,
    /// The audience (`aud`) its tokens must carry: the client id Switchboard is registered under.
    pub audience: String,
    /// The URL of the provider's JSON Web Key Set (its discovery document's `jwks_uri`).
    pub jwks_url: String,
    /// Keys older than this are fetched again on the next token.
    pub jwks_refresh: Duration,
    /// At most one fetch per this interval, however many tokens name unknown keys.
    pub jwks_min_interval: Duration,
}

/// How long one fetch of the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// An OpenID Connect provider whose tokens are accepted, with its keys.
#[derive(Debug)]
pub struct Provider {
    settings: OidcSettings,
    /// The HTTP client, or why none could be built (then every fetch fails with it).
    client: Result<reqwest::Client, String>,
    keys: RwLock<KeySet>,
    /// Held while fetching, so that concurrent requests wait for one fetch instead of each
    /// starting its own.
    fetching: Mutex<()>,
}

/// The provider's keys as last fetched.
#[derive(Default)]
struct KeySet {
    /// Signing keys by key id, with the algorithm each is for.
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    /// When the keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch was last tried, successfully or not.
    tried: Option<Instant>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .field("fetched", &self.fetched)
            .finish()
    }
}

impl KeySet {
    fn fresh(&self, refresh: Duration) -> bool {
        self.fetched.is_some_and(|at| at.elapsed() < refresh)
    }
}

/// What an accepted token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The holder's e-mail, to be found in the directory.
    pub email: String,
    /// Issued at, seconds since the epoch.
    pub issued_at: i64,
}

/// The claims read from a provider's token, beside those `jsonwebtoken` checks.
#[derive(Deserialize)]
struct ProviderClaims {
    email: Option<String>,
    /// A boolean, though some providers send the string `"false"`.
    email_verified: Option<serde_json::Value>,
    iat: Option<i64>,
}

fn refused(why: impl Into<String>) -> ApiError {
    ApiError::Unauthenticated(why.into())
}

impl Provider {
    /// A provider with `settings`; nothing is fetched until the first token.
    pub fn new(settings: OidcSettings) -> Provider {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("no HTTP client: {e}"));
        Provider {
            settings,
            client,
            keys: RwLock::default(),
            fetching: Mutex::new(()),
        }
    }

    /// Whether `alg` is one this provider's tokens may be signed with.
    pub fn signs_with(alg: Algorithm) -> bool {
        matches!(alg, Algorithm::RS256 | Algorithm::ES256)
    }

    /// The e-mail and issue time of a valid token of the provider.
    pub async fn verify(&self, token: &str) -> Result<Verified, ApiError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| refused("the token is malformed"))?;
        if !Provider::signs_with(header.alg) {
            return Err(refused(
                "the token is signed with an algorithm not accepted here (RS256 or ES256)",
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| refused("the token does not name its signing key (kid)"))?;
        let (alg, key) = self.key(&kid).await?;
        if alg != header.alg {
            return Err(refused(
                "the token's algorithm does not match its signing key",
            ));
        }
        let mut validation = Validation::new(alg);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.leeway = LEEWAY;
        let claims = jsonwebtoken::decode::<ProviderClaims>(token, &key, &validation)
            .map_err(|e| refused(refusal(&e)))?
            .claims;
        // The e-mail names a directory user (an admin, perhaps): it counts only when the
        // provider says it verified it. A provider that leaves the claim out may let a user
        // set any address.
        let verified = match &claims.email_verified {
            Some(serde_json::Value::Bool(verified)) => *verified,
            Some(serde_json::Value::String(text)) => text.eq_ignore_ascii_case("true"),
            _ => false,
        };
        if !verified {
            return Err(refused(
                "the identity provider has not verified the token's e-mail (email_verified is \
                 not true)",
            ));
        }
        let email = claims
            .email
            .filter(|email| !email.trim().is_empty())
            .ok_or_else(|| refused("the token has no email claim to find its user by"))?;
        let issued_at = claims
            .iat
            .ok_or_else(|| refused("the token has no iat claim (when it was issued)"))?;
        Ok(Verified {
            email: email.trim().to_owned(),
            issued_at,
        })
    }

    /// The key `kid`, fetching the key set when it does not hold it or is stale (see the
    /// module's documentation).
    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), ApiError> {
        let refresh = self.settings.jwks_refresh;
        {
            let keys = self.keys.read().await;
            if keys.fresh(refresh)
                && let Some(found) = keys.by_kid.get(kid)
            {
                return Ok(found.clone());
            }
        }
        let _fetching = self.fetching.lock().await;
        let due = {
            let keys = self.keys.read().await;
            let found = keys.by_kid.contains_key(kid);
            let may = keys
                .tried
                .is_none_or(|at| at.elapsed() >= self.settings.jwks_min_interval);
            // Another request may have fetched while this one waited.
            may && !(found && keys.fresh(refresh))
        };
        if due {
            let fetched = self.fetch().await;
            let mut keys = self.keys.write().await;
            keys.tried = Some(Instant::now());
            match fetched {
                Ok(by_kid) => {
                    keys.by_kid = by_kid;
                    keys.fetched = keys.tried;
                }
                Err(error) => {
                    tracing::warn!(url = %self.settings.jwks_url, %error,
                        "could not fetch the OpenID Connect provider's keys");
                }
            }
        }
        let keys = self.keys.read().await;
        if let Some(found) = keys.by_kid.get(kid) {
            return Ok(found.clone());
        }
        Err(refused(if keys.fetched.is_none() {
            "the identity provider's keys could not be fetched; try again later".to_owned()
        } else {
            format!(
                "the token is signed with a key (kid {kid:?}) the identity provider does not list"
            )
        }))
    }

    /// The provider's signing keys, by key id. Keys Switchboard cannot use (encryption keys,
    /// other algorithms, no `kid`) are left out.
    async fn fetch(&self) -> Result<HashMap<String, (Algorithm, DecodingKey)>, String> {
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = self
            .client
            .as_ref()
            .map_err(Clone::clone)?
            .get(&self.settings.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
        let mut by_kid = HashMap::new();
        for value in set.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => continue,
            };
            let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(&jwk))
            else {
                continue;
            };
            by_kid.insert(kid, (alg, key));
        }
        Ok(by_kid)
    }
}
