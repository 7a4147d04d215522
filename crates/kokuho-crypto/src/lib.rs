//! Envelope encryption of 個人番号 (security.md S2) and the key files it uses (S3).
//!
//! Intake seals each 個人番号 with a random data key (XChaCha20-Poly1305; 24-byte nonces made of
//! a random 16-byte prefix per data key and a counter, so no nonce repeats under a key;
//! the record's municipality and 宛名番号 as associated data) and wraps the data key for
//! identity with HPKE (RFC 9180: X25519-HKDF-SHA256, HKDF-SHA256, ChaCha20-Poly1305) under
//! identity's public key. Only the holder of identity's private key can open a number.
//!
//! Keys come from files named in configuration (or mounted from a Kubernetes Secret), never
//! from code: [`generate_key_pair`] writes a new pair, [`PublicKey::load`] and
//! [`PrivateKey::load`] read them. Each key has an id (a hash of the public key), carried with
//! every wrapped data key, so identity can hold old and new keys during a rotation.
//!
//! Architecture invariant: this crate never formats a plain number into an error or a log.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use kokuho_ids::IndividualNumber;
use sha2::{Digest, Sha256};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

const INFO: &[u8] = b"kokuho/v1 individual-number data key";
const PUBLIC_TAG: &str = "kokuho-identity-public-key-v1";
const PRIVATE_TAG: &str = "kokuho-identity-private-key-v1";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key file {path}: {what}")]
    KeyFile { path: String, what: String },
    #[error("no private key with id {0}")]
    UnknownKey(String),
    #[error("sealing failed")]
    Seal,
    #[error("opening failed: wrong key, or the ciphertext or its context was changed")]
    Open,
    #[error("random number generator failed")]
    Random,
}

/// Identity's public key: what intake needs to seal numbers.
#[derive(Clone)]
pub struct PublicKey {
    id: String,
    key: <Kem as hpke::Kem>::PublicKey,
}

/// Identity's private key. `Debug` shows the id only.
pub struct PrivateKey {
    id: String,
    key: <Kem as hpke::Kem>::PrivateKey,
    /// The key's bytes, from which identity derives its storage and index keys (HKDF).
    secret: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.id)
    }
}

fn key_id(public: &[u8]) -> String {
    hex::encode(&Sha256::digest(public)[..8])
}

fn parse_key_file(path: &Path, tag: &str) -> Result<(String, Vec<u8>), CryptoError> {
    let err = |what: &str| CryptoError::KeyFile { path: path.display().to_string(), what: what.to_string() };
    let text = std::fs::read_to_string(path).map_err(|e| err(&e.to_string()))?;
    let mut parts = text.split_whitespace();
    if parts.next() != Some(tag) {
        return Err(err(&format!("not a {tag} file")));
    }
    let id = parts.next().ok_or_else(|| err("no key id"))?.to_string();
    let bytes = B64.decode(parts.next().ok_or_else(|| err("no key"))?).map_err(|_| err("key is not base64"))?;
    Ok((id, bytes))
}

impl PublicKey {
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let (id, bytes) = parse_key_file(path, PUBLIC_TAG)?;
        let key = <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| CryptoError::KeyFile { path: path.display().to_string(), what: "bad public key".into() })?;
        Ok(Self { id, key })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl PrivateKey {
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let (id, bytes) = parse_key_file(path, PRIVATE_TAG)?;
        let key = <Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes)
            .map_err(|_| CryptoError::KeyFile { path: path.display().to_string(), what: "bad private key".into() })?;
        Ok(Self { id, key, secret: bytes })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Writes a new key pair: `<dir>/identity.pub` and `<dir>/identity.key` (mode 0600).
pub fn generate_key_pair(dir: &Path) -> Result<PublicKey, CryptoError> {
    let err = |what: String| CryptoError::KeyFile { path: dir.display().to_string(), what };
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let (private, public) = Kem::gen_keypair();
    let public_bytes = public.to_bytes();
    let id = key_id(&public_bytes);
    let public_text = format!("{PUBLIC_TAG} {id} {}\n", B64.encode(public_bytes));
    let private_text = format!("{PRIVATE_TAG} {id} {}\n", B64.encode(private.to_bytes()));
    std::fs::write(dir.join("identity.pub"), public_text).map_err(|e| err(e.to_string()))?;
    write_private(&dir.join("identity.key"), private_text.as_bytes()).map_err(|e| err(e.to_string()))?;
    Ok(PublicKey { id, key: public })
}

/// Writes a secret (a key, a seed) readable by its owner alone (mode 0600), and syncs it: the
/// one way kokuho writes a secret file (S3).
#[cfg(unix)]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// A data key wrapped for identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub recipient_key_id: String,
    pub encapsulated_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// A sealed 個人番号.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedNumber {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Seals numbers under one fresh data key (one per log message).
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    wrapped: WrappedKey,
    /// Random per data key; with `counter` it makes every nonce under this key unique.
    nonce_prefix: [u8; 16],
    counter: std::sync::atomic::AtomicU64,
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| CryptoError::Random)?;
    Ok(b)
}

