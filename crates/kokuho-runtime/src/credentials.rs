//! Callers and their credentials (security.md S5–S7): signed tokens. A token is a JWT signed
//! (EdDSA) by the federation's credential issuer and names its holder: role (municipality,
//! operator, relay), municipality code, name (the person, for an operator), when it was issued,
//! when it expires, and an id. Servers hold only the issuer's public key (`issuer.pub`) and a
//! list of revoked token ids (`revoked`): nothing a server holds lets it act as someone else,
//! and each operator has a credential of their own, so the audit says which person.
//!
//! `kokuho up` makes a dev issuer and a token per caller in `<data dir>/credentials/`
//! (`<municipality>.token`, `operator.token`, `relay.token`, `issuer.pub`, and the issuer's key
//! `issuer.key`, which a deployment keeps off the cluster); `kokuho credentials issue` makes one
//! more. The CLI sends the token of the role it acts as.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Municipality(String),
    /// An operator of the federation, by name.
    Operator(String),
    Relay,
}

impl Caller {
    /// The operator role (the dev operator's name: `operator`).
    pub fn operator() -> Self {
        Caller::Operator("operator".into())
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Caller::Operator(_))
    }

    /// Refuses (and logs, security.md S5) `what` unless `allowed` holds for this caller.
    pub fn require(&self, allowed: bool, what: &str) -> Result<(), tonic::Status> {
        if allowed {
            return Ok(());
        }
        tracing::warn!(caller = ?self, what, "Request refused: not the caller's to make");
        Err(tonic::Status::permission_denied(format!("{what} is not allowed for this caller")))
    }

    /// A municipality acting for itself.
    pub fn is_municipality(&self, code: &str) -> bool {
        matches!(self, Caller::Municipality(c) if c == code)
    }

    /// The caller's role name: its municipality code, `operator` or `relay` (also its dev token
    /// file's stem).
    pub fn name(&self) -> String {
        match self {
            Caller::Municipality(code) => code.clone(),
            Caller::Operator(_) => "operator".into(),
            Caller::Relay => "relay".into(),
        }
    }

    /// Who, for the audit: the municipality code, the operator's name, `relay`.
    pub fn who(&self) -> String {
        match self {
            Caller::Operator(name) => name.clone(),
            other => other.name(),
        }
    }

    pub fn role(&self) -> &'static str {
        match self {
            Caller::Municipality(_) => "municipality",
            Caller::Operator(_) => "operator",
            Caller::Relay => "relay",
        }
    }
}

/// The metadata key that carries the token.
pub const AUTHORIZATION: &str = "authorization";

/// The audience every kokuho token names.
const AUDIENCE: &str = "kokuho";

/// What a token says.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Claims {
    /// The holder's name (a person for an operator; the municipality code; `relay`).
    sub: String,
    role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    municipality: String,
    aud: String,
    iat: u64,
    exp: u64,
    jti: String,
}

impl Claims {
    fn caller(&self) -> Option<Caller> {
        match self.role.as_str() {
            "municipality" if self.municipality.len() == 6 && self.municipality.bytes().all(|b| b.is_ascii_digit()) => {
                Some(Caller::Municipality(self.municipality.clone()))
            }
            "operator" if !self.sub.trim().is_empty() => Some(Caller::Operator(self.sub.clone())),
            "relay" => Some(Caller::Relay),
            _ => None,
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The credential issuer: its Ed25519 key (`issuer.key`, PKCS#8), kept by the federation, off
/// the cluster.
pub struct Issuer {
    key: EncodingKey,
    public: Vec<u8>,
}

impl Issuer {
    /// The issuer of `dir`, made (with `issuer.pub` next to it) if there is none.
    pub fn ensure(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("issuer.key");
        if !path.exists() {
            std::fs::create_dir_all(dir)?;
            let pkcs8 =
                ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).map_err(io)?;
            kokuho_crypto::write_private(&path, pkcs8.as_ref())?;
        }
        let issuer = Self::load(dir)?;
        let public = dir.join("issuer.pub");
        if !public.exists() {
            std::fs::write(public, format!("{}\n", hex::encode(&issuer.public)))?;
        }
        Ok(issuer)
    }

    /// The issuer key of `dir`.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let pkcs8 = std::fs::read(dir.join("issuer.key"))?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(io)?;
        let public = ring::signature::KeyPair::public_key(&pair).as_ref().to_vec();
        Ok(Self { key: EncodingKey::from_ed_der(&pkcs8), public })
    }

    /// A token for `caller`, valid for `days`.
    pub fn issue(&self, caller: &Caller, days: u64) -> std::io::Result<String> {
        let iat = now();
        let claims = Claims {
            sub: caller.who(),
            role: caller.role().into(),
            municipality: match caller {
                Caller::Municipality(code) => code.clone(),
                _ => String::new(),
            },
            aud: AUDIENCE.into(),
            iat,
            exp: iat + days * 86_400,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key).map_err(io)
    }
}

/// What a server checks tokens with: the issuer's public keys (`issuer.pub`, one hex key per
/// line: the current issuer and, after a rotation, the previous one until its tokens expire)
/// and the revoked token ids (`revoked`, one per line).
#[derive(Clone, Default)]
pub struct Credentials {
    keys: Vec<DecodingKey>,
    revoked: BTreeSet<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} issuer keys, {} revoked)", self.keys.len(), self.revoked.len())
    }
}

fn token_path(dir: &Path, caller: &Caller) -> PathBuf {
    dir.join(format!("{}.token", caller.name()))
}

/// Dev tokens live ten years (a deployment issues shorter ones).
const DEV_DAYS: u64 = 3_650;

