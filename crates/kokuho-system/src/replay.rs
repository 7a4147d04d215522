//! Replaying the log for an audit (`kokuho replay`, issue 13): every projection of the chosen
//! services rebuilt from the log into a scratch directory, up to given positions, without
//! trusting the live stores. It runs the services' own projections (the same code as live), but
//! no workflow and no task that acts on the world; it reads the log as the NATS auditor, a user
//! that may write no stream, and writes nothing but its scratch stores.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context as _;
use kokuho_runtime::service::Environment;
use kokuho_store::{Digest, RunnerSettings, RunnerStats, SledDb, SledStore};

use crate::{SERVICES, SystemConfig};

/// The services whose projections a replay rebuilds: every service of the log (the
/// intermediate-server simulator plays another system and keeps no projection of the log).
pub fn services() -> Vec<&'static str> {
    crate::service_names().into_iter().filter(|s| *s != "midserver-sim").collect()
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The live system's configuration (its data dir: keys, credentials, NATS users).
    pub live: SystemConfig,
    /// The NATS server the live system uses.
    pub nats_url: String,
    /// Where the replayed stores go; never a live data dir.
    pub scratch: PathBuf,
    /// The services whose projections are replayed.
    pub services: Vec<&'static str>,
    /// The last sequence to apply, by runner (`<service>-<projection>`), else by stream (see
    /// [`positions_at_date`]); a projection named in neither is replayed to what its stream
    /// holds when it starts.
    pub targets: BTreeMap<String, u64>,
    pub stream_targets: BTreeMap<String, u64>,
    /// How long the replay may take.
    pub patience: Duration,
}

/// One replayed projection.
#[derive(Debug)]
pub struct Replayed {
    /// `<service>-<projection>`.
    pub name: String,
    pub stream: &'static str,
    pub digest: Digest,
    /// The scratch store, for a key-by-key comparison.
    pub store: SledStore,
}