impl Sealer {
    pub fn new(recipient: &PublicKey) -> Result<Self, CryptoError> {
        let data_key = random::<32>()?;
        let (encapsulated, wrapped) =
            hpke::single_shot_seal::<HpkeAead, Kdf, Kem>(&OpModeS::Base, &recipient.key, INFO, &data_key, &[])
                .map_err(|_| CryptoError::Seal)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&data_key).map_err(|_| CryptoError::Seal)?;
        let wrapped = WrappedKey {
            recipient_key_id: recipient.id.clone(),
            encapsulated_key: encapsulated.to_bytes().to_vec(),
            ciphertext: wrapped,
        };
        Ok(Self { cipher, wrapped, nonce_prefix: random::<16>()?, counter: std::sync::atomic::AtomicU64::new(0) })
    }

    pub fn wrapped_key(&self) -> &WrappedKey {
        &self.wrapped
    }

    /// Seals one number; `context` (municipality and 宛名番号) must be given again to open it.
    pub fn seal(&self, number: &IndividualNumber, context: &[u8]) -> Result<SealedNumber, CryptoError> {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        nonce[16..].copy_from_slice(&n.to_be_bytes());
        let plain = number.expose();
        let ciphertext = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: &plain, aad: context })
            .map_err(|_| CryptoError::Seal)?;
        Ok(SealedNumber { nonce: nonce.to_vec(), ciphertext })
    }
}

/// Opens numbers sealed under one wrapped data key (identity only).
pub struct Opener {
    cipher: XChaCha20Poly1305,
}

impl Opener {
    /// Unwraps the data key with whichever of `keys` the wrapped key names.
    pub fn new(keys: &[PrivateKey], wrapped: &WrappedKey) -> Result<Self, CryptoError> {
        let key = keys
            .iter()
            .find(|k| k.id == wrapped.recipient_key_id)
            .ok_or_else(|| CryptoError::UnknownKey(wrapped.recipient_key_id.clone()))?;
        let encapped =
            <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.encapsulated_key).map_err(|_| CryptoError::Open)?;
        let data_key = hpke::single_shot_open::<HpkeAead, Kdf, Kem>(
            &OpModeR::Base,
            &key.key,
            &encapped,
            INFO,
            &wrapped.ciphertext,
            &[],
        )
        .map_err(|_| CryptoError::Open)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&data_key).map_err(|_| CryptoError::Open)?;
        Ok(Self { cipher })
    }

    pub fn open(&self, sealed: &SealedNumber, context: &[u8]) -> Result<IndividualNumber, CryptoError> {
        let nonce = XNonce::try_from(sealed.nonce.as_slice()).map_err(|_| CryptoError::Open)?;
        let plain = self
            .cipher
            .decrypt(&nonce, Payload { msg: &sealed.ciphertext, aad: context })
            .map_err(|_| CryptoError::Open)?;
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::Open)?;
        IndividualNumber::parse(text).map_err(|_| CryptoError::Open)
    }
}

mod vault;
pub use vault::{AtRest, Vault};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_with_context() {
        let dir = tempfile::tempdir().unwrap();
        generate_key_pair(dir.path()).unwrap();
        let public = PublicKey::load(&dir.path().join("identity.pub")).unwrap();
        let private = PrivateKey::load(&dir.path().join("identity.key")).unwrap();
        assert_eq!(public.id(), private.id());
        let number = IndividualNumber::parse("123456789018").unwrap();
        let sealer = Sealer::new(&public).unwrap();
        let sealed = sealer.seal(&number, b"131016:100001").unwrap();
        assert!(!sealed.ciphertext.windows(12).any(|w| w == b"123456789018"));
        let opener = Opener::new(&[private], sealer.wrapped_key()).unwrap();
        assert_eq!(opener.open(&sealed, b"131016:100001").unwrap(), number);
        assert!(opener.open(&sealed, b"131016:100002").is_err(), "context is bound");
        let second = sealer.seal(&number, b"131016:100001").unwrap();
        assert_ne!(second.nonce, sealed.nonce, "no nonce repeats under a key");
        assert_ne!(second.ciphertext, sealed.ciphertext);
    }

    #[test]
    fn another_key_cannot_open() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let public_a = generate_key_pair(a.path()).unwrap();
        generate_key_pair(b.path()).unwrap();
        let private_b = PrivateKey::load(&b.path().join("identity.key")).unwrap();
        let sealer = Sealer::new(&public_a).unwrap();
        assert!(matches!(Opener::new(&[private_b], sealer.wrapped_key()), Err(CryptoError::UnknownKey(_))));
    }
}
