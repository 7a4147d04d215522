//! Who acts (issue 13, high availability): two instances of a service may run; both keep their
//! projections, only the holder of the service's lease runs its workflows. The lease is a key
//! of the NATS key-value bucket `KOKUHO_LEASES` (`$KV.KOKUHO_LEASES.<service>`), created with a
//! compare-and-set and refreshed with one; the bucket's entries expire after their TTL, so when
//! the holder dies its lease lapses and a standby takes it. A second instance that acts by
//! mistake (a holder that lost its lease and has not noticed yet) is still safe: every decision
//! is appended with an expected last sequence, so one of the two loses the race.

use std::time::Duration;

use async_nats::jetstream::kv;
use tokio::sync::watch;

use crate::{Bus, BusError, BusErrorKind};

/// The bucket of the leases.
pub const BUCKET: &str = "KOKUHO_LEASES";

impl Bus {
    /// Creates the lease bucket (the admin, with the streams) if it is not there; a lease lapses
    /// `ttl` after its holder's last refresh.
    pub async fn ensure_leases(&self, ttl: Duration) -> Result<(), BusError> {
        if self.js.get_key_value(BUCKET).await.is_ok() {
            return Ok(());
        }
        self.js
            .create_key_value(kv::Config {
                bucket: BUCKET.to_string(),
                description: "Who acts for each service (one holder; lapses when not refreshed)".to_string(),
                history: 1,
                max_age: ttl,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::new(BusErrorKind::Config, "create the lease bucket", e))?;
        Ok(())
    }

    /// Keeps trying to hold `service`'s lease as `holder`, and says on the returned channel
    /// whether it holds it now. Refreshed every `every` (a third of the bucket's TTL is right);
    /// stops when the sender side is dropped with the returned task.
    pub async fn hold_lease(
        &self,
        service: &str,
        holder: String,
        every: Duration,
    ) -> Result<(watch::Receiver<bool>, tokio::task::JoinHandle<()>), BusError> {
        let store = self
            .js
            .get_key_value(BUCKET)
            .await
            .map_err(|e| BusError::new(BusErrorKind::Config, "open the lease bucket", e))?;
        let (tx, rx) = watch::channel(false);
        let key = service.to_string();
        let task = tokio::spawn(async move {
            let mut revision: Option<u64> = None;
            loop {
                let held = match revision {
                    // Still ours if nobody wrote since our last write.
                    Some(r) => store.update(&key, holder.clone().into(), r).await.ok(),
                    // Ours if there is none (never held, or lapsed), or if it names us (this
                    // instance restarted: it takes its own lease back at once).
                    None => match store.create(&key, holder.clone().into()).await {
                        Ok(r) => Some(r),
                        Err(_) => match store.entry(&key).await {
                            Ok(Some(e)) if e.value.as_ref() == holder.as_bytes() => {
                                store.update(&key, holder.clone().into(), e.revision).await.ok()
                            }
                            _ => None,
                        },
                    },
                };
                revision = held;
                if tx.send(held.is_some()).is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        });
        Ok((rx, task))
    }

    /// Gives `service`'s lease up if `holder` holds it (a graceful stop: a standby takes over at
    /// once instead of after the TTL).
    pub async fn release_lease(&self, service: &str, holder: &str) -> Result<(), BusError> {
        let store = self
            .js
            .get_key_value(BUCKET)
            .await
            .map_err(|e| BusError::new(BusErrorKind::Config, "open the lease bucket", e))?;
        if let Ok(Some(e)) = store.entry(service).await
            && e.value.as_ref() == holder.as_bytes()
        {
            store
                .delete_expect_revision(service, Some(e.revision))
                .await
                .map_err(|e| BusError::new(BusErrorKind::Unavailable, "release a lease", e))?;
        }
        Ok(())
    }
}
