//! identity's keys in use (security.md S2, S3): opening intake's envelopes, storing numbers
//! encrypted at rest, and the keyed-hash (HMAC) index that finds a person by 個人番号.
//!
//! Every secret derives from identity's private keys with HKDF-SHA256 and a purpose label, so a
//! rotation is one new key file: the newest key is current (new numbers are stored and indexed
//! under it), older keys still open what was sealed under them. The index lives only in
//! identity's projection and is rebuilt from the log under the current key after a rotation.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac;
use kokuho_ids::IndividualNumber;
use sha2::Sha256;

use crate::{CryptoError, Opener, PrivateKey, WrappedKey, random};

const STORAGE_LABEL: &[u8] = b"kokuho/v1 identity storage key";
const INDEX_LABEL: &[u8] = b"kokuho/v1 identity index key";

/// A number encrypted at rest, with the id of the key it was sealed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRest {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

struct Derived {
    id: String,
    storage: XChaCha20Poly1305,
    index: [u8; 32],
}

/// identity's keys: the first is current.
pub struct Vault {
    private: Vec<PrivateKey>,
    derived: Vec<Derived>,
    /// Nonces at rest: a random prefix per process and a counter, so none repeats under a key.
    nonce_prefix: [u8; 16],
    counter: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.derived.iter().map(|d| &d.id)).finish()
    }
}

fn derive(secret: &[u8], label: &[u8]) -> Result<[u8; 32], CryptoError> {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, secret).expand(label, &mut out).map_err(|_| CryptoError::Seal)?;
    Ok(out)
}

impl Vault {
    /// `keys`: the current key first, then older ones still needed to read old data.
    pub fn new(keys: Vec<PrivateKey>) -> Result<Self, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::UnknownKey("none given".into()));
        }
        let derived = keys
            .iter()
            .map(|k| {
                Ok(Derived {
                    id: k.id.clone(),
                    storage: XChaCha20Poly1305::new_from_slice(&derive(&k.secret, STORAGE_LABEL)?)
                        .map_err(|_| CryptoError::Seal)?,
                    index: derive(&k.secret, INDEX_LABEL)?,
                })
            })
            .collect::<Result<_, CryptoError>>()?;
        Ok(Self {
            private: keys,
            derived,
            nonce_prefix: random::<16>()?,
            counter: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Loads every `*.key` file of `dir`; the one named `identity.key` is current.
    pub fn load(dir: &std::path::Path) -> Result<Self, CryptoError> {
        let err = |what: String| CryptoError::KeyFile { path: dir.display().to_string(), what };
        let mut keys = Vec::new();
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "key"))
            .collect();
        // identity.key first, then the others newest name last (they are kept for reading).
        names.sort_by_key(|p| (p.file_name().is_none_or(|n| n != "identity.key"), p.clone()));
        for p in names {
            keys.push(PrivateKey::load(&p)?);
        }
        Self::new(keys)
    }

    /// The keyed hash of a number as stored with a person: the hash and the id of its key. A
    /// reader with another current key recomputes it from the sealed number.
    pub fn index_with_id(&self, number: &IndividualNumber) -> ([u8; 32], &str) {
        (self.index(number), self.current_id())
    }

    /// The id of the current key (it names the index: a new current key means a new index).
    pub fn current_id(&self) -> &str {
        &self.derived[0].id
    }

    /// Opens a data key intake wrapped for identity.
    pub fn opener(&self, wrapped: &WrappedKey) -> Result<Opener, CryptoError> {
        Opener::new(&self.private, wrapped)
    }

    /// The keyed hash of a number under the current index key.
    pub fn index(&self, number: &IndividualNumber) -> [u8; 32] {
        let mut mac = <hmac::Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.derived[0].index)
            .expect("HMAC takes any key length");
        mac.update(&number.expose());
        mac.finalize().into_bytes().into()
    }

    /// Seals a number for storage, bound to `context` (e.g. the person's ID).
    pub fn seal_at_rest(&self, number: &IndividualNumber, context: &[u8]) -> Result<AtRest, CryptoError> {
        let current = &self.derived[0];
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        nonce[16..].copy_from_slice(&n.to_be_bytes());
        let ciphertext = current
            .storage
            .encrypt(&XNonce::from(nonce), Payload { msg: &number.expose(), aad: context })
            .map_err(|_| CryptoError::Seal)?;
        Ok(AtRest { key_id: current.id.clone(), nonce: nonce.to_vec(), ciphertext })
    }

    pub fn open_at_rest(&self, sealed: &AtRest, context: &[u8]) -> Result<IndividualNumber, CryptoError> {
        let key = self
            .derived
            .iter()
            .find(|d| d.id == sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        let nonce = XNonce::try_from(sealed.nonce.as_slice()).map_err(|_| CryptoError::Open)?;
        let plain = key
            .storage
            .decrypt(&nonce, Payload { msg: &sealed.ciphertext, aad: context })
            .map_err(|_| CryptoError::Open)?;
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::Open)?;
        IndividualNumber::parse(text).map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate_key_pair;

    #[test]
    fn rotation_keeps_old_data_readable_and_moves_the_index() {
        let old_dir = tempfile::tempdir().unwrap();
        generate_key_pair(old_dir.path()).unwrap();
        let old = Vault::load(old_dir.path()).unwrap();
        let n = IndividualNumber::parse("123456789018").unwrap();
        let stored = old.seal_at_rest(&n, b"pref:1").unwrap();
        assert!(!stored.ciphertext.windows(12).any(|w| w == b"123456789018"));
        let old_index = old.index(&n);
        assert_eq!(old_index, old.index(&n), "deterministic");

        // Rotate: a new identity.key, the old one kept under another name.
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(old_dir.path().join("identity.key"), dir.path().join("identity-old.key")).unwrap();
        generate_key_pair(dir.path()).unwrap();
        let rotated = Vault::load(dir.path()).unwrap();
        assert_ne!(rotated.current_id(), old.current_id());
        assert_eq!(rotated.open_at_rest(&stored, b"pref:1").unwrap(), n, "old data stays readable");
        assert!(rotated.open_at_rest(&stored, b"pref:2").is_err(), "bound to its context");
        assert_ne!(rotated.index(&n), old_index, "the index moves to the new key");
        let fresh = rotated.seal_at_rest(&n, b"pref:1").unwrap();
        assert_eq!(fresh.key_id, rotated.current_id());
    }
}
