//! The simulator's durable store (tree `midserver-records`): its records with the 個人番号
//! sealed at rest, by card and 枝番 and by partition, and every answered idempotency key.
//!
//! Keys: `r/<保険者番号>/<記号>/<番号>/<枝番:02>` → `StoredSubscriber`;
//! `p/<partition>/<保険者番号>/<記号>/<番号>/<枝番:02>` → present; `i/<idempotency key>` → the
//! `ApplyResponse` given (a key is applied once).

use kokuho_crypto::{AtRest, Vault};
use kokuho_ids::{Date, IndividualNumber};
use kokuho_midserver_domain::{Entry, Key};
use kokuho_proto::midserver::v1 as pb;
use kokuho_store::{Read, SledStore, Store as _, StoreError, Tx};
use prost::Message as _;

use crate::SimError;

pub(crate) struct Store {
    tree: SledStore,
    vault: Vault,
    /// Applies one at a time: each reads, decides and commits on what the last one left.
    lock: tokio::sync::Mutex<()>,
}

fn card(k: &Key) -> String {
    format!("{}/{}/{}/{:02}", k.insurer, k.symbol, k.number, k.branch)
}

fn record_key(k: &Key) -> Vec<u8> {
    format!("r/{}", card(k)).into_bytes()
}

fn partition_key(partition: &str, k: &Key) -> Vec<u8> {
    format!("p/{partition}/{}", card(k)).into_bytes()
}

fn applied_key(partition: &str) -> Vec<u8> {
    format!("a/{partition}").into_bytes()
}

fn applied(view: &dyn Read, partition: &str) -> Result<u64, StoreError> {
    Ok(kokuho_store::u64_of(view.get(&applied_key(partition))?))
}

