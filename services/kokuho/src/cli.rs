//! The command line (spec/cli.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Exit codes:
  0  done (a submission accepted fully or partly, or a duplicate of an earlier one)
  1  a submission rejected whole (F01–F09), a refused operation, or nothing found (history, why)
  2  usage error, or the system could not be reached

Under `kokuho up`, the CLI finds the endpoint in the data directory (--data-dir or
KOKUHO_DATA_DIR, default .kokuho); elsewhere give --endpoint or KOKUHO_ENDPOINT.";

#[derive(Debug, Parser)]
#[command(name = "kokuho", version, about = "Prefecture NHI aggregation (国保情報集約システム)", after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// gRPC endpoint of the system, e.g. http://127.0.0.1:50051.
    #[arg(long, env = "KOKUHO_ENDPOINT", global = true)]
    pub(crate) endpoint: Option<String>,
    /// Data directory of `kokuho up` (the CLI reads the endpoint from it).
    #[arg(long, env = "KOKUHO_DATA_DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// The CA certificate to trust for an https endpoint (default: the dev CA of `up`'s data dir).
    #[arg(long, env = "KOKUHO_CA_FILE", global = true)]
    pub(crate) ca_file: Option<PathBuf>,
    /// The client certificate shown to an https endpoint, which requires one (mutual TLS;
    /// default: the dev client certificate of `up`'s data dir).
    #[arg(long, env = "KOKUHO_CERT_FILE", global = true, requires = "key_file")]
    pub(crate) cert_file: Option<PathBuf>,
    /// The client certificate's private key.
    #[arg(long, env = "KOKUHO_KEY_FILE", global = true, requires = "cert_file")]
    pub(crate) key_file: Option<PathBuf>,
    /// The credential to act with (a token file); under `up` the CLI takes the role's dev token.
    #[arg(long, env = "KOKUHO_TOKEN_FILE", global = true)]
    pub(crate) token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start a local nats-server and every service on loopback (the embedded default).
    Up(UpArgs),
    /// `up` on a temporary directory, play the sample scenario, print what each municipality gets back.
    Demo(DemoArgs),
    /// Submit one submission (one or more files of one municipality).
    Submit(SubmitArgs),
    /// Show a receipt's status, or with `--relay` relay's liveness per partition (last
    /// submission, relay lag, records waiting, stall alerts, the server's reachability).
    Status {
        /// 受付番号.
        #[arg(required_unless_present = "relay")]
        receipt: Option<String>,
        /// relay's liveness instead of a receipt (the operator: every municipality).
        #[arg(long, conflicts_with = "receipt")]
        relay: bool,
        /// With --relay: one municipality (its own credential).
        #[arg(long, requires = "relay")]
        municipality: Option<String>,
    },
    /// Wait until every service has caught up with the log.
    Wait {
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Operator (audit): rebuild every projection (or those of `--service`) from the log into a
    /// scratch directory, reading as the NATS auditor, who may write no stream; with `--verify`,
    /// up to the live positions, and compare with the running system: a digest per projection,
    /// the first differing key named, exit 1 on a difference.
    Replay {
        /// Only these services' projections (repeat; default: every service).
        #[arg(long = "service")]
        services: Vec<String>,
        /// Compare with the running system of the data dir (or `--endpoint`).
        #[arg(long, conflicts_with = "until_date")]
        verify: bool,
        /// Replay to the end of this business date (YYYYMMDD): what the projections held just
        /// before the calendar moved past it.
        #[arg(long)]
        until_date: Option<String>,
        /// Where the replayed stores go (default: a temporary directory, removed after).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The NATS server of the log (default: the one `kokuho up` wrote in the data dir).
        #[arg(long)]
        nats: Option<String>,
        /// Seconds the replay may take.
        #[arg(long, default_value_t = 600)]
        patience: u64,
    },
    /// Operator: every message a service gave up on (the dead-letter stream): which consumer,
    /// where it is in the log (it stays there), and why.
    DeadLetters {
        /// The NATS server of the log (default: the one `kokuho up` wrote in the data dir).
        #[arg(long)]
        nats: Option<String>,
    },
    /// Operator: close the business day; the date must be later than the current one. The
    /// head of every audit chain is then appended to the anchor file (S8).
    CloseDay {
        /// YYYYMMDD.
        date: String,
        /// The anchor file (default: audit-anchors.jsonl in the data directory).
        #[arg(long)]
        anchors: Option<PathBuf>,
    },
    /// Write every pending result file of a municipality into a directory and acknowledge them.
    Fetch {
        #[arg(long)]
        municipality: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// A municipality's result files without their content: the pending ones and a page of the
    /// stored (acknowledged) ones; `files get` writes one again by name.
    Files {
        #[command(subcommand)]
        command: FilesCommand,
    },
    /// A municipality's open anomalies (rules.md C3–C7), each with why, in 宛名番号 order.
    Anomalies {
        #[arg(long)]
        municipality: String,
        /// At most this many residents (at most 2000).
        #[arg(long, default_value_t = 500)]
        limit: u32,
        /// Residents after this 宛名番号 (the next page, as the last listing says).
        #[arg(long, default_value = "")]
        after: String,
    },
    /// A municipality's records waiting for the intermediate server (rules.md R5: R01, R02,
    /// R04), in 宛名番号 order, and its partition's state.
    Waiting {
        #[arg(long)]
        municipality: String,
        /// At most this many records (at most 2000).
        #[arg(long, default_value_t = 500)]
        limit: u32,
        /// Records after this one (the next page, as the last listing says).
        #[arg(long, default_value = "")]
        after: String,
    },
    /// 継続世帯確定指示 for a candidate (arrives with the kogaku service).
    Decide {
        #[arg(long)]
        municipality: String,
        /// 継続候補番号 (from an RK file or `kogaku candidates`).
        candidate: String,
        /// 継続 (判定 1).
        #[arg(long, group = "judgement")]
        r#continue: bool,
        /// 非継続 (判定 2).
        #[arg(long, group = "judgement")]
        discontinue: bool,
        /// Operator: reverse an earlier decision, with why (audited; rules.md H3).
        #[arg(long)]
        reverse: bool,
        /// Why (required with --reverse).
        #[arg(long, requires = "reverse")]
        reason: Option<String>,
        /// Who reverses.
        #[arg(long, env = "USER", default_value = "operator")]
        operator: String,
    },
    /// オンライン資格確認 as a clinic asks the intermediate server (its simulator under `up`):
    /// insured or not on a date, and the dates; never a 個人番号.
    Eligibility {
        /// 保険者番号.
        #[arg(long)]
        insurer: String,
        /// 被保険者証記号.
        #[arg(long)]
        symbol: String,
        /// 被保険者証番号.
        #[arg(long)]
        number: String,
        /// 枝番 (01–99).
        #[arg(long)]
        branch: u32,
        /// YYYYMMDD.
        #[arg(long)]
        date: String,
    },
    /// What a municipality's partition of the intermediate server holds (without 個人番号).
    Partition {
        #[arg(long)]
        municipality: String,
    },
    /// Provision to other institutions (別紙2, rules.md P1, P2).
    Provision {
        #[command(subcommand)]
        command: ProvisionCommand,
    },
    /// Why a row says what it says: a continuation candidate's RK and RG (rules.md H2, K2, K3),
    /// a resident's RS rows and open anomalies (C1–C9), or its identity link (I1–I6).
    #[command(group(clap::ArgGroup::new("subject").required(true).args(["candidate", "rs", "anomaly", "link"])))]
    Why {
        #[arg(long)]
        municipality: String,
        /// 継続候補番号.
        #[arg(long)]
        candidate: Option<String>,
        /// 宛名番号 (with --rs, --anomaly or --link).
        #[arg(long, required_unless_present = "candidate")]
        resident: Option<String>,
        /// The RS row of the period starting on this date (YYYYMMDD), or `all`.
        #[arg(long, requires = "resident")]
        rs: Option<String>,
        /// An anomaly of the resident (A01–A07), or `all` for every open one.
        #[arg(long, requires = "resident")]
        anomaly: Option<String>,
        /// The resident's identity link (I1–I6).
        #[arg(long, requires = "resident")]
        link: bool,
    },
    /// Every fact the log holds about a resident (or, for an operator, a person), in order, with
    /// business date, event id and rule ids; audited (S8).
    #[command(group(clap::ArgGroup::new("whose").required(true).args(["resident", "person"])))]
    History {
        /// The caller's municipality (with --resident).
        #[arg(long, requires = "resident")]
        municipality: Option<String>,
        /// 宛名番号.
        #[arg(long, requires = "municipality")]
        resident: Option<String>,
        /// 都道府県被保険者ID (operator).
        #[arg(long)]
        person: Option<String>,
        /// Only facts of business dates up to YYYYMMDD.
        #[arg(long)]
        as_of: Option<String>,
        /// CSV (one fact per row, with a header), for the auditor.
        #[arg(long)]
        csv: bool,
        /// Ask as the operator (every municipality's facts) rather than as the municipality.
        #[arg(long)]
        operator: bool,
    },
    /// A household's 高額 months (rules.md K5).
    Kogaku {
        #[command(subcommand)]
        command: KogakuCommand,
    },
    /// Operator: the review queue of held identity conflicts (rules.md I6).
    Review {
        #[command(subcommand)]
        command: ReviewCommand,
    },
    /// Operator: the audit log of personal-data access (security.md S8).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run one service.
    Serve(Box<ServeArgs>),
    /// Key management (security.md S3).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Operator (the NATS admin): create every stream, or bring kokuho's part of its
    /// configuration up to date (never fewer replicas). Services may not (security.md S7).
    Streams {
        #[arg(long, env = "KOKUHO_NATS_URL")]
        nats: String,
        /// The directory with the admin's seed (admin.nk).
        #[arg(long, env = "KOKUHO_NATS_CREDENTIALS")]
        nats_credentials: PathBuf,
        #[arg(long, env = "KOKUHO_STREAM_REPLICAS", default_value_t = 1)]
        stream_replicas: usize,
    },
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// First business date of a new log (YYYYMMDD; default today).
    #[arg(long)]
    pub(crate) business_date: Option<String>,
    /// Use this NATS server instead of starting one.
    #[arg(long, env = "KOKUHO_NATS_URL")]
    pub(crate) nats: Option<String>,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,
    /// Municipality registry file (default: Tokyo, config/registry/13.csv).
    #[arg(long, env = "KOKUHO_REGISTRY")]
    pub(crate) registry: Option<PathBuf>,
    /// The page cache of the process's stores in MiB, shared by its services (default 256;
    /// resident memory is about three times it).
    #[arg(long, env = "KOKUHO_STORE_CACHE_MIB")]
    pub(crate) store_cache_mib: Option<u64>,
    /// Where the clerk console (HTTP) listens; its URL is printed and written to
    /// `<data dir>/console`.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) console_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Scenario folder (scenario.json and its files); default: the shipped sample.
    #[arg(long)]
    pub(crate) scenario: Option<PathBuf>,
    /// After the scenario, leave the system and its console running with the sample data until
    /// Ctrl-C, and keep the data directory.
    #[arg(long)]
    pub(crate) keep: bool,
    /// Where the clerk console listens (its URL is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) console_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    #[arg(long)]
    pub(crate) municipality: String,
    /// Return once every service has processed what the submission caused.
    #[arg(long)]
    pub(crate) wait: bool,
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// intake, identity, continuity, kogaku, relay, history, midserver-sim, or console (the
    /// clerk console, HTTP, in front of the others' gRPC API).
    pub(crate) service: String,
    /// A TOML file with any of the settings below (flags and KOKUHO_* variables win over it).
    #[arg(long, env = "KOKUHO_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) settings: ServeSettings,
}

/// Settings of `kokuho serve`, from flags, the environment, or the config file.
#[derive(Debug, Clone, Default, Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeSettings {
    #[arg(long, env = "KOKUHO_NATS_URL")]
    pub(crate) nats: Option<String>,
    /// The directory with the service's NATS seed (`<service>.nk`, a Secret; security.md S7).
    /// Absent: a server without authentication (development only).
    #[arg(long, env = "KOKUHO_NATS_CREDENTIALS")]
    pub(crate) nats_credentials: Option<PathBuf>,
    /// The directory with the service's audit signing key (`<service>.nk`, a Secret; S8).
    #[arg(long, env = "KOKUHO_AUDIT_SIGNING_KEYS")]
    pub(crate) audit_signing_keys: Option<PathBuf>,
    /// identity: every service's public audit key (`<service>.pub`), to verify the audit log.
    #[arg(long, env = "KOKUHO_AUDIT_PUBLIC_KEYS")]
    pub(crate) audit_public_keys: Option<PathBuf>,
    /// identity: most 個人番号 released per minute (default 300,000; S5).
    #[arg(long, env = "KOKUHO_RELEASE_PER_MINUTE")]
    pub(crate) release_per_minute: Option<u32>,
    /// The gRPC server's TLS certificate and key (PEM, a Secret); without them plain HTTP/2.
    #[arg(long, env = "KOKUHO_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    #[arg(long, env = "KOKUHO_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// The CA certificate to trust for the https endpoints this service calls (relay).
    #[arg(long, env = "KOKUHO_TLS_CA")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// The CA that signed the callers' certificates: with it, a caller without one is refused
    /// at the handshake (mutual TLS).
    #[arg(long, env = "KOKUHO_TLS_CLIENT_CA")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// The certificate and key this service shows to the https endpoints it calls (relay).
    #[arg(long, env = "KOKUHO_TLS_CLIENT_CERT", requires = "tls_client_key")]
    pub(crate) tls_client_cert: Option<PathBuf>,
    #[arg(long, env = "KOKUHO_TLS_CLIENT_KEY", requires = "tls_client_cert")]
    pub(crate) tls_client_key: Option<PathBuf>,
    /// gRPC listen address (default 0.0.0.0:50051).
    #[arg(long, env = "KOKUHO_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// identity's public key file (a Kubernetes Secret in production).
    #[arg(long, env = "KOKUHO_IDENTITY_PUBLIC_KEY")]
    pub(crate) identity_public_key: Option<PathBuf>,
    /// Municipality registry file (default: Tokyo).
    #[arg(long, env = "KOKUHO_REGISTRY")]
    pub(crate) registry: Option<PathBuf>,
    /// identity's private keys: a directory of `*.key` files, `identity.key` current (identity).
    #[arg(long, env = "KOKUHO_IDENTITY_KEYS")]
    pub(crate) identity_keys: Option<PathBuf>,
    /// Callers' tokens: a directory of `<caller>.token` files (every service).
    #[arg(long, env = "KOKUHO_CREDENTIALS")]
    pub(crate) credentials: Option<PathBuf>,
    /// First business date of a new log (YYYYMMDD); ignored when the log has one.
    #[arg(long, env = "KOKUHO_BUSINESS_DATE")]
    pub(crate) business_date: Option<String>,
    /// kogaku: confirm reason 11 (世帯主同一) candidates as 継続 without waiting for the
    /// municipality (rules.md H3; off by default).
    #[arg(long, env = "KOKUHO_KOGAKU_AUTO_CONFIRM")]
    pub(crate) kogaku_auto_confirm: Option<bool>,
    /// midserver-sim: its key directory (`*.key`, `identity.key` current; a Secret).
    #[arg(long, env = "KOKUHO_MIDSERVER_KEYS")]
    pub(crate) midserver_keys: Option<PathBuf>,
    /// midserver-sim: faults injected from the start, e.g. `reject_per_mille=10,delay_ms=50`.
    #[arg(long, env = "KOKUHO_MIDSERVER_FAULTS")]
    pub(crate) midserver_faults: Option<String>,
    /// Replicas of the streams a service creates (default 1; 3 on a NATS cluster). A stream that
    /// has more is never lowered.
    #[arg(long, env = "KOKUHO_STREAM_REPLICAS")]
    pub(crate) stream_replicas: Option<u32>,
    /// Where `GET /metrics` (Prometheus) is served (default a free loopback port).
    #[arg(long, env = "KOKUHO_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Where a plain gRPC server answers health checks alone (for Kubernetes' gRPC probe,
    /// which cannot speak TLS); the API port stays mutual TLS.
    #[arg(long, env = "KOKUHO_HEALTH_LISTEN")]
    pub(crate) health_listen: Option<SocketAddr>,
    /// The longest a gRPC request may run on the server, in seconds (default 900; S9).
    #[arg(long, env = "KOKUHO_GRPC_TIMEOUT_SECONDS")]
    pub(crate) grpc_timeout_seconds: Option<u64>,
    /// intake: most large submissions (over 1 MiB of files) received and decided at a time
    /// (default 4; S9).
    #[arg(long, env = "KOKUHO_INTAKE_MAX_SUBMISSIONS")]
    pub(crate) intake_max_submissions: Option<u32>,
    /// intake: most small submissions (≤ 1 MiB of files) received and decided at a time,
    /// beside the large ones (default 64; S9).
    #[arg(long, env = "KOKUHO_INTAKE_SMALL_SUBMISSIONS")]
    pub(crate) intake_small_submissions: Option<usize>,
    /// The page cache of the process's stores in MiB (default 256; resident memory is about
    /// three times it).
    #[arg(long, env = "KOKUHO_STORE_CACHE_MIB")]
    pub(crate) store_cache_mib: Option<u64>,
    /// relay: identity's gRPC endpoint (the number release, R6).
    #[arg(long, env = "KOKUHO_IDENTITY_ENDPOINT")]
    pub(crate) identity_endpoint: Option<String>,
    /// relay: the intermediate server's gRPC endpoint.
    #[arg(long, env = "KOKUHO_MIDSERVER_ENDPOINT")]
    pub(crate) midserver_endpoint: Option<String>,
    /// relay: the file with relay's own credential (a Secret).
    #[arg(long, env = "KOKUHO_RELAY_TOKEN_FILE")]
    pub(crate) relay_token_file: Option<PathBuf>,
    /// relay: most operations sent and not yet answered at a time (default 2,000).
    #[arg(long, env = "KOKUHO_RELAY_IN_FLIGHT")]
    pub(crate) relay_in_flight: Option<u32>,
    /// relay: seconds a partition may stay still while records wait before R05 (default 900).
    #[arg(long, env = "KOKUHO_RELAY_STALL_SECONDS")]
    pub(crate) relay_stall_seconds: Option<u64>,
    /// relay: the provision policy file (別紙2; default: the one shipped in the binary).
    #[arg(long, env = "KOKUHO_PROVISION_POLICY")]
    pub(crate) provision_policy: Option<PathBuf>,
    /// relay: this instance is shard k of n (e.g. 2/3), owning the municipalities whose code
    /// modulo n is k − 1 (docs/architecture.md, Scaling out); default: the whole.
    #[arg(long, env = "KOKUHO_RELAY_SHARD")]
    pub(crate) relay_shard: Option<String>,
    /// console: the gRPC endpoint of the services' API it calls with each clerk's credential.
    #[arg(long, env = "KOKUHO_CONSOLE_API")]
    pub(crate) console_api: Option<String>,
    /// console: send the session cookie over HTTPS only (behind a TLS-terminating ingress;
    /// default true for `serve console`).
    #[arg(long, env = "KOKUHO_CONSOLE_SECURE_COOKIES")]
    pub(crate) console_secure_cookies: Option<bool>,
    /// console: rows on one page of its long lists (default 100).
    #[arg(long, env = "KOKUHO_CONSOLE_PAGE_SIZE")]
    pub(crate) console_page_size: Option<u32>,
    /// Where the service keeps its stores (default .kokuho).
    #[arg(skip)]
    pub(crate) data_dir: Option<PathBuf>,
}

