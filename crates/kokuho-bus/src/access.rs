//! Who may do what on NATS (security.md S7): one user per service, each with an nkey and allow
//! lists for exactly its own subjects and the JetStream API of the streams it reads, and an
//! admin user for the operator tooling that creates streams. Nothing else may create, update,
//! purge or delete a stream, or read a message of a stream it does not read.
//!
//! The permissions are derived from what each service declares ([`Access`]): a new service
//! declares its streams and the streams it reads, and gets its user from that.
//!
//! How the JetStream API is fenced (the API subjects carry the stream name, so allow lists per
//! stream are exact):
//! - publish to a stream: its subjects (only the owner, plus the few shared subjects a service
//!   appends to: its results rows, its own audit subject, its own dead letters);
//! - read a stream: create, fetch from, ack and delete consumers on it, and get its messages
//!   directly (`DIRECT.GET`, `STREAM.MSG.GET`): only for the streams the service reads whole;
//! - read one subject of a stream ([`SubjectRead`]: identity's public events, not the numbers
//!   beside them): create its named consumers with that subject as their filter (the filter is
//!   part of the API subject), pull from, ack and delete those consumers only, and get the
//!   subject's last message; no get by sequence;
//! - the last message of one subject (`DIRECT.GET.<stream>.<subject>`): a service's own audit
//!   chain head, without reading the audit stream;
//! - metadata (account info, stream names and info, consumer lists): everyone, for progress and
//!   waits; it holds no personal data;
//! - replies: each user's own inbox prefix (`_INBOX_<user>`), so no one reads another's answers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{BusError, BusErrorKind, StreamDef};

/// The JetStream API prefix.
const API: &str = "$JS.API";

/// The name of the admin user (stream creation and operator tooling).
pub const ADMIN: &str = "admin";

/// The name of the auditor user: reads every stream and writes none (`kokuho replay`).
pub const AUDITOR: &str = "auditor";

/// What a service does on NATS, declared next to the service.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// The streams the service writes: it alone publishes their subjects, and reads them whole.
    pub owns: &'static [StreamDef],
    /// The streams of others it reads whole (its projections and workflows).
    pub reads: &'static [&'static str],
    /// One subject of another's stream, read by named consumers (where the stream's other
    /// subjects are not for this service).
    pub reads_subject: &'static [SubjectRead],
    /// Subjects of streams it does not own that it appends to (its result rows).
    pub appends: &'static [&'static str],
}

impl Access {
    /// A service that uses no stream (it still connects, and may do nothing).
    pub const NONE: Access = Access { owns: &[], reads: &[], reads_subject: &[], appends: &[] };
}

/// One subject of a stream, read by the named consumers of one service alone: for a stream whose
/// other subjects that service must not see (identity's sealed numbers beside its public events,
/// S7).
#[derive(Debug, Clone, Copy)]
pub struct SubjectRead {
    pub stream: &'static str,
    pub subject: &'static str,
    /// Its durable consumers of the subject (`<service>-<projection>`): the only consumers of
    /// the stream it may make, pull from, ack or delete.
    pub consumers: &'static [&'static str],
}

/// The allow lists of one NATS user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// The inbox prefix of `user`: replies to its requests arrive there and nowhere else.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// The consumer `user` reads its own audit chains with (to find its last entry after a foreign
/// message): the only consumer it may make on the audit stream unless it reads that stream.
pub fn audit_reader(user: &str) -> String {
    format!("audit-{user}")
}

