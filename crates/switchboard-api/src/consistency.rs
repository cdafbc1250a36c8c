//! Consistency tokens: signed positions for read-your-writes.
//!
//! A mutation returns the position of its last event as a token. A query (header
//! `Switchboard-Consistency-Token`) or a subscription (`consistencyToken` in `connection_init`)
//! that carries it is answered only once every read model includes that position, or fails with
//! `CONSISTENCY_TIMEOUT` after a bounded wait. The token is signed so that a client cannot make
//! the server wait for a position that does not exist yet.
//!
//! A query's `consistencyToken` is the token of what it reads (the position every read model
//! included when the request began), and every subscription takes a token as `after`: so a
//! client that reads a list and then subscribes is sent every change after what it read, even
//! one made between the query and the subscription.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_store::Position;

use crate::error::ApiError;

/// What a request may read: the position every read model included when it began (see
/// `Query.consistencyToken`). The HTTP handler sets it before executing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadFrom(pub(crate) Position);

/// The HTTP header a query carries its token in.
pub const HEADER: &str = "switchboard-consistency-token";

/// The token version prefix, so the format can change.
const PREFIX: &str = "c1.";

/// Signs and checks tokens. `Debug` never prints the key.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<secret>)")
    }
}

impl TokenKey {
    /// A key derived from the server secret (domain-separated from the JWT signature).
    pub fn new(secret: &[u8]) -> TokenKey {
        let mut mac = mac(secret);
        mac.update(b"switchboard consistency token v1");
        TokenKey(mac.finalize().into_bytes().to_vec())
    }

    /// The token of `position`.
    pub fn sign(&self, position: Position) -> String {
        let mut bytes = position.0.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.tag(position)[..16]);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The position a token was signed for; `field` names where it came from in errors.
    pub fn verify(&self, token: &str, field: &str) -> Result<Position, ApiError> {
        let invalid =
            || ApiError::bad_input(field, "not a consistency token returned by this server");
        let body = token.trim().strip_prefix(PREFIX).ok_or_else(invalid)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| invalid())?;
        if bytes.len() != 24 {
            return Err(invalid());
        }
        let (pos, tag) = bytes.split_at(8);
        let position = Position(u64::from_be_bytes(pos.try_into().map_err(|_| invalid())?));
        let mut mac = mac(&self.0);
        mac.update(&position.0.to_be_bytes());
        mac.verify_truncated_left(tag).map_err(|_| invalid())?;
        Ok(position)
    }

    fn tag(&self, position: Position) -> Vec<u8> {
        let mut mac = mac(&self.0);
        mac.update(&position.0.to_be_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// An HMAC-SHA256 under `key` (domain-separated keys derive from the server secret with it).
pub(crate) fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_with_their_key_and_unaltered() {
        let key = TokenKey::new(b"secret");
        let token = key.sign(Position(42));
        assert_eq!(key.verify(&token, "t").ok(), Some(Position(42)));
        assert!(TokenKey::new(b"other").verify(&token, "t").is_err());
        let forged = key.sign(Position(43)).replace(PREFIX, "");
        let mut bytes = URL_SAFE_NO_PAD.decode(forged).unwrap_or_default();
        bytes[7] = 99;
        assert!(
            key.verify(&format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)), "t")
                .is_err()
        );
        assert!(key.verify("c1.???", "t").is_err());
    }
}
