//! Prometheus metrics of the process (the official `prometheus-client`): one registry shared by
//! the services of the process, each registering collectors that compute their values at scrape
//! time from its own state; served as text on `GET /metrics` (axum, HTTP/1) when the process is
//! given a metrics address (`metrics_listen`; `kokuho up` picks a free loopback port).

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The process's metrics registry.
#[derive(Clone, Default)]
pub struct Metrics(Arc<Mutex<Registry>>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Adds a collector (called at every scrape).
    pub fn register(&self, collector: impl prometheus_client::collector::Collector) {
        if let Ok(mut r) = self.0.lock() {
            r.register_collector(Box::new(collector));
        }
    }

    /// Everything registered, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.0.lock()
            && prometheus_client::encoding::text::encode(&mut out, &r).is_err()
        {
            out.clear();
        }
        out
    }
}

/// One gauge family with one label: `name{label="value"} n` for each of `values`.
pub fn gauges(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[(String, i64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Gauge)?;
    for (value, n) in values {
        let labels = [(label, value.as_str())];
        ConstGauge::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge without labels.
pub fn gauge(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, n: i64) -> Result<(), std::fmt::Error> {
    let family = encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Gauge)?;
    ConstGauge::new(n).encode(family)
}

/// One counter without labels (`name_total n`; `name` without `_total`).
pub fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, n: u64) -> Result<(), std::fmt::Error> {
    let family = encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Counter)?;
    prometheus_client::metrics::counter::ConstCounter::new(n).encode(family)
}

/// One counter family with one label (`name_total{label="value"} n`; `name` without `_total`).
pub fn counters(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[(String, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, prometheus_client::metrics::MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, value.as_str())];
        prometheus_client::metrics::counter::ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Every runner of the process (projections and workflows of every service), by consumer:
/// `kokuho_events_applied_total`, `kokuho_dead_letters_total`, what its store commits cost
/// (`kokuho_store_written_keys_total`, `…_written_bytes_total`, `…_commit_microseconds_total`,
/// `kokuho_runner_step_microseconds_total`),
/// `kokuho_consumer_position`
/// (the last stream sequence applied) and `kokuho_consumer_lag` (messages its consumer has not
/// delivered or not had acknowledged: at its last group, and from the server every 5 s, so a
/// runner that stopped shows its lag growing).
#[derive(Debug)]
pub struct RunnerMetrics(pub kokuho_store::RunnerStats);

impl prometheus_client::collector::Collector for RunnerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let all = self.0.all();
        let of = |f: &dyn Fn(&kokuho_store::ConsumerStats) -> u64| -> Vec<(String, u64)> {
            all.iter().map(|(name, s)| (name.clone(), f(s))).collect()
        };
        let signed = |v: Vec<(String, u64)>| -> Vec<(String, i64)> {
            v.into_iter().map(|(k, n)| (k, i64::try_from(n).unwrap_or(i64::MAX))).collect()
        };
        counters(
            &mut encoder,
            "kokuho_events_applied",
            "Events applied since start",
            "consumer",
            &of(&|s| s.applied.load(Relaxed)),
        )?;
        counters(
            &mut encoder,
            "kokuho_dead_letters",
            "Events moved to the dead-letter stream since start (alert on any increase)",
            "consumer",
            &of(&|s| s.dead_letters.load(Relaxed)),
        )?;
        counters(
            &mut encoder,
            "kokuho_store_written_keys",
            "Keys written or deleted in the runner's store since start",
            "consumer",
            &of(&|s| s.written_keys.load(Relaxed)),
        )?;
        counters(
            &mut encoder,
            "kokuho_store_written_bytes",
            "Bytes of keys and values written to the runner's store since start",
            "consumer",
            &of(&|s| s.written_bytes.load(Relaxed)),
        )?;
        counters(
            &mut encoder,
            "kokuho_store_commit_microseconds",
            "Time the runner's store commits took since start",
            "consumer",
            &of(&|s| s.commit_micros.load(Relaxed)),
        )?;
        counters(
            &mut encoder,
            "kokuho_runner_step_microseconds",
            "Time the runner's steps (deciding its groups, before the commit) took since start",
            "consumer",
            &of(&|s| s.step_micros.load(Relaxed)),
        )?;
        gauges(
            &mut encoder,
            "kokuho_consumer_position",
            "The last stream sequence applied",
            "consumer",
            &signed(of(&|s| s.position.load(Relaxed))),
        )?;
        gauges(
            &mut encoder,
            "kokuho_consumer_lag",
            "Messages not yet delivered to the consumer or not yet acknowledged (0: caught up)",
            "consumer",
            &signed(of(&|s| s.pending.load(Relaxed))),
        )
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move { ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], metrics.render()) }
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
