//! The one contract between a service and the process that runs it (`kokuho up`, `kokuho serve
//! <service>`, the test harness): build it from its [`Environment`], register its gRPC services,
//! start its runners, stop it. The process composes services through [`Registration`]s, one per
//! service, and never names a service otherwise (docs/architecture.md, "Adding a service").

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use kokuho_bus::Bus;
use kokuho_ids::Registry;
use kokuho_store::{RunnerSettings, SledDb};
use tonic::service::RoutesBuilder;

use crate::credentials::Credentials;

pub use kokuho_bus::Access;

/// What the process gives every service it runs.
#[derive(Clone)]
pub struct Environment {
    pub bus: Bus,
    /// The service's own sled directory (`<data dir>/store/<service>`).
    pub db: SledDb,
    pub registry: Arc<Registry>,
    /// Callers' tokens (security.md S5).
    pub credentials: Credentials,
    pub runner: RunnerSettings,
    /// Settings by name, from flags, `KOKUHO_*` variables or the config file; each service reads
    /// its own (docs/architecture.md lists them).
    pub settings: Settings,
    /// The process's metrics registry: a service registers its collectors here.
    pub metrics: crate::metrics::Metrics,
    /// The service's own audit signing key (S8), if the process was given one.
    pub audit_signer: Option<crate::audit::Signer>,
    /// The part of the prefecture this instance owns (`<service>_shard`; whole unless the service
    /// is [`Service::SHARDABLE`] and the setting is given).
    pub shard: kokuho_bus::Shard,
}

/// Settings by name (`business_date`, `identity_public_key`, `identity_keys`, …).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_string(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The setting parsed as `T` (`None` when not given), or an error naming the setting, what
    /// it should be and the value given.
    pub fn parsed<T: std::str::FromStr>(&self, key: &str, what: &str) -> anyhow::Result<Option<T>> {
        self.get(key).map(|v| v.parse().map_err(|_| anyhow::anyhow!("{key} is {what}, not {v:?}"))).transpose()
    }

    /// The setting, or an error that says how to give it: `--<key with dashes>`,
    /// `KOKUHO_<KEY>` or `<key>` in the config file.
    pub fn require(&self, key: &str, what: &str) -> anyhow::Result<&str> {
        self.get(key).with_context(|| {
            format!(
                "no {what}: give --{}, KOKUHO_{} or `{key}` in the config file",
                key.replace('_', "-"),
                key.to_uppercase()
            )
        })
    }
}

/// A service as the process runs it.
pub trait Service: Send + Sync + Sized + 'static {
    /// `kokuho serve <NAME>`; also its store directory and its NATS user.
    const NAME: &'static str;

    /// What it does on NATS: the streams it owns and reads, the shared subjects it appends to.
    /// Its NATS user's permissions are derived from this and nothing else (security.md S7).
    const NATS: kokuho_bus::Access;

    /// Its rules never look across municipalities, so it may run as shards, each owning part of
    /// them ([`kokuho_bus::shard`]; setting `<NAME>_shard = k/n`).
    const SHARDABLE: bool = false;

    /// Ensures the service's streams, opens its projections and starts its runners.
    fn build(env: Environment) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Adds the service's gRPC services to the process's router and returns their names (for
    /// the health service).
    fn routes(&self, routes: &mut RoutesBuilder) -> Vec<&'static str>;

    /// Stops the runners and waits for them.
    fn stop(self) -> impl Future<Output = ()> + Send;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How a registration builds its service.
pub type Build = fn(Environment) -> BoxFuture<anyhow::Result<Box<dyn Running>>>;

/// A running service of any kind.
pub trait Running: Send + Sync {
    fn name(&self) -> &'static str;
    fn routes(&self, routes: &mut RoutesBuilder) -> Vec<&'static str>;
    fn stop(self: Box<Self>) -> BoxFuture<()>;
    /// The service itself, for the tests and tools that reach into it.
    fn as_any(&self) -> &dyn Any;
}

impl<S: Service> Running for S {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn routes(&self, routes: &mut RoutesBuilder) -> Vec<&'static str> {
        Service::routes(self, routes)
    }

    fn stop(self: Box<Self>) -> BoxFuture<()> {
        Box::pin(Service::stop(*self))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One service the binary can run: its name and how to build it.
#[derive(Clone, Copy)]
pub struct Registration {
    pub name: &'static str,
    pub access: kokuho_bus::Access,
    pub shardable: bool,
    pub build: Build,
}

fn build<S: Service>(env: Environment) -> BoxFuture<anyhow::Result<Box<dyn Running>>> {
    Box::pin(async move {
        let service = S::build(env).await.with_context(|| format!("start {}", S::NAME))?;
        Ok(Box::new(service) as Box<dyn Running>)
    })
}

/// The registration of `S`.
pub const fn registration<S: Service>() -> Registration {
    Registration { name: S::NAME, access: S::NATS, shardable: S::SHARDABLE, build: build::<S> }
}

#[cfg(test)]
mod tests {
    use super::Settings;

    /// A setting is parsed when given, absent when not, and a bad value names the setting.
    #[test]
    fn parsed_settings() {
        let mut s = Settings::default();
        s.set("relay_in_flight", "12");
        s.set("kogaku_auto_confirm", "yes");
        assert_eq!(s.parsed::<usize>("relay_in_flight", "a number").unwrap(), Some(12));
        assert_eq!(s.parsed::<usize>("absent", "a number").unwrap(), None);
        let e = s.parsed::<bool>("kogaku_auto_confirm", "true or false").unwrap_err().to_string();
        assert_eq!(e, "kogaku_auto_confirm is true or false, not \"yes\"");
    }
}