fn done_key(idempotency: &str) -> Vec<u8> {
    format!("i/{idempotency}").into_bytes()
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(crate) fn key_of(s: &pb::Subscriber) -> Result<Key, SimError> {
    let branch = u8::try_from(s.branch).ok().filter(|b| (1..=99).contains(b));
    let branch = branch.ok_or_else(|| SimError::Invalid(format!("枝番 {} is not 1–99", s.branch)))?;
    if [&s.insurer, &s.symbol, &s.number].iter().any(|f| f.is_empty() || f.contains('/')) {
        return Err(SimError::Invalid("保険者番号, 記号 and 番号 are required (no '/')".into()));
    }
    Ok(Key { insurer: s.insurer.clone(), symbol: s.symbol.clone(), number: s.number.clone(), branch })
}

fn date(v: u32) -> Option<Date> {
    Date::from_yyyymmdd(v)
}

fn yyyymmdd(d: Option<Date>) -> u32 {
    d.map_or(0, Date::to_yyyymmdd)
}

/// A stored record as the domain's (the number stays sealed).
fn entry_of(s: pb::StoredSubscriber) -> Result<Entry<AtRest>, StoreError> {
    let sub = s.subscriber.ok_or_else(|| corrupt("a stored record without its subscriber"))?;
    Ok(Entry {
        partition: s.partition,
        individual_number: AtRest { key_id: s.key_id, nonce: s.nonce, ciphertext: s.ciphertext },
        birth: date(sub.birth_date).ok_or_else(|| corrupt("birth date"))?,
        acquired: date(sub.acquired_on).ok_or_else(|| corrupt("acquired"))?,
        lost: date(sub.lost_on),
        pref_acquired: date(sub.pref_acquired_on),
        pref_lost: date(sub.pref_lost_on),
        name: sub.name,
        kana: sub.kana,
        sex: sub.sex,
    })
}

/// The record as answered or listed: never with the number.
pub(crate) fn subscriber_of(k: &Key, e: &Entry<AtRest>) -> pb::Subscriber {
    pb::Subscriber {
        insurer: k.insurer.clone(),
        symbol: k.symbol.clone(),
        number: k.number.clone(),
        branch: u32::from(k.branch),
        individual_number: String::new(),
        name: e.name.clone(),
        kana: e.kana.clone(),
        birth_date: e.birth.to_yyyymmdd(),
        sex: e.sex.clone(),
        acquired_on: e.acquired.to_yyyymmdd(),
        lost_on: yyyymmdd(e.lost),
        pref_acquired_on: yyyymmdd(e.pref_acquired),
        pref_lost_on: yyyymmdd(e.pref_lost),
    }
}

impl Store {
    pub(crate) fn new(tree: SledStore, vault: Vault) -> Self {
        Self { tree, vault, lock: tokio::sync::Mutex::new(()) }
    }

    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// A write set over the committed records: one batch of Applies, decided one after another,
    /// committed once ([`Store::commit`]).
    pub(crate) fn tx(&self) -> Tx<'_> {
        Tx::new(&self.tree)
    }

    /// The committed records (eligibility reads them).
    pub(crate) fn view(&self) -> &dyn Read {
        &self.tree
    }

    /// Commits a batch atomically and durably (one fsync).
    pub(crate) fn commit(&self, tx: Tx<'_>) -> Result<(), StoreError> {
        self.tree.commit(tx.into_writes())
    }

    /// The answer given to `idempotency` before, if any.
    pub(crate) fn answered(&self, view: &dyn Read, idempotency: &str) -> Result<Option<pb::ApplyResponse>, StoreError> {
        match view.get(&done_key(idempotency))? {
            Some(b) => Ok(Some(pb::ApplyResponse::decode(b.as_slice()).map_err(corrupt)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn entry(&self, view: &dyn Read, k: &Key) -> Result<Option<Entry<AtRest>>, StoreError> {
        match view.get(&record_key(k))? {
            Some(b) => Ok(Some(entry_of(pb::StoredSubscriber::decode(b.as_slice()).map_err(corrupt)?)?)),
            None => Ok(None),
        }
    }

    /// The record a request carries, its number sealed for the store (the number is checked:
    /// 12 digits with a valid check digit).
    pub(crate) fn incoming(&self, partition: &str, s: &pb::Subscriber, k: &Key) -> Result<Entry<AtRest>, SimError> {
        let number = IndividualNumber::parse(&s.individual_number)
            .map_err(|_| SimError::Invalid("個人番号 is not a valid number".into()))?;
        let sealed =
            self.vault.seal_at_rest(&number, card(k).as_bytes()).map_err(|e| SimError::Internal(e.to_string()))?;
        let invalid = |what: &str| SimError::Invalid(format!("{what} is not a date (YYYYMMDD)"));
        Ok(Entry {
            partition: partition.to_string(),
            individual_number: sealed,
            name: s.name.clone(),
            kana: s.kana.clone(),
            birth: date(s.birth_date).ok_or_else(|| invalid("生年月日"))?,
            sex: s.sex.clone(),
            acquired: date(s.acquired_on).ok_or_else(|| invalid("資格取得年月日"))?,
            lost: date(s.lost_on),
            pref_acquired: date(s.pref_acquired_on),
            pref_lost: date(s.pref_lost_on),
        })
    }

    /// Records one Apply in the batch: the record after it (`None`: deleted; the outer `None`:
    /// unchanged) and the answer under its key.
    pub(crate) fn record(
        &self,
        tx: &mut Tx<'_>,
        partition: &str,
        idempotency: &str,
        k: &Key,
        after: Option<Option<&Entry<AtRest>>>,
        answer: &pb::ApplyResponse,
    ) -> Result<(), StoreError> {
        tx.put(done_key(idempotency), answer.encode_to_vec());
        if answer.accepted {
            let applied = applied(tx, partition)? + 1;
            tx.put(applied_key(partition), applied.to_be_bytes().to_vec());
        }
        match after {
            None => {}
            Some(Some(e)) => {
                let stored = pb::StoredSubscriber {
                    partition: e.partition.clone(),
                    subscriber: Some(subscriber_of(k, e)),
                    key_id: e.individual_number.key_id.clone(),
                    nonce: e.individual_number.nonce.clone(),
                    ciphertext: e.individual_number.ciphertext.clone(),
                };
                tx.put(record_key(k), stored.encode_to_vec());
                tx.put(partition_key(&e.partition, k), Vec::new());
            }
            Some(None) => {
                if let Some(before) = self.entry(tx, k)? {
                    tx.delete(partition_key(&before.partition, k));
                }
                tx.delete(record_key(k));
            }
        }
        Ok(())
    }

    /// Apply calls the partition applied (each key once).
    pub(crate) fn applied(&self, partition: &str) -> Result<u64, StoreError> {
        applied(&self.tree, partition)
    }

    /// Every record of a partition, without numbers.
    pub(crate) fn partition(&self, partition: &str) -> Result<Vec<pb::Subscriber>, StoreError> {
        let prefix = format!("p/{partition}/");
        let mut out = Vec::new();
        for (key, _) in self.tree.scan_prefix(prefix.as_bytes())? {
            let tail = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let Some(b) = self.tree.get(format!("r/{tail}").as_bytes())? else { continue };
            let stored = pb::StoredSubscriber::decode(b.as_slice()).map_err(corrupt)?;
            let mut s = stored.subscriber.ok_or_else(|| corrupt("a stored record without its subscriber"))?;
            s.individual_number.clear();
            out.push(s);
        }
        Ok(out)
    }
}
