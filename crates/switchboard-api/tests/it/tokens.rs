//! Tokens: revocation, OpenID Connect providers' tokens against a key set served by the test
//! itself on a loopback port, and who may introspect the schema.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey as _;
use proto_events::event::Role;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use switchboard_api::ApiSettings;
use switchboard_api::auth::oidc::OidcSettings;
use switchboard_api::state::Introspection;
use uuid::Uuid;

use crate::support::{Reply, SECRET, TestApi};

const VIEWER: &str = "{ viewer { name email } }";

/// Sends `query` with `Authorization: Bearer <token>`.
pub(crate) async fn with_token(api: &TestApi, token: &str, query: &str) -> Reply {
    api.gql_with(
        None,
        &[("authorization", &format!("Bearer {token}"))],
        query,
        json!({}),
    )
    .await
}

fn refused_saying(reply: &Reply, text: &str) {
    assert_eq!(
        reply.error_code(),
        Some("UNAUTHENTICATED"),
        "{:#}",
        reply.body
    );
    assert!(reply.error_says(text), "{text:?}: {:#}", reply.body);
}

/// A token of `user` issued `seconds` from now (iat counts whole seconds).
fn issued_in(api: &TestApi, user: Uuid, seconds: i64) -> String {
    api.state.keys().mint(
        user,
        "someone@acme.test",
        Utc::now() + TimeDelta::seconds(seconds),
        TimeDelta::hours(1),
    )
}

const REVOKE: &str = "mutation($input: RevokeTokensInput!) { revokeTokens(input: $input) {
    userErrors { code } user { name } } }";

/// The admin revokes `user`'s tokens.
async fn admin_revokes(api: &TestApi, user: Uuid) {
    let user_id = switchboard_api::ids::encode(switchboard_api::ids::Kind::User, user).0;
    let reply = api
        .gql(api.admin, REVOKE, json!({"input": {"userId": user_id}}))
        .await;
    assert_eq!(
        reply.data()["revokeTokens"]["userErrors"],
        json!([]),
        "{:#}",
        reply.body
    );
}

#[tokio::test]
async fn a_user_revokes_their_own_tokens_and_an_admin_anyones() {
    let api = TestApi::start().await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let other = api.user("other@acme.test", Role::Agent).await;
    let token = api.token(agent);
    assert_eq!(
        with_token(&api, &token, VIEWER).await.data()["viewer"]["name"],
        "agent"
    );

    let reply = api
        .gql_with(
            None,
            &[("authorization", &format!("Bearer {token}"))],
            REVOKE,
            json!({"input": {}}),
        )
        .await;
    assert_eq!(
        reply.data()["revokeTokens"],
        json!({"userErrors": [], "user": {"name": "agent"}}),
        "{:#}",
        reply.body
    );
    // The token it came with is refused from now on, though it verified before.
    refused_saying(&with_token(&api, &token, VIEWER).await, "revoked");
    assert_eq!(
        with_token(&api, &issued_in(&api, agent, 2), VIEWER)
            .await
            .data()["viewer"]["name"],
        "agent"
    );

    // Another user's tokens: admins only.
    let other_id = switchboard_api::ids::encode(switchboard_api::ids::Kind::User, other).0;
    let reply = api
        .gql_with(
            None,
            &[(
                "authorization",
                &format!("Bearer {}", issued_in(&api, agent, 2)),
            )],
            REVOKE,
            json!({"input": {"userId": other_id}}),
        )
        .await;
    assert_eq!(reply.error_code(), Some("FORBIDDEN"), "{:#}", reply.body);
    let others = api.token(other);
    admin_revokes(&api, other).await;
    refused_saying(&with_token(&api, &others, VIEWER).await, "revoked");
}

// OpenID Connect

/// A signing key of the test's identity provider, and its public half as a JWK.
struct ProviderKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl ProviderKey {
    /// An RSA key (1024 bits: enough for a test, and quick to generate in a debug build).
    fn rsa(kid: &str) -> ProviderKey {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("RSA key");
        let der = key.to_pkcs1_der().expect("PKCS#1");
        ProviderKey {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            jwk: json!({
                "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()),
            }),
        }
    }

    /// A P-256 key.
    fn ec(kid: &str) -> ProviderKey {
        let key = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let der = key.to_pkcs8_der().expect("PKCS#8");
        let point =
            p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
        ProviderKey {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            jwk: json!({
                "kty": "EC", "use": "sig", "crv": "P-256", "kid": kid,
                "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
            }),
        }
    }

    /// A token signed with this key, with `claims`.
    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signs")
    }
}

const ISSUER: &str = "https://login.acme.test/";
const AUDIENCE: &str = "switchboard-client";

/// What a provider's ID token says, valid for an hour from now.
fn claims(email: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "provider-user-1", "email": email,
        "email_verified": true, "iat": now, "exp": now + 3_600})
}

