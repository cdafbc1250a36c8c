//! Secrets beside the log: channel passwords and ingest secrets, sealed with a master key.
//!
//! A secret never enters the log, a read model or a log line. Events refer to a secret by a
//! [`SecretId`] that is fresh for every value, so the value an event names is the value it was
//! set with: a new password is sealed under a new id *before* the event that names it is
//! appended, and a command refused after that leaves only an unreferenced row behind. Each
//! backend keeps the sealed bytes where it keeps its log ([`SecretStore`]): a SQLite file of its
//! own on the embedded store (synced at every commit), a table on PostgreSQL.
//!
//! [`Vault`] seals and opens them with XChaCha20-Poly1305 under a 256-bit master key that comes
//! from the configuration and is never stored with them: a copy of the database alone does not
//! reveal a password. The secret's name is the associated data, so sealed bytes moved under
//! another name do not open. Sealed form: `sb1` (format and version), a random 24-byte nonce,
//! then the ciphertext with its 16-byte tag.
//!
//! The same [`SecretStore`] also keeps a few records in the clear that hold ids and positions,
//! no personal data, and must be readable without the key: which data subjects were erased
//! (`switchboard-codec`'s keyring) and when sealing began and what was written in the clear
//! before (`switchboard-codec`'s `plaintext`).

use std::fmt::{self, Debug};
use std::sync::Arc;

use async_trait::async_trait;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// Sealed secrets by name.
#[async_trait]
pub trait SecretStore: Send + Sync + Debug {
    /// Stores `sealed` under `name`, replacing what was there. Returns once it is durable.
    async fn put(&self, name: &str, sealed: Vec<u8>) -> Result<(), StoreError>;

    /// What is stored under `name`, if anything.
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// What is stored under each of `names`, in their order: one round trip where the backend
    /// can (a rebuild reads a key per data subject, thousands per page of events).
    async fn get_many(&self, names: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            found.push(self.get(name).await?);
        }
        Ok(found)
    }

    /// Removes `name`; true when something was there. Its bytes do not linger in the backend's
    /// free space or journal (a destroyed key must stay destroyed).
    async fn delete(&self, name: &str) -> Result<bool, StoreError>;

    /// Stores `sealed` under `name` unless something is there already, and returns what is
    /// stored once it is durable: `sealed`, or the value of whoever stored first (two nodes
    /// creating the same data subject's key agree on one).
    async fn put_if_absent(&self, name: &str, sealed: Vec<u8>) -> Result<Vec<u8>, StoreError>;
}

/// The id of one secret value, as events name it. Printing it prints no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretId(pub Uuid);

impl SecretId {
    /// A fresh id (time-ordered).
    pub fn new() -> SecretId {
        SecretId(Uuid::now_v7())
    }

    /// Its name in the [`SecretStore`].
    pub fn name(self) -> String {
        format!("secret-{}", self.0)
    }
}

impl Default for SecretId {
    fn default() -> SecretId {
        SecretId::new()
    }
}

/// The length of a master key, in bytes.
pub const KEY_BYTES: usize = 32;

/// The master key secrets are sealed with. Its `Debug` never prints it.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_BYTES]);

impl MasterKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> MasterKey {
        MasterKey(bytes)
    }

    /// A key from 64 hexadecimal digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<MasterKey, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| "must be 64 hexadecimal digits (32 bytes)".to_owned())?;
        let bytes: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| "must be 64 hexadecimal digits (32 bytes)".to_owned())?;
        Ok(MasterKey(bytes))
    }

    /// A new random key.
    pub fn generate() -> MasterKey {
        MasterKey(rand::random())
    }

    /// A key for another purpose, derived from this one: SHA-256 over a fixed prefix,
    /// `purpose` and the key, so keys of different purposes are unrelated and none reveals the
    /// master key (the chat widget's visitor tokens are signed with one).
    pub fn derive(&self, purpose: &str) -> [u8; KEY_BYTES] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"switchboard derived key v1\0");
        hash.update(purpose.as_bytes());
        hash.update(b"\0");
        hash.update(self.0);
        hash.finalize().into()
    }

    /// The key as 64 hexadecimal digits: only for writing it to its file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A secret's value in memory. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> SecretValue {
        SecretValue(value.into())
    }

    /// The value itself: only for the code that logs in or compares with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// The name of the value [`Vault::check_key`] seals.
pub const KEY_CHECK: &str = "key-check";

/// The format tag at the start of every sealed secret.
const FORMAT: &[u8; 3] = b"sb1";
const NONCE_BYTES: usize = 24;

/// The purpose the reservation names' key is derived for ([`MasterKey::derive`]).
const NAME_KEY_PURPOSE: &str = "reservation stream names v1";

