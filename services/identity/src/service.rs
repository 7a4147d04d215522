//! identity's synchronous operations: lookups (own municipality only), the review queue (I6)
//! and the release of a number to relay (R6) with its hash-chained audit entry (S8).

use std::sync::Arc;

use kokuho_bus::event;
use kokuho_bus::{Append, Bus, BusErrorKind};
use kokuho_crypto::Vault;
use kokuho_identity_domain::{self as domain, Person};
use kokuho_ids::codes::{AlertState, InputKind, Kubun};
use kokuho_ids::{LocalGovCode, MuniInsuredId, PrefInsuredId};
use kokuho_proto::identity::v1 as pb;
use kokuho_runtime::audit;
use kokuho_store::{ProjectionHandle, Read};
use prost::Message as _;

use crate::state::{PERSONS, case_key, index_key, muni_count_key, muni_id_key, person_key, resident_key, u64_of};
use crate::{Event, Events, IDENTITY, PATIENCE, convert};

/// identity's one error type; `kokuho_runtime::errors::status` turns it into the answer.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
    /// More number releases than the limit allows (S5): refused, with an alert.
    #[error("{0}")]
    Exhausted(String),
}

impl kokuho_runtime::errors::ServiceError for IdentityError {
    fn kind(&self) -> kokuho_runtime::errors::Kind {
        use kokuho_runtime::errors::Kind;
        match self {
            IdentityError::NotFound(_) => Kind::NotFound,
            IdentityError::Invalid(_) => Kind::Invalid,
            IdentityError::Unavailable(_) => Kind::Unavailable,
            IdentityError::Internal(_) => Kind::Internal,
            IdentityError::Exhausted(_) => Kind::TooLarge,
        }
    }
}

impl From<kokuho_store::StoreError> for IdentityError {
    fn from(e: kokuho_store::StoreError) -> Self {
        internal(e)
    }
}

fn unavailable(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Unavailable(e.to_string())
}
fn internal(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Internal(e.to_string())
}

pub use kokuho_identity_domain::Action;

/// The word of an action in the log and in messages.
pub(crate) fn action_word(a: Action) -> &'static str {
    match a {
        Action::Link => "link",
        Action::Relink => "relink",
        Action::Reject => "reject",
    }
}

#[derive(Clone)]
pub struct Identity {
    pub(crate) bus: Bus,
    pub(crate) state: ProjectionHandle,
    pub(crate) vault: Arc<Vault>,
    /// identity's audit chains: its accesses and the number releases (S8).
    pub(crate) auditor: audit::Auditor,
    pub(crate) audit_keys: Arc<audit::AuditKeys>,
    pub(crate) releases: Arc<ReleaseLimit>,
}

/// How many 個人番号 may leave per minute (S5: a stolen relay credential cannot drain the
/// register at once), and what has left and been refused, for the metrics.
pub(crate) struct ReleaseLimit {
    limiter: governor::DefaultDirectRateLimiter,
    per_minute: u32,
    released: std::sync::atomic::AtomicU64,
    refused: std::sync::atomic::AtomicU64,
}

impl ReleaseLimit {
    pub(crate) fn per_minute(n: u32) -> Self {
        let n = std::num::NonZeroU32::new(n.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
        Self {
            limiter: governor::RateLimiter::direct(governor::Quota::per_minute(n)),
            per_minute: n.get(),
            released: Default::default(),
            refused: Default::default(),
        }
    }

    /// Takes `n` releases from the allowance, or refuses them all (and alerts).
    fn take(&self, n: usize) -> Result<(), IdentityError> {
        use std::sync::atomic::Ordering::Relaxed;
        let ok = std::num::NonZeroU32::new(n as u32).is_none_or(|n| matches!(self.limiter.check_n(n), Ok(Ok(()))));
        if ok {
            self.released.fetch_add(n as u64, Relaxed);
            return Ok(());
        }
        self.refused.fetch_add(n as u64, Relaxed);
        tracing::error!(
            asked = n,
            per_minute = self.per_minute,
            "ALERT: number releases over the limit refused (a relay gone wrong, or its credential in the wrong hands)"
        );
        Err(IdentityError::Exhausted(format!("more than {} number releases a minute; refused", self.per_minute)))
    }
}

impl std::fmt::Debug for ReleaseLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseLimit").field("per_minute", &self.per_minute).finish_non_exhaustive()
    }
}

/// `kokuho_identity_releases_allowed_total` and `kokuho_identity_releases_refused_total` (an
/// alert rule fires on any increase of the second).
#[derive(Debug)]
pub(crate) struct ReleaseMetrics(pub(crate) Arc<ReleaseLimit>);