/// The permissions of service `user` from its declared access, and its subjects of the streams
/// every service shares: its audit chain (`kokuho.audit.<user>` of `audit`) and its dead
/// letters (`kokuho.dlq.<user>.>`, which only the operator reads). A `shardable` service's user
/// may also act as each of its shards ([`crate::shard`]): their consumers, leases and chains.
pub fn service_permissions(user: &str, access: &Access, shardable: bool, audit: &StreamDef) -> Permissions {
    let mut publish: Vec<String> = Vec::new();
    for s in access.owns {
        publish.extend(s.subjects.iter().map(|s| s.to_string()));
    }
    publish.extend(access.appends.iter().map(|s| s.to_string()));
    let audit_subject = format!("kokuho.audit.{user}");
    publish.push(audit_subject.clone());
    publish.push(format!("{audit_subject}.>"));
    publish.push(format!("kokuho.dlq.{user}.>"));
    // Metadata: no message content.
    for api in ["INFO", "STREAM.NAMES", "STREAM.INFO.*", "CONSUMER.LIST.*", "CONSUMER.NAMES.*", "CONSUMER.INFO.*.*"] {
        publish.push(format!("{API}.{api}"));
    }
    let mut read: Vec<&str> = access.owns.iter().map(|s| s.name).collect();
    read.extend(access.reads.iter().copied());
    read.sort_unstable();
    read.dedup();
    for stream in read {
        publish.push(format!("{API}.CONSUMER.CREATE.{stream}"));
        publish.push(format!("{API}.CONSUMER.CREATE.{stream}.>"));
        publish.push(format!("{API}.CONSUMER.DELETE.{stream}.*"));
        publish.push(format!("{API}.CONSUMER.MSG.NEXT.{stream}.*"));
        publish.push(format!("{API}.DIRECT.GET.{stream}"));
        publish.push(format!("{API}.DIRECT.GET.{stream}.>"));
        publish.push(format!("{API}.STREAM.MSG.GET.{stream}"));
        publish.push(format!("$JS.ACK.{stream}.>"));
    }
    for r in access.reads_subject {
        let (stream, subject) = (r.stream, r.subject);
        publish.push(format!("{API}.DIRECT.GET.{stream}.{subject}"));
        let shards: Vec<crate::Shard> = std::iter::once(crate::Shard::WHOLE)
            .chain(shardable.then(crate::Shard::all_partial).into_iter().flatten())
            .collect();
        for c in r.consumers.iter().flat_map(|c| shards.iter().map(|s| s.dashed(c))) {
            publish.push(format!("{API}.CONSUMER.CREATE.{stream}.{c}.{subject}"));
            publish.push(format!("{API}.CONSUMER.DELETE.{stream}.{c}"));
            publish.push(format!("{API}.CONSUMER.MSG.NEXT.{stream}.{c}"));
            publish.push(format!("$JS.ACK.{stream}.{c}.>"));
        }
    }
    // Its own lease (who acts, lease.rs): written only by itself; the holders are no secret.
    let leases = crate::lease::BUCKET;
    publish.push(format!("$KV.{leases}.{user}"));
    if shardable {
        publish.push(format!("$KV.{leases}.{user}.*"));
    }
    publish.push(format!("{API}.DIRECT.GET.KV_{leases}.>"));
    publish.push(format!("{API}.STREAM.MSG.GET.KV_{leases}"));
    // Its own audit chains' heads (the last entry on each subject) and its own chains read back
    // with its one reader, not the others'.
    let reader = audit_reader(user);
    for chain in [audit_subject.clone(), format!("{audit_subject}.>")] {
        publish.push(format!("{API}.DIRECT.GET.{}.{chain}", audit.name));
        publish.push(format!("{API}.CONSUMER.CREATE.{}.{reader}.{chain}", audit.name));
    }
    publish.push(format!("{API}.CONSUMER.MSG.NEXT.{}.{reader}", audit.name));
    publish.push(format!("{API}.CONSUMER.DELETE.{}.{reader}", audit.name));
    publish.sort();
    publish.dedup();
    Permissions { publish, subscribe: vec![format!("{}.>", inbox_prefix(user))] }
}

/// Reading every stream and writing none: the auditor (`kokuho replay` rebuilds projections
/// from the log as this user, so that it cannot write to a stream even by mistake). It makes,
/// pulls from, acks and deletes consumers and gets messages; it publishes no subject of the log.
pub fn auditor_permissions() -> Permissions {
    let mut publish: Vec<String> = [
        "INFO",
        "STREAM.NAMES",
        "STREAM.INFO.*",
        "CONSUMER.LIST.*",
        "CONSUMER.NAMES.*",
        "CONSUMER.INFO.*.*",
        "CONSUMER.CREATE.>",
        "CONSUMER.DELETE.*.*",
        "CONSUMER.MSG.NEXT.*.*",
        "DIRECT.GET.>",
        "STREAM.MSG.GET.*",
    ]
    .iter()
    .map(|api| format!("{API}.{api}"))
    .collect();
    publish.push("$JS.ACK.>".into());
    Permissions { publish, subscribe: vec![format!("{}.>", inbox_prefix(AUDITOR))] }
}