impl ServeSettings {
    /// `self` where set, else `file`.
    pub(crate) fn or(self, file: ServeSettings) -> ServeSettings {
        ServeSettings {
            nats: self.nats.or(file.nats),
            nats_credentials: self.nats_credentials.or(file.nats_credentials),
            audit_signing_keys: self.audit_signing_keys.or(file.audit_signing_keys),
            audit_public_keys: self.audit_public_keys.or(file.audit_public_keys),
            release_per_minute: self.release_per_minute.or(file.release_per_minute),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            tls_ca: self.tls_ca.or(file.tls_ca),
            tls_client_ca: self.tls_client_ca.or(file.tls_client_ca),
            tls_client_cert: self.tls_client_cert.or(file.tls_client_cert),
            tls_client_key: self.tls_client_key.or(file.tls_client_key),
            listen: self.listen.or(file.listen),
            identity_public_key: self.identity_public_key.or(file.identity_public_key),
            registry: self.registry.or(file.registry),
            identity_keys: self.identity_keys.or(file.identity_keys),
            credentials: self.credentials.or(file.credentials),
            business_date: self.business_date.or(file.business_date),
            kogaku_auto_confirm: self.kogaku_auto_confirm.or(file.kogaku_auto_confirm),
            midserver_keys: self.midserver_keys.or(file.midserver_keys),
            midserver_faults: self.midserver_faults.or(file.midserver_faults),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            health_listen: self.health_listen.or(file.health_listen),
            stream_replicas: self.stream_replicas.or(file.stream_replicas),
            intake_max_submissions: self.intake_max_submissions.or(file.intake_max_submissions),
            intake_small_submissions: self.intake_small_submissions.or(file.intake_small_submissions),
            store_cache_mib: self.store_cache_mib.or(file.store_cache_mib),
            grpc_timeout_seconds: self.grpc_timeout_seconds.or(file.grpc_timeout_seconds),
            identity_endpoint: self.identity_endpoint.or(file.identity_endpoint),
            midserver_endpoint: self.midserver_endpoint.or(file.midserver_endpoint),
            relay_token_file: self.relay_token_file.or(file.relay_token_file),
            relay_in_flight: self.relay_in_flight.or(file.relay_in_flight),
            relay_stall_seconds: self.relay_stall_seconds.or(file.relay_stall_seconds),
            provision_policy: self.provision_policy.or(file.provision_policy),
            relay_shard: self.relay_shard.or(file.relay_shard),
            console_api: self.console_api.or(file.console_api),
            console_secure_cookies: self.console_secure_cookies.or(file.console_secure_cookies),
            console_page_size: self.console_page_size.or(file.console_page_size),
            data_dir: self.data_dir.or(file.data_dir),
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum KogakuCommand {
    /// The continuation candidates of a municipality (the operator: of all; `--changed`: only
    /// decided candidates whose facts changed afterwards, A08).
    Candidates {
        #[arg(long)]
        municipality: Option<String>,
        #[arg(long)]
        changed: bool,
    },
    /// The counted 高額 months of a household in the 11 months before MONTH, their count and
    /// whether a 高額 month in MONTH would be 多数回該当 (K1, K5).
    Count {
        #[arg(long)]
        municipality: String,
        #[arg(long)]
        household: String,
        /// YYYYMM.
        #[arg(long)]
        month: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProvisionCommand {
    /// Operator: a request of another institution, decided by the shipped policy (P1) and
    /// recorded whether allowed or denied (P2). Exit 0 if allowed, 1 if denied.
    Request {
        /// The institution asking (情報照会者).
        #[arg(long)]
        requester: String,
        /// The provision target as the policy names it.
        #[arg(long)]
        target: String,
        /// 主務省令第2条 表 項.
        #[arg(long)]
        item: u32,
        /// 被保険者台帳ファイル or 給付情報ファイル.
        #[arg(long)]
        file: String,
        /// 都道府県被保険者ID.
        #[arg(long)]
        person: String,
    },
    /// Operator: the record of every provision request (情報提供等の記録), oldest first.
    Log,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the audit log: every chain's hashes and signatures, and every head anchored so far
    /// (a cut tail); exit 0 if intact, 1 with the first broken entry.
    Verify {
        /// The anchor file (default: audit-anchors.jsonl in the data directory).
        #[arg(long)]
        anchors: Option<PathBuf>,
    },
    /// Append the head of every audit chain to the anchor file, kept outside NATS (also done
    /// by close-day).
    Anchor {
        /// The anchor file (default: audit-anchors.jsonl in the data directory).
        #[arg(long)]
        anchors: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FilesCommand {
    /// The pending files, then the stored ones newest first (name, kind, business date, rows).
    List {
        #[arg(long)]
        municipality: String,
        /// Stored files below this file sequence (the next page, as the last listing says).
        #[arg(long, default_value_t = 0)]
        before: u32,
        /// At most this many stored files (at most 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Write one file, pending or stored, into a directory again (it is not acknowledged).
    Get {
        #[arg(long)]
        municipality: String,
        /// The file's name (formats.md), as `files list` shows it.
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReviewCommand {
    /// The held records (C01, C02).
    List,
    /// Decide one held record; the decision is a fact in the log with who and why.
    Resolve {
        /// The case id shown by `review list`.
        case: String,
        /// Link the record to the person of the case.
        #[arg(long, group = "action")]
        link: bool,
        /// Link the record to the person its 個人番号 belongs to (a new person if none).
        #[arg(long, group = "action")]
        relink: bool,
        /// Leave the record unlinked.
        #[arg(long, group = "action")]
        reject: bool,
        /// Why (kept in the log).
        #[arg(long)]
        reason: String,
        /// Who decides.
        #[arg(long, env = "USER", default_value = "operator")]
        operator: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Write a new identity key pair (identity.pub, identity.key) into a directory.
    Generate {
        #[arg(long)]
        out: PathBuf,
    },
    /// Write each service's audit signing key (<service>.nk, a Secret for that service alone)
    /// and its public key (<service>.pub, for identity's verify); existing keys are kept (S8).
    Audit {
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a caller's signed token (S5) with the credential issuer's key in ISSUER (made, with
    /// issuer.pub for the servers, if there is none). One per person for operators.
    Issue {
        /// The directory with the issuer's key (issuer.key; keep it off the cluster).
        #[arg(long)]
        issuer: PathBuf,
        /// municipality, operator or relay.
        #[arg(long)]
        role: String,
        /// The operator's name (who the audit names).
        #[arg(long, required_if_eq("role", "operator"))]
        name: Option<String>,
        /// The municipality code (role municipality).
        #[arg(long, required_if_eq("role", "municipality"))]
        municipality: Option<String>,
        /// Days until it expires.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Where to write the token.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the NATS users' nkey seeds (admin.nk and one per service; kept when there) and the
    /// server's accounts block with each user's permissions (accounts.conf) into a directory.
    Nats {
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a deployment's gRPC PKI into a directory (made once; delete it to make a new one):
    /// the CA (ca.pem), one certificate per service for its names in the namespace (<service>.pem
    /// and .key: a Secret per service) and one client certificate per caller outside the cluster.
    Tls {
        #[arg(long)]
        out: PathBuf,
        /// The Kubernetes namespace the services' names are in.
        #[arg(long, default_value = "kokuho")]
        namespace: String,
        /// Callers outside the services that get a client certificate (an operator's terminal,
        /// the console).
        #[arg(long = "caller", default_values_t = ["operator".to_string(), "console".to_string()])]
        callers: Vec<String>,
    },
}