impl prometheus_client::collector::Collector for ReleaseMetrics {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let (released, refused) = (self.0.released.load(Relaxed), self.0.refused.load(Relaxed));
        kokuho_runtime::metrics::counter(
            &mut encoder,
            "kokuho_identity_releases_allowed",
            "Number releases asked for within the limit since start",
            released,
        )?;
        kokuho_runtime::metrics::counter(
            &mut encoder,
            "kokuho_identity_releases_refused",
            "Number releases refused over the limit since start (alert when it grows)",
            refused,
        )
    }
}

impl Identity {
    async fn catch_up(&self) -> Result<(), IdentityError> {
        let last = self.bus.last_seq(IDENTITY.name).await.map_err(unavailable)?;
        if self.state.wait_for(last, PATIENCE).await { Ok(()) } else { Err(unavailable("identity is catching up")) }
    }

    /// The business date now: the last calendar fact of the intake stream.
    async fn business_date(&self) -> Result<u32, IdentityError> {
        let calendar = kokuho_intake_contract::CALENDAR_SUBJECT;
        let Some((_, bytes)) =
            self.bus.last_message(kokuho_intake_contract::STREAM.name, calendar).await.map_err(unavailable)?
        else {
            return Err(IdentityError::Invalid("the log has no business date yet".into()));
        };
        match convert::intake_input(&bytes).map_err(internal)? {
            convert::IntakeInput::Calendar { date, .. } => Ok(date),
            convert::IntakeInput::Chunk(_) | convert::IntakeInput::Nothing => {
                Err(internal("calendar subject holds another event"))
            }
        }
    }