/// Everything: the admin user.
pub fn admin_permissions() -> Permissions {
    Permissions { publish: vec![">".into()], subscribe: vec![">".into()] }
}

/// A NATS user as a client connects: its name and, on a server with authentication, its nkey
/// seed.
#[derive(Clone)]
pub struct NatsUser {
    pub name: String,
    seed: Option<String>,
    tls: Option<ClientTls>,
}

/// Mutual TLS to NATS: the CA that signed the server's certificate, and the client's own
/// certificate and key (PEM files).
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientTls {
    /// `ca.pem`, `client.pem` and `client.key` of `dir`, if `ca.pem` is there.
    pub fn of(dir: &Path) -> Option<Self> {
        let ca = dir.join("ca.pem");
        ca.exists().then(|| Self { ca, cert: dir.join("client.pem"), key: dir.join("client.key") })
    }
}

impl std::fmt::Debug for NatsUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsUser").field("name", &self.name).field("seed", &self.seed.as_ref().map(|_| "…")).finish()
    }
}

impl NatsUser {
    /// A connection without credentials (a server without authentication: crate tests, tools).
    pub fn anonymous(name: &str) -> Self {
        Self { name: name.to_string(), seed: None, tls: None }
    }

    /// The user `name` of the credentials directory `dir` (`<dir>/<name>.nk`), with mutual TLS
    /// when the directory holds a CA certificate ([`ClientTls::of`]).
    pub fn load(dir: &Path, name: &str) -> Result<Self, BusError> {
        let path = seed_file(dir, name);
        let seed = std::fs::read_to_string(&path).map_err(|e| {
            BusError::new(BusErrorKind::Config, "read a NATS credential", format!("{}: {e}", path.display()))
        })?;
        let seed = seed.trim().to_string();
        nkeys::KeyPair::from_seed(&seed).map_err(|e| {
            BusError::new(
                BusErrorKind::Config,
                "read a NATS credential",
                format!("{} is not an nkey seed: {e}", path.display()),
            )
        })?;
        Ok(Self { name: name.to_string(), seed: Some(seed), tls: ClientTls::of(dir) })
    }

    pub(crate) fn seed(&self) -> Option<&str> {
        self.seed.as_deref()
    }

    pub(crate) fn tls(&self) -> Option<&ClientTls> {
        self.tls.as_ref()
    }
}

/// Where the seed of `name` lives in a credentials directory.
pub fn seed_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.nk"))
}

/// Makes the seed of every user in `names` that `dir` does not hold yet (mode 0600) and returns
/// each user's public key, in the order given. Existing seeds are kept (a restart keeps its
/// users); delete a seed and restart to rotate it.
pub fn ensure_users(dir: &Path, names: &[&str]) -> Result<Vec<(String, String)>, BusError> {
    let config = |what: &'static str, e: std::io::Error| BusError::new(BusErrorKind::Config, what, e);
    std::fs::create_dir_all(dir).map_err(|e| config("create the NATS credentials directory", e))?;
    let mut out = Vec::new();
    for name in names {
        let path = seed_file(dir, name);
        if !path.exists() {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair.seed().map_err(|e| BusError::new(BusErrorKind::Config, "make an nkey", e))?;
            kokuho_crypto::write_private(&path, seed.as_bytes()).map_err(|e| config("write an nkey seed", e))?;
        }
        let user = NatsUser::load(dir, name)?;
        let pair = nkeys::KeyPair::from_seed(user.seed().unwrap_or_default())
            .map_err(|e| BusError::new(BusErrorKind::Config, "read an nkey", e))?;
        out.push((name.to_string(), pair.public_key()));
    }
    Ok(out)
}

