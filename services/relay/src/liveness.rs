//! No silent stalls: each partition's liveness (last submission, last answer, records held,
//! operations undelivered and the age of the oldest, records waiting, rejections, the R05
//! alert), for `RelayService.Status` and as Prometheus metrics.

use std::sync::{Arc, Mutex};

use kokuho_proto::relay::v1 as pb;
use kokuho_runtime::metrics::{gauge, gauges};
use kokuho_store::StoreError;
use prometheus_client::encoding::DescriptorEncoder;

use crate::deliver::Health;
use crate::plan::Context;
use crate::{inputs, state};

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// One partition's liveness now.
pub(crate) fn partition_status(c: &Context, municipality: &str, now: i64) -> Result<pb::PartitionStatus, StoreError> {
    let p = state::partition(c.ledger.store(), municipality)?;
    Ok(pb::PartitionStatus {
        municipality: municipality.to_string(),
        last_submission_at: inputs::last_submission(c.inputs.cards.store(), municipality)?,
        last_delivery_at: p.last_delivery,
        undelivered: p.undelivered,
        lag_seconds: if p.undelivered > 0 { (now - p.oldest).max(0) } else { 0 },
        waiting: p.waiting,
        records: p.records,
        stalled: p.stalled.is_some(),
        delivered: p.delivered,
        rejected: p.rejected,
        waiting_records: Vec::new(),
        waiting_next: String::new(),
    })
}

/// A gauge family: name, help, value per municipality.
type Family = (&'static str, &'static str, Vec<(String, i64)>);

/// relay's metrics, computed at every scrape from the ledger.
pub(crate) struct Collector {
    pub(crate) context: Arc<Context>,
    pub(crate) health: Arc<Mutex<Health>>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("relay::liveness::Collector")
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let now = now_secs();
        let mut partitions = Vec::new();
        for m in self.context.part.municipalities(&self.context.registry) {
            match partition_status(&self.context, &m, now) {
                Ok(p) => partitions.push(p),
                Err(e) => tracing::warn!(error = %e, "relay metrics: the ledger could not be read"),
            }
        }
        let of = |f: &dyn Fn(&pb::PartitionStatus) -> i64| -> Vec<(String, i64)> {
            partitions.iter().map(|p| (p.municipality.clone(), f(p))).collect()
        };
        let families: [Family; 8] = [
            (
                "kokuho_relay_undelivered",
                "Operations planned and not yet answered by the intermediate server",
                of(&|p| p.undelivered as i64),
            ),
            ("kokuho_relay_lag_seconds", "Age of the oldest undelivered operation (relay lag)", of(&|p| p.lag_seconds)),
            (
                "kokuho_relay_waiting",
                "Records waiting (R01 no 個人番号, R02 held, R03 rejected, R04 枝番 exhausted)",
                of(&|p| p.waiting as i64),
            ),
            ("kokuho_relay_records", "Records the partition holds as relay planned them", of(&|p| p.records as i64)),
            ("kokuho_relay_stalled", "1 while the R05 stall alert is open", of(&|p| i64::from(p.stalled))),
            (
                "kokuho_relay_last_submission_timestamp_seconds",
                "Unix time of the municipality's last accepted records",
                of(&|p| p.last_submission_at),
            ),
            (
                "kokuho_relay_last_delivery_timestamp_seconds",
                "Unix time of the server's last answer for the partition",
                of(&|p| p.last_delivery_at),
            ),
            ("kokuho_relay_rejected", "Operations the server rejected (R03)", of(&|p| p.rejected as i64)),
        ];
        for (name, help, values) in &families {
            gauges(&mut encoder, name, help, "municipality", values)?;
        }
        let health = self.health.lock().map(|h| h.clone()).unwrap_or_default();
        gauge(
            &mut encoder,
            "kokuho_relay_server_reachable",
            "1 if the last call to the intermediate server reached it",
            i64::from(health.reachable),
        )?;
        gauge(
            &mut encoder,
            "kokuho_relay_backing_off",
            "Persons whose operation waits to be retried",
            health.backing_off as i64,
        )
    }
}