impl Credentials {
    /// The dev set-up of `dir`: an issuer, and a token for every caller that has none.
    pub fn ensure(dir: &Path, municipalities: impl IntoIterator<Item = String>) -> std::io::Result<()> {
        let issuer = Issuer::ensure(dir)?;
        let callers = municipalities.into_iter().map(Caller::Municipality).chain([Caller::operator(), Caller::Relay]);
        for c in callers {
            let path = token_path(dir, &c);
            if !path.exists() {
                std::fs::write(&path, issuer.issue(&c, DEV_DAYS)?)?;
            }
        }
        Ok(())
    }

    /// The issuer's public keys and the revocation list of `dir` (no token, no private key is
    /// read).
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(dir.join("issuer.pub"))?;
        let mut keys = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            keys.push(DecodingKey::from_ed_der(&hex::decode(line).map_err(io)?));
        }
        if keys.is_empty() {
            return Err(io("issuer.pub holds no key"));
        }
        let revoked = match std::fs::read_to_string(dir.join("revoked")) {
            Ok(t) => t.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(e),
        };
        Ok(Self { keys, revoked })
    }

    /// The caller a `Bearer <token>` header value stands for: signed by the issuer, for kokuho,
    /// not expired, not revoked, naming a role.
    pub fn caller(&self, authorization: Option<&str>) -> Option<Caller> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let claims = self.keys.iter().find_map(|k| jsonwebtoken::decode::<Claims>(token, k, &validation).ok())?.claims;
        if self.revoked.contains(&claims.jti) {
            tracing::warn!(token = %claims.jti, "A revoked credential was presented");
            return None;
        }
        claims.caller()
    }

    /// The caller of a gRPC request, by its `authorization: Bearer <token>`; a request without a
    /// valid credential is refused (and logged).
    pub fn caller_of<T>(&self, request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
        let header = request.metadata().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        self.caller(header).ok_or_else(|| {
            tracing::warn!("Request without a valid credential refused");
            tonic::Status::unauthenticated("a valid credential is required")
        })
    }

    /// The dev token file of `caller`'s role in `dir` (for clients).
    pub fn token_of(dir: &Path, caller: &Caller) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(token_path(dir, caller))?.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    /// S5: a token names its caller; servers need only the issuer's public key.
    #[test]
    fn s5_tokens_name_their_callers_and_servers_hold_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        Credentials::ensure(dir.path(), ["131016".to_string()]).unwrap();
        // The server's view: only issuer.pub (no token, no issuer key).
        let server = tempfile::tempdir().unwrap();
        std::fs::copy(dir.path().join("issuer.pub"), server.path().join("issuer.pub")).unwrap();
        let c = Credentials::load(server.path()).unwrap();
        let relay = Credentials::token_of(dir.path(), &Caller::Relay).unwrap();
        let muni = Credentials::token_of(dir.path(), &Caller::Municipality("131016".into())).unwrap();
        assert_eq!(c.caller(Some(&bearer(&relay))), Some(Caller::Relay));
        assert_eq!(c.caller(Some(&bearer(&muni))), Some(Caller::Municipality("131016".into())));
        assert_eq!(c.caller(Some("Bearer nonsense")), None);
        assert_eq!(c.caller(None), None);
        // One credential per operator: the audit names the person.
        let tanaka = Issuer::load(dir.path()).unwrap().issue(&Caller::Operator("tanaka".into()), 1).unwrap();
        assert_eq!(c.caller(Some(&bearer(&tanaka))).map(|c| c.who()), Some("tanaka".to_string()));
    }

    #[test]
    fn s5_forged_changed_expired_and_revoked_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        Credentials::ensure(dir.path(), ["131016".to_string()]).unwrap();
        let c = Credentials::load(dir.path()).unwrap();
        // Another issuer (a server that minted its own tokens).
        let other = tempfile::tempdir().unwrap();
        let forged = Issuer::ensure(other.path()).unwrap().issue(&Caller::Relay, 1).unwrap();
        assert_eq!(c.caller(Some(&bearer(&forged))), None);
        // A real token with its claims changed (municipality → relay).
        let muni = Credentials::token_of(dir.path(), &Caller::Municipality("131016".into())).unwrap();
        let parts: Vec<&str> = muni.split('.').collect();
        let relay_claims = Credentials::token_of(dir.path(), &Caller::Relay).unwrap();
        let changed = format!("{}.{}.{}", parts[0], relay_claims.split('.').nth(1).unwrap(), parts[2]);
        assert_eq!(c.caller(Some(&bearer(&changed))), None);
        // Expired: a token that ended a day ago is refused (jsonwebtoken allows 60 s of leeway,
        // so one ending now still passes).
        let ending_now = Issuer::load(dir.path()).unwrap().issue(&Caller::Relay, 0).unwrap();
        let old = {
            let issuer = Issuer::load(dir.path()).unwrap();
            let claims = Claims {
                sub: "relay".into(),
                role: "relay".into(),
                municipality: String::new(),
                aud: AUDIENCE.into(),
                iat: now() - 172_800,
                exp: now() - 86_400,
                jti: "old".into(),
            };
            jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &issuer.key).unwrap()
        };
        assert_eq!(c.caller(Some(&bearer(&old))), None);
        assert!(c.caller(Some(&bearer(&ending_now))).is_some(), "within the leeway");
        // Revoked by id.
        let relay = Credentials::token_of(dir.path(), &Caller::Relay).unwrap();
        let jti = {
            let mut v = Validation::new(Algorithm::EdDSA);
            v.set_audience(&[AUDIENCE]);
            jsonwebtoken::decode::<Claims>(&relay, &c.keys[0], &v).unwrap().claims.jti
        };
        std::fs::write(dir.path().join("revoked"), format!("{jti}\n")).unwrap();
        assert_eq!(Credentials::load(dir.path()).unwrap().caller(Some(&bearer(&relay))), None);
    }
}