/// The `accounts` block of a server configuration: one account with JetStream, its users by
/// public nkey with their permissions. Everyone must authenticate.
pub fn accounts_config(users: &[(String, Permissions)]) -> String {
    let list = |items: &[String]| items.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
    let mut out = String::from("accounts {\n  KOKUHO {\n    jetstream: enabled\n    users: [\n");
    for (public_key, p) in users {
        let _ = writeln!(
            out,
            "      {{ nkey: {public_key:?}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }} }}",
            list(&p.publish),
            list(&p.subscribe)
        );
    }
    out.push_str("    ]\n  }\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: StreamDef = StreamDef { name: "KOKUHO_X", subjects: &["kokuho.x.>"], description: "" };
    const AUDIT: StreamDef = StreamDef { name: "KOKUHO_AUDIT", subjects: &["kokuho.audit.>"], description: "" };

    /// S7: a service publishes its own subjects and reads the streams it declared, nothing else:
    /// no stream management, no other stream's messages, no one else's inbox.
    #[test]
    fn s7_permissions_follow_the_declaration() {
        const PUBLIC: SubjectRead =
            SubjectRead { stream: "KOKUHO_W", subject: "kokuho.w.public", consumers: &["x-reader"] };
        let access = Access {
            owns: &[OWN],
            reads: &["KOKUHO_Y"],
            reads_subject: &[PUBLIC],
            appends: &["kokuho.results.rows.*"],
        };
        let p = service_permissions("x", &access, false, &AUDIT);
        for wanted in [
            "kokuho.x.>",
            "kokuho.results.rows.*",
            "kokuho.audit.x",
            "kokuho.dlq.x.>",
            "$JS.API.CONSUMER.CREATE.KOKUHO_Y.>",
            "$JS.API.CONSUMER.MSG.NEXT.KOKUHO_X.*",
            "$JS.ACK.KOKUHO_Y.>",
            "$JS.API.DIRECT.GET.KOKUHO_AUDIT.kokuho.audit.x",
        ] {
            assert!(p.publish.iter().any(|s| s == wanted), "{wanted} missing");
        }
        for refused in
            ["STREAM.CREATE", "STREAM.UPDATE", "STREAM.DELETE", "STREAM.PURGE", "MSG.DELETE", "KOKUHO_AUDIT.>"]
        {
            assert!(!p.publish.iter().any(|s| s.contains(refused)), "{refused} allowed");
        }
        assert!(!p.publish.iter().any(|s| s.contains("KOKUHO_Z")));
        // One subject of KOKUHO_W, by its named consumer only: no get by sequence, no other
        // consumer, no other filter.
        let on_w: Vec<&str> = p.publish.iter().map(String::as_str).filter(|s| s.contains("KOKUHO_W")).collect();
        assert_eq!(
            on_w,
            [
                "$JS.ACK.KOKUHO_W.x-reader.>",
                "$JS.API.CONSUMER.CREATE.KOKUHO_W.x-reader.kokuho.w.public",
                "$JS.API.CONSUMER.DELETE.KOKUHO_W.x-reader",
                "$JS.API.CONSUMER.MSG.NEXT.KOKUHO_W.x-reader",
                "$JS.API.DIRECT.GET.KOKUHO_W.kokuho.w.public",
            ]
        );
        assert_eq!(p.subscribe, vec!["_INBOX_x.>".to_string()]);

        // A shardable service's user may make each shard's named consumers (and no other) and
        // hold each shard's lease.
        let sharded = service_permissions("x", &access, true, &AUDIT);
        let has = |s: &str| sharded.publish.iter().any(|p| p == s);
        assert!(has("$JS.API.CONSUMER.CREATE.KOKUHO_W.x-reader-s2of3.kokuho.w.public"));
        assert!(has("$JS.API.CONSUMER.CREATE.KOKUHO_W.x-reader.kokuho.w.public"));
        assert!(!has("$JS.API.CONSUMER.CREATE.KOKUHO_W.x-reader-s5of5.kokuho.w.public"));
        assert!(has("$KV.KOKUHO_LEASES.x.*") && !p.publish.iter().any(|s| s == "$KV.KOKUHO_LEASES.x.*"));
        assert!(!sharded.publish.iter().any(|s| s.contains("KOKUHO_W.>")));
    }

    #[test]
    fn seeds_are_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("kokuho-nk-{}", uuid::Uuid::now_v7()));
        let first = ensure_users(&dir, &["a", "b"]).unwrap();
        let again = ensure_users(&dir, &["a", "b"]).unwrap();
        assert_eq!(first, again);
        assert_ne!(first[0].1, first[1].1);
        assert!(first[0].1.starts_with('U'));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(seed_file(&dir, "a")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let config = accounts_config(&[(first[0].1.clone(), admin_permissions())]);
        assert!(config.contains("jetstream: enabled") && config.contains(&first[0].1));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