/// Seals secrets into a [`SecretStore`] and opens them again.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn SecretStore>,
    cipher: Arc<XChaCha20Poly1305>,
    /// Derived from the master key for naming customers' reservation streams
    /// ([`Vault::name_key`]).
    name_key: [u8; KEY_BYTES],
}

impl Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").field("store", &self.store).finish()
    }
}

impl Vault {
    /// A vault over `store`, sealing with `key`.
    pub fn new(store: Arc<dyn SecretStore>, key: &MasterKey) -> Vault {
        Vault {
            store,
            cipher: Arc::new(XChaCha20Poly1305::new((&key.0).into())),
            name_key: key.derive(NAME_KEY_PURPOSE),
        }
    }

    /// The key that names customers' reservation streams (`proto_events::streams::NameKey`),
    /// derived from the master key: the same on every node of one store.
    pub fn name_key(&self) -> [u8; KEY_BYTES] {
        self.name_key
    }

    /// Seals `value` under a fresh id and stores it; returns the id once it is durable.
    pub async fn put(&self, value: &SecretValue) -> Result<SecretId, StoreError> {
        let id = SecretId::new();
        let name = id.name();
        let sealed = self.seal(&name, value.expose().as_bytes())?;
        self.store.put(&name, sealed).await?;
        Ok(id)
    }

    /// The value stored under `id`: `None` if there is none. A value that does not open (another
    /// master key, tampered bytes) is an error that names the secret, never its bytes.
    pub async fn get(&self, id: SecretId) -> Result<Option<SecretValue>, StoreError> {
        let name = id.name();
        let Some(sealed) = self.store.get(&name).await? else {
            return Ok(None);
        };
        let plain = self.open(&name, &sealed)?;
        String::from_utf8(plain)
            .map(|text| Some(SecretValue(text)))
            .map_err(|_| StoreError::Unsealable { name })
    }

    /// Removes the value stored under `id` (a replaced or removed password).
    pub async fn delete(&self, id: SecretId) -> Result<bool, StoreError> {
        self.store.delete(&id.name()).await
    }

    /// The bytes sealed under `name`, sealing and storing `value` there first when there is
    /// nothing (whoever stores first wins: see [`SecretStore::put_if_absent`]). For values named
    /// by what they belong to, such as a data subject's key (`subject-<id>`), rather than by a
    /// fresh [`SecretId`].
    pub async fn get_or_insert(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let sealed = self.seal(name, value)?;
        let stored = self.store.put_if_absent(name, sealed).await?;
        self.open(name, &stored)
    }

    /// Seals `value` and stores it under `name`, replacing what was there, once it is durable.
    pub async fn put_named(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let sealed = self.seal(name, value)?;
        self.store.put(name, sealed).await
    }