    /// Resolves a held record. Returns the person it was linked to (empty for a rejection).
    pub async fn resolve(
        &self,
        case_id: &str,
        action: Action,
        reason: &str,
        operator: &str,
    ) -> Result<String, IdentityError> {
        if reason.trim().is_empty() || operator.trim().is_empty() {
            return Err(IdentityError::Invalid("a decision needs the operator and a reason".into()));
        }
        loop {
            let expected = self.bus.last_seq(IDENTITY.name).await.map_err(unavailable)?;
            if !self.state.wait_for(expected, PATIENCE).await {
                return Err(unavailable("identity is catching up"));
            }
            let store = self.state.store();
            let held = store
                .get(&case_key(case_id))
                .map_err(internal)?
                .ok_or_else(|| IdentityError::NotFound(format!("no held record {case_id}")))?;
            let held = pb::LinkHeld::decode(held.as_slice()).map_err(internal)?;
            let date = self.business_date().await?;
            let (resolved, kept) = self.decide(store, &held, action, reason, operator, date)?;
            let pref = resolved.links.first().map(|l| l.pref_id.clone()).unwrap_or_default();
            let envelope = event::envelope::<Events>(
                Event::CaseResolved(resolved),
                kokuho_ids::receipt_municipality(case_id),
                case_id,
                "",
            );
            let mut batch: Vec<Append> = crate::link::kept_then(kept, envelope)
                .into_iter()
                .map(|(subject, envelope)| Append::event(subject, &envelope))
                .collect();
            batch[0].expected_last_seq = Some(expected);
            match self.bus.append_atomic(batch).await {
                Ok(a) => {
                    self.state.wait_for(a.seq, PATIENCE).await;
                    tracing::info!(case = %case_id, action = action_word(action), "Held record resolved");
                    return Ok(pref);
                }
                Err(e) if e.kind() == BusErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    fn decide(
        &self,
        store: &dyn Read,
        held: &pb::LinkHeld,
        action: Action,
        reason: &str,
        operator: &str,
        date: u32,
    ) -> Result<(pb::CaseResolved, pb::NumbersKept), IdentityError> {
        let muni = kokuho_ids::receipt_municipality(&held.case_id).to_string();
        let record = held.record.clone().unwrap_or_default();
        let receipt = held.case_id.rsplit_once(':').map(|(r, _)| r.to_string()).unwrap_or_default();
        let mut out = pb::CaseResolved {
            case_id: held.case_id.clone(),
            action: action_word(action).into(),
            reason: reason.into(),
            operator: operator.into(),
            decided_on: date,
            municipality: muni.clone(),
            ..Default::default()
        };
        let mut kept = pb::NumbersKept::default();
        // Look up the facts of the person the action names, then let the domain decide (I6).
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        let sealed = crate::state::case_number(store, &held.case_id).map_err(internal)?;
        let number = match (action, &sealed) {
            (Action::Relink, None) => return Err(IdentityError::Invalid("the record has no 個人番号".into())),
            (Action::Relink, Some(sealed)) => Some(
                self.vault
                    .open_at_rest(&convert::at_rest(sealed), &convert::case_context(&held.case_id))
                    .map_err(internal)?,
            ),
            _ => None,
        };
        let mut facts = domain::CaseFacts {
            held_against: held.pref_id.clone(),
            number_owner: match &number {
                Some(n) => store.get(&index_key(&self.vault.index(n)))?.map(text),
                None => None,
            },
            insured: convert::is_insured(&record),
            resident_person: store.get(&resident_key(&muni, &record.resident_number))?.map(text),
            muni_id: None,
        };
        if let Some(domain::Target::Known(id)) = domain::target_of(action, &facts) {
            facts.muni_id = store.get(&muni_id_key(&muni, &id))?.map(text);
        }
        let decision = domain::resolve(action, &facts);
        let code = LocalGovCode::parse(&muni).map_err(internal)?;
        let pref_id = match decision.target {
            None => None,
            Some(domain::Target::Known(id)) => Some(id),
            Some(domain::Target::New) => {
                let number = number.as_ref().ok_or_else(|| internal("a new person without a number"))?;
                let serial = u64_of(store.get(PERSONS)?) + 1;
                let pref_id = PrefInsuredId::new(code.prefecture(), serial).map_err(internal)?.to_string();
                kept.persons.push(convert::person_number(&self.vault, &pref_id, number).map_err(internal)?);
                out.persons.push(pb::PersonRegistered {
                    has_number: true,
                    pref_id: pref_id.clone(),
                    birth_date: record.birth_date,
                    sex: record.sex.clone(),
                    name: record.name.clone(),
                    kana: record.kana.clone(),
                });
                Some(pref_id)
            }
        };
        if let Some(pref_id) = &pref_id {
            let mut muni_id = decision.muni_id.clone();
            if decision.assign {
                let serial = u64_of(store.get(&muni_count_key(&muni))?) + 1;
                let id = MuniInsuredId::new(code, serial).map_err(internal)?.to_string();
                out.ids.push(pb::MunicipalIdAssigned {
                    pref_id: pref_id.clone(),
                    municipality: muni.clone(),
                    muni_id: id.clone(),
                    resident_number: record.resident_number.clone(),
                    assigned_on: date,
                });
                muni_id = Some(id);
            }
            if let (Some(correction), Some(id)) = (decision.ri, &muni_id) {
                out.rows.push(convert::ri(&record.resident_number, id, date, correction));
            }
            out.links.push(pb::RecordLinked {
                pref_id: pref_id.clone(),
                muni_id: muni_id.unwrap_or_default(),
                line: held.line,
                record: Some(record.clone()),
                receipt: receipt.clone(),
            });
        }
        // The C row closes (状態 2): same 区分, コード, 宛名番号 and fields 10–12 as it opened.
        out.rows.push(kokuho_outbox::wire(
            &kokuho_rows::Re {
                kubun: Kubun::Conflict,
                code: domain::Conflict::parse(&held.code)
                    .ok_or_else(|| internal(format!("held record {} with code {:?}", held.case_id, held.code)))?
                    .code(),
                receipt,
                file_kind: Some(InputKind::Persons),
                line: Some(held.line),
                resident: record.resident_number.clone(),
                field: "個人番号".into(),
                message: format!("保留を解消しました（{}）", action_label(action)),
                counterpart: String::new(),
                counterpart_start: None,
                counterpart_end: None,
                state: AlertState::Closed,
            }
            .into(),
        ));
        Ok((out, kept))
    }

    /// R6: the number of `pref_id`, for relay. The release is audited before the number leaves.
    pub async fn release(
        &self,
        pref_id: &str,
        purpose: &str,
        caller: &str,
    ) -> Result<kokuho_ids::IndividualNumber, IdentityError> {
        let mut released = self.release_all(&[(pref_id.to_string(), purpose.to_string())], caller).await?;
        match released.pop() {
            Some(Ok(number)) => Ok(number),
            Some(Err(why)) => Err(IdentityError::NotFound(why)),
            None => Err(IdentityError::Internal("a release answered nothing".into())),
        }
    }

    /// R6: the numbers of many persons, for relay, in the order asked (a person without a number,
    /// or unknown, gets why instead). Every release is an entry of the audit chain; all are
    /// appended, as one atomic batch, before any number leaves.
    pub async fn release_all(
        &self,
        asked: &[(String, String)],
        caller: &str,
    ) -> Result<Vec<Result<kokuho_ids::IndividualNumber, String>>, IdentityError> {
        if asked.iter().any(|(_, purpose)| purpose.trim().is_empty()) {
            return Err(IdentityError::Invalid("a release needs its purpose".into()));
        }
        if asked.len() > 1_000 {
            return Err(IdentityError::Invalid("at most 1,000 releases in one call".into()));
        }
        self.releases.take(asked.len())?;
        self.catch_up().await?;
        let store = self.state.store();
        let released_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let mut out = Vec::with_capacity(asked.len());
        let mut entries = Vec::new();
        for (pref_id, purpose) in asked {
            if store.get(&person_key(pref_id)).map_err(internal)?.is_none() {
                out.push(Err(format!("no person {pref_id}")));
                continue;
            }
            let Some(sealed) = crate::state::number_of(store, pref_id).map_err(internal)?.and_then(|k| k.number) else {
                out.push(Err(format!("{pref_id} has no 個人番号 yet")));
                continue;
            };
            let number = self
                .vault
                .open_at_rest(&convert::at_rest(&sealed), &convert::person_context(pref_id))
                .map_err(internal)?;
            entries.push(kokuho_proto::audit::v1::NumberReleased {
                pref_id: pref_id.clone(),
                purpose: purpose.clone(),
                caller: caller.into(),
                released_at,
                ..Default::default()
            });
            out.push(Ok(number));
        }
        // The releases are in the audit chain before any number leaves.
        self.auditor.releases(entries).await.map_err(unavailable)?;
        Ok(out)
    }

    /// The head of every audit chain (S8 anchors).
    pub async fn audit_heads(&self) -> Result<pb::AuditHeadsResponse, IdentityError> {
        let heads = audit::heads(&self.bus).await.map_err(unavailable)?;
        Ok(pb::AuditHeadsResponse { heads: heads.into_iter().map(anchor).collect() })
    }

    /// Reads the audit log and checks its chains (security.md S8): every service's access
    /// chain and the release chain, their signatures, and the anchors kept outside NATS.
    pub async fn verify_audit(&self, anchors: Vec<pb::AuditAnchor>) -> Result<pb::VerifyAuditResponse, IdentityError> {
        let anchors: Vec<audit::Anchor> = anchors
            .into_iter()
            .map(|a| audit::Anchor { subject: a.subject, position: a.position, seq: a.seq, hash: a.hash })
            .collect();
        let reports = audit::verify_all(&self.bus, &self.audit_keys, &anchors).await.map_err(unavailable)?;
        let chains: Vec<pb::AuditChain> = reports
            .into_iter()
            .map(|r| pb::AuditChain {
                subject: r.subject,
                entries: r.entries,
                intact: r.broken.is_none(),
                broken_at: r.broken.as_ref().map_or(0, |b| b.0),
                reason: r.broken.map(|b| b.1).unwrap_or_default(),
                foreign: r.foreign,
                head: r.head.map(anchor),
            })
            .collect();
        let first_broken = chains.iter().find(|c| !c.intact);
        Ok(pb::VerifyAuditResponse {
            entries: chains.iter().map(|c| c.entries).sum(),
            intact: first_broken.is_none(),
            broken_at: first_broken.map_or(0, |c| c.broken_at),
            reason: first_broken.map(|c| format!("{}: {}", c.subject, c.reason)).unwrap_or_default(),
            chains,
        })
    }

    pub fn person(&self, pref_id: &str) -> Result<Option<Person>, IdentityError> {
        let Some(b) = self.state.store().get(&person_key(pref_id)).map_err(internal)? else { return Ok(None) };
        let p = pb::PersonRegistered::decode(b.as_slice()).map_err(internal)?;
        Ok(Some(Person {
            pref_id: p.pref_id,
            number: None,
            birth: p.birth_date,
            sex: p.sex,
            name: p.name,
            kana: p.kana,
            holders: Default::default(),
        }))
    }
}

fn action_label(a: Action) -> &'static str {
    match a {
        Action::Link => "連携",
        Action::Relink => "再連携",
        Action::Reject => "不採用",
    }
}

fn anchor(a: audit::Anchor) -> pb::AuditAnchor {
    pb::AuditAnchor { subject: a.subject, position: a.position, seq: a.seq, hash: a.hash }
}

#[cfg(test)]
mod release_limit_tests {
    use super::*;

    /// S5: releases past the allowance are refused whole and counted; within it they pass.
    #[test]
    fn s5_releases_past_the_limit_are_refused_and_counted() {
        use std::sync::atomic::Ordering::Relaxed;
        let limit = ReleaseLimit::per_minute(3);
        assert!(limit.take(2).is_ok());
        assert!(matches!(limit.take(2), Err(IdentityError::Exhausted(_))));
        assert!(limit.take(1).is_ok(), "the allowance left is still there");
        assert!(limit.take(0).is_ok());
        assert_eq!((limit.released.load(Relaxed), limit.refused.load(Relaxed)), (3, 2));
    }
}
