//! Callers and their credentials (security.md S5–S7, first step): bearer tokens, one per
//! municipality, one for operators, one per service that needs a privilege (relay). `kokuho up`
//! writes dev tokens into `<data dir>/credentials/` (`<municipality>.token`, `operator.token`,
//! `relay.token`); a deployment mounts them from a Kubernetes Secret. Servers map a token to
//! its [`Caller`]; the CLI sends the token of the role it acts as.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Municipality(String),
    Operator,
    Relay,
}

impl Caller {
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

    /// The caller's name: its municipality code, `operator` or `relay` (also its token file's stem).
    pub fn name(&self) -> String {
        match self {
            Caller::Municipality(code) => code.clone(),
            Caller::Operator => "operator".into(),
            Caller::Relay => "relay".into(),
        }
    }

    fn from_stem(stem: &str) -> Option<Self> {
        match stem {
            "operator" => Some(Caller::Operator),
            "relay" => Some(Caller::Relay),
            code if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) => {
                Some(Caller::Municipality(code.into()))
            }
            _ => None,
        }
    }
}

/// The metadata key that carries the token.
pub const AUTHORIZATION: &str = "authorization";

/// Tokens and the callers they stand for.
#[derive(Clone, Default)]
pub struct Credentials {
    by_token: BTreeMap<String, Caller>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} callers)", self.by_token.len())
    }
}

fn token_path(dir: &Path, caller: &Caller) -> PathBuf {
    dir.join(format!("{}.token", caller.name()))
}

fn new_token() -> std::io::Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Credentials {
    /// Writes a dev token for every caller that has none in `dir`.
    pub fn ensure(dir: &Path, municipalities: impl IntoIterator<Item = String>) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let callers = municipalities.into_iter().map(Caller::Municipality).chain([Caller::Operator, Caller::Relay]);
        for c in callers {
            let path = token_path(dir, &c);
            if !path.exists() {
                std::fs::write(&path, new_token()?)?;
            }
        }
        Ok(())
    }

    /// Every `*.token` of `dir`.
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let mut by_token = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
            if path.extension().is_some_and(|e| e == "token")
                && let Some(caller) = Caller::from_stem(stem)
            {
                by_token.insert(std::fs::read_to_string(&path)?.trim().to_string(), caller);
            }
        }
        Ok(Self { by_token })
    }

    /// The caller a `Bearer <token>` header value stands for.
    pub fn caller(&self, authorization: Option<&str>) -> Option<&Caller> {
        let token = authorization?.strip_prefix("Bearer ")?;
        self.by_token.get(token.trim())
    }

    /// The caller of a gRPC request, by its `authorization: Bearer <token>`; a request without a
    /// valid credential is refused (and logged).
    pub fn caller_of<T>(&self, request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
        let header = request.metadata().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        self.caller(header).cloned().ok_or_else(|| {
            tracing::warn!("Request without a valid credential refused");
            tonic::Status::unauthenticated("a valid credential is required")
        })
    }

    /// The token file of `caller` in `dir` (for clients).
    pub fn token_of(dir: &Path, caller: &Caller) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(token_path(dir, caller))?.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_callers() {
        let dir = std::env::temp_dir().join(format!("kokuho-cred-{}", std::process::id()));
        Credentials::ensure(&dir, ["131016".to_string()]).unwrap();
        let c = Credentials::load(&dir).unwrap();
        let relay = Credentials::token_of(&dir, &Caller::Relay).unwrap();
        let muni = Credentials::token_of(&dir, &Caller::Municipality("131016".into())).unwrap();
        assert_eq!(c.caller(Some(&format!("Bearer {relay}"))), Some(&Caller::Relay));
        assert_eq!(c.caller(Some(&format!("Bearer {muni}"))), Some(&Caller::Municipality("131016".into())));
        assert_eq!(c.caller(Some("Bearer nonsense")), None);
        assert_eq!(c.caller(None), None);
        assert_ne!(relay, muni);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