    /// The bytes sealed under `name`, if any (see [`Vault::get_or_insert`]).
    pub async fn get_named(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.store.get(name).await? {
            Some(sealed) => self.open(name, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// The bytes sealed under each of `names`, in their order ([`SecretStore::get_many`]).
    pub async fn get_named_many(
        &self,
        names: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let sealed = self.store.get_many(names).await?;
        names
            .iter()
            .zip(sealed)
            .map(|(name, sealed)| sealed.map(|sealed| self.open(name, &sealed)).transpose())
            .collect()
    }

    /// The store the vault seals into (its names are readable without the key).
    pub fn store(&self) -> &Arc<dyn SecretStore> {
        &self.store
    }

    /// Removes what is stored under `name`; true when something was there.
    pub async fn delete_named(&self, name: &str) -> Result<bool, StoreError> {
        self.store.delete(name).await
    }

    /// Checks that this vault's key is the one the store's secrets were sealed with: the first
    /// call seals a check value under [`KEY_CHECK`], later ones open it. A server refuses to
    /// start on [`StoreError::Unsealable`] (another node's key, a lost or changed key), rather
    /// than fail on every password later.
    pub async fn check_key(&self) -> Result<(), StoreError> {
        let sealed = match self.store.get(KEY_CHECK).await? {
            Some(sealed) => sealed,
            // Two nodes starting at once on a new store with different keys: the first check
            // stored wins, and the other node's key fails it (with `put`, each would have
            // passed, and named customers' reservations differently).
            None => {
                let sealed = self.seal(KEY_CHECK, KEY_CHECK.as_bytes())?;
                self.store.put_if_absent(KEY_CHECK, sealed).await?
            }
        };
        self.open(KEY_CHECK, &sealed).map(|_| ())
    }

    fn seal(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Unsealable {
                name: name.to_owned(),
            })?;
        let mut out = Vec::with_capacity(FORMAT.len() + NONCE_BYTES + sealed.len());
        out.extend_from_slice(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let unopenable = || StoreError::Unsealable {
            name: name.to_owned(),
        };
        let rest = sealed
            .strip_prefix(FORMAT.as_slice())
            .ok_or_else(unopenable)?;
        if rest.len() < NONCE_BYTES {
            return Err(unopenable());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| unopenable())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// The map a backend would keep, in memory: enough to test sealing, not a backend.
    #[derive(Debug, Default)]
    struct Rows(Mutex<HashMap<String, Vec<u8>>>);

    #[async_trait]
    impl SecretStore for Rows {
        async fn put(&self, name: &str, sealed: Vec<u8>) -> Result<(), StoreError> {
            self.0.lock().unwrap().insert(name.to_owned(), sealed);
            Ok(())
        }
        async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.lock().unwrap().get(name).cloned())
        }
        async fn delete(&self, name: &str) -> Result<bool, StoreError> {
            Ok(self.0.lock().unwrap().remove(name).is_some())
        }
        async fn put_if_absent(&self, name: &str, sealed: Vec<u8>) -> Result<Vec<u8>, StoreError> {
            let mut rows = self.0.lock().unwrap();
            Ok(rows.entry(name.to_owned()).or_insert(sealed).clone())
        }
    }

    /// [`Rows`] whose reads never see a row: two nodes reading before either wrote.
    #[derive(Debug, Default)]
    struct Unseen(Rows);

    #[async_trait]
    impl SecretStore for Unseen {
        async fn put(&self, name: &str, sealed: Vec<u8>) -> Result<(), StoreError> {
            self.0.put(name, sealed).await
        }
        async fn get(&self, _name: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        async fn delete(&self, name: &str) -> Result<bool, StoreError> {
            self.0.delete(name).await
        }
        async fn put_if_absent(&self, name: &str, sealed: Vec<u8>) -> Result<Vec<u8>, StoreError> {
            self.0.put_if_absent(name, sealed).await
        }
    }

    #[tokio::test]
    async fn of_two_keys_checked_at_once_on_a_new_store_only_the_first_passes() {
        let rows: Arc<dyn SecretStore> = Arc::new(Unseen::default());
        let first = Vault::new(rows.clone(), &MasterKey::generate());
        let second = Vault::new(rows, &MasterKey::generate());
        first.check_key().await.unwrap();
        first.check_key().await.unwrap();
        assert!(matches!(
            second.check_key().await,
            Err(StoreError::Unsealable { .. })
        ));
    }

    #[tokio::test]
    async fn sealed_secrets_open_with_their_key_and_name_only() {
        let rows = Arc::new(Rows::default());
        let key = MasterKey::generate();
        let vault = Vault::new(rows.clone(), &key);
        let id = vault.put(&SecretValue::new("hunter2-imap")).await.unwrap();
        let sealed = rows.0.lock().unwrap()[&id.name()].clone();
        assert!(
            !sealed.windows(7).any(|w| w == b"hunter2"),
            "the plain text is stored"
        );
        assert_eq!(
            vault.get(id).await.unwrap().unwrap().expose(),
            "hunter2-imap"
        );
        // The same value twice: different nonces, different bytes.
        let again = vault.put(&SecretValue::new("hunter2-imap")).await.unwrap();
        assert_ne!(rows.0.lock().unwrap()[&again.name()], sealed);

        // Another key does not open it, and the error names the secret, not its bytes.
        let other = Vault::new(rows.clone(), &MasterKey::generate());
        let error = other.get(id).await.unwrap_err().to_string();
        assert!(
            error.contains(&id.name()) && !error.contains("hunter2"),
            "{error}"
        );
        // Moved under another name, it does not open either.
        let moved = SecretId::new();
        rows.0.lock().unwrap().insert(moved.name(), sealed.clone());
        assert!(vault.get(moved).await.is_err());
        // A flipped bit does not open.
        let mut damaged = sealed;
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        rows.0.lock().unwrap().insert(id.name(), damaged);
        assert!(vault.get(id).await.is_err());

        assert!(vault.delete(again).await.unwrap());
        assert_eq!(vault.get(again).await.unwrap(), None);

        // The key check: set by the first vault, passed by the same key, failed by another.
        vault.check_key().await.unwrap();
        vault.check_key().await.unwrap();
        assert!(matches!(
            other.check_key().await,
            Err(StoreError::Unsealable { .. })
        ));
    }

    #[test]
    fn master_keys_are_64_hex_digits_and_never_printed() {
        let key = MasterKey::generate();
        let text = key.to_hex();
        assert_eq!(MasterKey::from_hex(&format!(" {text}\n")).unwrap().0, key.0);
        assert!(!format!("{key:?}").contains(&text[..8]));
        for bad in ["", "00", &"zz".repeat(32), &"00".repeat(33)] {
            assert!(MasterKey::from_hex(bad).is_err(), "{bad:?}");
        }
    }
}