/// The test's identity provider: a key set served over HTTP on a loopback port, which the test
/// can change, counting the fetches.
#[derive(Clone, Default)]
struct KeySetServer {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl KeySetServer {
    async fn start(keys: &[&ProviderKey]) -> (KeySetServer, String) {
        let server = KeySetServer::default();
        server.publish(keys);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let router = axum::Router::new()
            .route("/keys", get(serve_keys))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (server, format!("http://{addr}/keys"))
    }

    fn publish(&self, keys: &[&ProviderKey]) {
        *self.keys.lock().expect("lock") = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn serve_keys(State(server): State<KeySetServer>) -> axum::Json<Value> {
    server.fetches.fetch_add(1, Ordering::SeqCst);
    let keys = server.keys.lock().expect("lock").clone();
    axum::Json(json!({"keys": keys}))
}

/// An API accepting the provider at `jwks_url`.
async fn api_with_provider(jwks_url: String, min_interval: Duration) -> TestApi {
    TestApi::with_settings(ApiSettings {
        oidc: Some(OidcSettings {
            issuer: ISSUER.to_owned(),
            audience: AUDIENCE.to_owned(),
            jwks_url,
            jwks_refresh: Duration::from_secs(3_600),
            jwks_min_interval: min_interval,
        }),
        ..ApiSettings::new(SECRET)
    })
    .await
}

#[tokio::test]
async fn provider_tokens_signed_with_rs256_or_es256_name_a_user_by_email() {
    let rsa = ProviderKey::rsa("rsa-1");
    let ec = ProviderKey::ec("ec-1");
    let (server, url) = KeySetServer::start(&[&rsa, &ec]).await;
    let api = api_with_provider(url, Duration::from_secs(3_600)).await;
    api.user("agent@acme.test", Role::Agent).await;

    for key in [&rsa, &ec] {
        let reply = with_token(&api, &key.sign(&claims("Agent@Acme.test")), VIEWER).await;
        assert_eq!(
            reply.data()["viewer"],
            json!({"name": "agent", "email": "agent@acme.test"}),
            "{:?}: {:#}",
            key.alg,
            reply.body
        );
    }
    assert_eq!(server.fetches(), 1, "the key set is fetched once and kept");
    // Switchboard's own tokens keep working beside the provider's.
    assert_eq!(
        with_token(&api, &api.token(api.admin), VIEWER).await.data()["viewer"]["name"],
        "Ada Admin"
    );

    let mut wrong_issuer = claims("agent@acme.test");
    wrong_issuer["iss"] = json!("https://evil.test/");
    refused_saying(
        &with_token(&api, &rsa.sign(&wrong_issuer), VIEWER).await,
        "issuer",
    );
    let mut wrong_audience = claims("agent@acme.test");
    wrong_audience["aud"] = json!("another-app");
    refused_saying(
        &with_token(&api, &ec.sign(&wrong_audience), VIEWER).await,
        "(aud)",
    );
    let mut expired = claims("agent@acme.test");
    expired["exp"] = json!(Utc::now().timestamp() - 3_600);
    refused_saying(
        &with_token(&api, &rsa.sign(&expired), VIEWER).await,
        "expired",
    );
    refused_saying(
        &with_token(&api, &rsa.sign(&claims("nobody@acme.test")), VIEWER).await,
        "no user with e-mail nobody@acme.test",
    );
    let mut unverified = claims("agent@acme.test");
    unverified["email_verified"] = json!(false);
    refused_saying(
        &with_token(&api, &ec.sign(&unverified), VIEWER).await,
        "email_verified",
    );
    // A provider that does not say it verified the address is not taken at its word either.
    unverified
        .as_object_mut()
        .expect("object")
        .remove("email_verified");
    refused_saying(
        &with_token(&api, &ec.sign(&unverified), VIEWER).await,
        "email_verified",
    );
    let mut no_iat = claims("agent@acme.test");
    no_iat.as_object_mut().expect("object").remove("iat");
    refused_saying(&with_token(&api, &ec.sign(&no_iat), VIEWER).await, "iat");
    // Signed by a key the provider does not list (same kid, other key): the signature fails.
    let impostor = ProviderKey::rsa("rsa-1");
    refused_saying(
        &with_token(&api, &impostor.sign(&claims("agent@acme.test")), VIEWER).await,
        "signature",
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_unknown_keys_fetch_at_most_once_per_interval() {
    let old = ProviderKey::rsa("2024");
    let new = ProviderKey::ec("2025");
    let (server, url) = KeySetServer::start(&[&old]).await;
    let eager = api_with_provider(url.clone(), Duration::ZERO).await;
    let patient = api_with_provider(url, Duration::from_secs(3_600)).await;
    for api in [&eager, &patient] {
        api.user("agent@acme.test", Role::Agent).await;
        let reply = with_token(api, &old.sign(&claims("agent@acme.test")), VIEWER).await;
        assert_eq!(reply.data()["viewer"]["name"], "agent", "{:#}", reply.body);
    }
    assert_eq!(server.fetches(), 2);

    // The provider rotates: a token with the new key id makes the key set be fetched again.
    server.publish(&[&old, &new]);
    let token = new.sign(&claims("agent@acme.test"));
    let reply = with_token(&eager, &token, VIEWER).await;
    assert_eq!(reply.data()["viewer"]["name"], "agent", "{:#}", reply.body);
    assert_eq!(server.fetches(), 3);
    // A server that fetched within its interval does not fetch again for an unknown key: the
    // token is refused until the interval has passed.
    for _ in 0..5 {
        refused_saying(&with_token(&patient, &token, VIEWER).await, "does not list");
    }
    assert_eq!(server.fetches(), 3, "rate limited");
    // Without an interval, every unknown key id fetches again.
    let stranger = ProviderKey::ec("made-up");
    refused_saying(
        &with_token(&eager, &stranger.sign(&claims("agent@acme.test")), VIEWER).await,
        "does not list",
    );
    assert_eq!(server.fetches(), 4);
}

#[tokio::test]
async fn a_revocation_refuses_provider_tokens_issued_before_it() {
    let key = ProviderKey::ec("k");
    let (_server, url) = KeySetServer::start(&[&key]).await;
    let api = api_with_provider(url, Duration::from_secs(3_600)).await;
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let mut earlier = claims("agent@acme.test");
    earlier["iat"] = json!(Utc::now().timestamp() - 60);
    let token = key.sign(&earlier);
    assert_eq!(
        with_token(&api, &token, VIEWER).await.data()["viewer"]["name"],
        "agent"
    );
    admin_revokes(&api, agent).await;
    refused_saying(&with_token(&api, &token, VIEWER).await, "revoked");
}

#[tokio::test]
async fn a_provider_token_without_a_configured_provider_is_refused_clearly() {
    let api = TestApi::start().await;
    let key = ProviderKey::ec("k");
    refused_saying(
        &with_token(&api, &key.sign(&claims("admin@acme.test")), VIEWER).await,
        "no OpenID Connect provider is configured",
    );
}

// Introspection

const INTROSPECT: &str = "{ __schema { queryType { name } } }";

async fn introspect(api: &TestApi, token: Option<&str>) -> Reply {
    match token {
        Some(token) => with_token(api, token, INTROSPECT).await,
        None => api.gql_with(None, &[], INTROSPECT, json!({})).await,
    }
}

fn answered(reply: &Reply) {
    assert_eq!(
        reply.data()["__schema"]["queryType"]["name"],
        "Query",
        "{:#}",
        reply.body
    );
}

#[tokio::test]
async fn introspection_needs_a_valid_token_by_default() {
    let api = TestApi::start().await;
    let reply = introspect(&api, None).await;
    refused_saying(&reply, "introspection needs a token");
    assert!(reply.body["data"].is_null(), "{:#}", reply.body);
    answered(&introspect(&api, Some(&api.token(api.admin))).await);
    refused_saying(&introspect(&api, Some("not-a-token")).await, "malformed");
    // `__typename` is not introspection of the schema.
    let typename = api.gql_with(None, &[], "{ __typename }", json!({})).await;
    assert_eq!(
        typename.data()["__typename"],
        "Query",
        "{:#}",
        typename.body
    );
    // A revoked token does not introspect either.
    let agent = api.user("agent@acme.test", Role::Agent).await;
    let token = api.token(agent);
    api.gql_with(
        None,
        &[("authorization", &format!("Bearer {token}"))],
        REVOKE,
        json!({"input": {}}),
    )
    .await;
    refused_saying(&introspect(&api, Some(&token)).await, "revoked");
}

#[tokio::test]
async fn introspection_may_be_public_or_off() {
    let with = |introspection| {
        TestApi::with_settings(ApiSettings {
            introspection,
            ..ApiSettings::new(SECRET)
        })
    };
    let public = with(Introspection::Public).await;
    answered(&introspect(&public, None).await);
    let off = with(Introspection::Off).await;
    for token in [None, Some(off.token(off.admin))] {
        let reply = introspect(&off, token.as_deref()).await;
        assert_eq!(reply.error_code(), Some("FORBIDDEN"), "{:#}", reply.body);
        assert!(reply.error_says("introspection is turned off"));
    }
    // The rest of the API does not change.
    let reply = with_token(&off, &off.token(off.admin), VIEWER).await;
    assert_eq!(reply.data()["viewer"]["name"], "Ada Admin");
}