/// Replays, and returns every projection replayed with its digest. `progress` is told each
/// projection's position and target now and then.
pub async fn run(replay: Replay, progress: impl Fn(&[(String, u64, u64)])) -> anyhow::Result<Vec<Replayed>> {
    let mut config = replay.live;
    anyhow::ensure!(
        replay.scratch != config.data_dir && !replay.scratch.starts_with(config.data_dir.join("store")),
        "a replay never writes into the live data dir; give another directory"
    );
    if config.dev_keys {
        crate::dev_keys(&mut config)?;
    }
    let auditor = auditor(&config)?;
    let credentials_dir = config.credentials_dir.clone().unwrap_or_else(|| crate::credentials_dir(&config.data_dir));
    let credentials = kokuho_runtime::credentials::Credentials::load(&credentials_dir)
        .with_context(|| format!("credentials in {}", credentials_dir.display()))?;
    // Peers a replay never calls (no workflow, no delivery), for services that want them named.
    for key in [kokuho_relay::IDENTITY_ENDPOINT, kokuho_relay::MIDSERVER_ENDPOINT] {
        if config.settings.get(key).is_none() {
            config.settings.set(key, "http://127.0.0.1:1");
        }
    }
    if config.settings.get(kokuho_relay::TOKEN_FILE).is_none() {
        config.settings.set(kokuho_relay::TOKEN_FILE, credentials_dir.join("relay.token").display().to_string());
    }
    let stats = RunnerStats::default();
    let id = uuid::Uuid::now_v7().simple().to_string();
    let runner = RunnerSettings {
        stats: stats.clone(),
        replay: Some(kokuho_store::Replay {
            prefix: format!("replay-{}-", &id[id.len() - 8..]),
            until: replay.targets,
            until_stream: replay.stream_targets,
        }),
        ..RunnerSettings::default()
    };
    let mut services = Vec::new();
    for name in &replay.services {
        let r = SERVICES.iter().find(|r| r.name == *name).with_context(|| format!("no service {name:?}"))?;
        let shard = crate::shard_of(r, &config.settings)?;
        let bus = kokuho_bus::Bus::connect_as(&replay.nats_url, &auditor)
            .await
            .with_context(|| format!("connect to NATS as the auditor ({})", replay.nats_url))?;
        let env = Environment {
            // It serves no request, so it records no access.
            audit_signer: Some(kokuho_runtime::audit::Signer::throwaway()),
            bus,
            db: SledDb::open(&replay.scratch.join("store").join(shard.dashed(name)))?,
            registry: config.registry.clone(),
            credentials: credentials.clone(),
            runner: RunnerSettings { shard, ..runner.clone() },
            settings: config.settings.clone(),
            metrics: kokuho_runtime::metrics::Metrics::default(),
            shard,
        };
        services.push((r.build)(env).await.with_context(|| format!("replay {name}"))?);
    }
    let deadline = tokio::time::Instant::now() + replay.patience;
    let targets = runner.replay.as_ref().map(|r| r.until.clone()).unwrap_or_default();
    let stream_targets = runner.replay.as_ref().map(|r| r.until_stream.clone()).unwrap_or_default();
    loop {
        let all = stats.all();
        let projections: Vec<_> = all.iter().filter(|(_, s)| s.projection.get().is_some()).collect();
        let now: Vec<(String, u64, u64)> = projections
            .iter()
            .map(|(n, s)| {
                let stream = s.projection.get().map_or("", |p| p.1);
                let target = targets.get(n).or_else(|| stream_targets.get(stream)).copied().unwrap_or(0);
                (n.clone(), s.position.load(Relaxed), target)
            })
            .collect();
        progress(&now);
        if projections.iter().all(|(_, s)| s.done.load(Relaxed)) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let behind: Vec<_> =
                projections.iter().filter(|(_, s)| !s.done.load(Relaxed)).map(|(n, _)| n.as_str()).collect();
            anyhow::bail!("the replay did not reach its positions in {:?}: {}", replay.patience, behind.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while let Some(s) = services.pop() {
        s.stop().await;
    }
    let mut out = Vec::new();
    for (name, s) in stats.all() {
        let Some((store, stream)) = s.projection.get() else { continue };
        out.push(Replayed { name, stream, digest: store.digest()?, store: store.clone() });
    }
    Ok(out)
}

/// A replayed projection compared with the live one.
#[derive(Debug)]
pub struct Verdict {
    pub name: String,
    pub replayed: Digest,
    /// The live projection's (position, keys, SHA-256), if the live process has it.
    pub live: Option<(u64, u64, String)>,
    /// The first key (in key order) whose value differs, or that one side has and the other has
    /// not; none when they are equal.
    pub first_difference: Option<Vec<u8>>,
}

impl Verdict {
    pub fn equal(&self) -> bool {
        self.live.as_ref().is_some_and(|(p, k, h)| {
            *p == self.replayed.position && *k == self.replayed.keys && *h == self.replayed.sha256
        })
    }
}

type Ops = kokuho_proto::ops::v1::ops_service_client::OpsServiceClient<tonic::transport::Channel>;

fn with_token<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(kokuho_runtime::credentials::AUTHORIZATION, format!("Bearer {token}").parse()?);
    Ok(r)
}

/// The live projections of the process at `channel` (operator `token`): (name, stream, position,
/// keys, SHA-256).
pub async fn live_projections(
    channel: tonic::transport::Channel,
    token: &str,
) -> anyhow::Result<Vec<kokuho_proto::ops::v1::Projection>> {
    let request = with_token(kokuho_proto::ops::v1::ProjectionsRequest {}, token)?;
    Ok(Ops::new(channel).projections(request).await?.into_inner().projections)
}

/// Compares each replayed projection with the live one of the process at `channel`: by digest,
/// and where they differ, key by key to the first difference.
pub async fn compare(
    replayed: &[Replayed],
    channel: tonic::transport::Channel,
    token: &str,
) -> anyhow::Result<Vec<Verdict>> {
    let live = live_projections(channel.clone(), token).await?;
    let mut ops = Ops::new(channel);
    let mut out = Vec::new();
    for r in replayed {
        let mine = live.iter().find(|l| l.name == r.name);
        let mut verdict = Verdict {
            name: r.name.clone(),
            replayed: r.digest.clone(),
            live: mine.map(|l| (l.position, l.keys, l.sha256.clone())),
            first_difference: None,
        };
        if mine.is_some() && !verdict.equal() {
            verdict.first_difference = first_difference(&mut ops, token, r).await?;
        }
        out.push(verdict);
    }
    Ok(out)
}

/// Walks both stores in key order, a page at a time, to the first key where they differ.
async fn first_difference(ops: &mut Ops, token: &str, r: &Replayed) -> anyhow::Result<Option<Vec<u8>>> {
    const PAGE: usize = 1_000;
    let mut after: Vec<u8> = Vec::new();
    loop {
        let request = kokuho_proto::ops::v1::ProjectionEntriesRequest {
            name: r.name.clone(),
            after: after.clone(),
            limit: PAGE as u32,
        };
        let theirs = ops.projection_entries(with_token(request, token)?).await?.into_inner().entries;
        let ours = r.store.entries_after(&after, PAGE)?;
        for i in 0..theirs.len().max(ours.len()) {
            match (ours.get(i), theirs.get(i)) {
                (Some((k, h)), Some(t)) if *k == t.key && *h == t.value_sha256 => after = k.clone(),
                (Some((k, _)), Some(t)) => return Ok(Some(k.clone().min(t.key.clone()))),
                (Some((k, _)), None) => return Ok(Some(k.clone())),
                (None, Some(t)) => return Ok(Some(t.key.clone())),
                (None, None) => unreachable!("the index is below one of the lengths"),
            }
        }
        if ours.len() < PAGE && theirs.len() < PAGE {
            return Ok(None);
        }
    }
}

/// The NATS auditor of the live system's credentials: reads every stream, writes none.
fn auditor(live: &SystemConfig) -> anyhow::Result<kokuho_bus::NatsUser> {
    let users = match live.settings.get(crate::NATS_CREDENTIALS) {
        Some(dir) => PathBuf::from(dir),
        None => crate::nats_credentials_dir(&live.data_dir),
    };
    kokuho_bus::NatsUser::load(&users, kokuho_bus::access::AUDITOR)
        .context("the NATS auditor's credential (restart `kokuho up` once to make it)")
}

/// A connection to the log as the live system's auditor.
pub async fn auditor_bus(live: &SystemConfig, nats_url: &str) -> anyhow::Result<kokuho_bus::Bus> {
    Ok(kokuho_bus::Bus::connect_as(nats_url, &auditor(live)?).await?)
}

/// Where every stream of the log stood at the end of business date `date` (YYYYMMDD): just
/// before the calendar moved past it (the first `BusinessDateSet` or `DayClosed` of a later
/// date in intake's stream). intake's stream ends right before that event; every other stream
/// at its last message stored before it was, so a replay to these positions holds what the
/// live projections held then, lag included. `None` when the calendar has not moved past
/// `date` (the log as it is now).
pub async fn positions_at_date(bus: &kokuho_bus::Bus, date: u32) -> anyhow::Result<Option<BTreeMap<String, u64>>> {
    use kokuho_intake_contract::{CALENDAR_SUBJECT, Event, Events, STREAM};
    let mut moved = None;
    for (seq, bytes) in bus.read_subject(STREAM.name, CALENDAR_SUBJECT).await? {
        let Ok((envelope, event)) = kokuho_bus::event::decode::<Events>(&bytes) else { continue };
        let to = match event {
            Event::BusinessDateSet(e) => e.date,
            Event::DayClosed(e) => e.date,
            _ => continue,
        };
        if to > date {
            let at = envelope.occurred_at.map_or(0, |t| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos));
            moved = Some((seq, at));
            break;
        }
    }
    let Some((seq, at)) = moved else { return Ok(None) };
    let mut out = BTreeMap::from([(STREAM.name.to_string(), seq - 1)]);
    for def in crate::streams() {
        if def.name != STREAM.name {
            out.insert(def.name.to_string(), bus.last_seq_before(def.name, at).await?);
        }
    }
    Ok(Some(out))
}
