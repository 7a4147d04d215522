//! A candidate over time (rules.md H1, H3–H5, K3, K4): its facts now, the RK row last sent,
//! its decision, and what a change sends to the receiving municipality B.
//!
//! - [`number`]: the 継続候補番号, a function of the candidate's key alone (so every arrival
//!   order gives the same number, T2).
//! - [`decide`], [`reverse`], [`auto_confirms`]: B's decision (H3, H4), the operator's
//!   reversal, and auto-confirmation of reason 11 (a deployment setting, off by default).
//! - [`settle`]: H5 and K3/K4 — RK 訂正 0/1/2 before the decision, A08 after it, RG whenever
//!   the handover changes.

use std::collections::BTreeSet;

use kokuho_ids::Date;
use kokuho_ids::codes::{
    AlertState, AnomalyCode, ContinuationDecision, ContinuationReason, Correction, FormerHouseholder, Kubun,
};
use kokuho_rows::{Re, Rg, Rk, Row};
use sha2::{Digest as _, Sha256};

use crate::months::Handover;
use crate::{CandidateKey, PersonId, Recommendation};

/// 項目名 of E011 and A08 rows (formats.md).
pub const NUMBER_FIELD: &str = "継続候補番号";

/// What RK fields 7–11 say of a candidate now (H2, K2), with the persons that explain them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub former_householder: FormerHouseholder,
    /// The movers (persons), RK field 8 is their number.
    pub movers: BTreeSet<PersonId>,
    pub recommendation: Recommendation,
    /// The H2 rule (1–6) that decided the recommendation.
    pub rule: u8,
    /// K2: |C(h_A) ∩ [M − 11, M]|.
    pub kogaku_count: u32,
    /// hh_A (householder of h_A on D − 1), as a person, if known.
    pub former_householder_person: Option<PersonId>,
    /// hh_B (householder of h_B on D), as a person, if known.
    pub householder_person: Option<PersonId>,
}

/// RK fields 7–11 as a row carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RkFields {
    pub former_householder: FormerHouseholder,
    pub movers: u32,
    pub recommendation: Recommendation,
    pub kogaku_count: u32,
}

impl RkFields {
    /// Fields 7–10: what a decision rests on (a change after it raises A08; field 11 is K4's).
    fn before_count(&self) -> (FormerHouseholder, u32, Recommendation) {
        (self.former_householder, self.movers, self.recommendation)
    }
}

impl Facts {
    pub fn rk_fields(&self) -> RkFields {
        RkFields {
            former_householder: self.former_householder,
            movers: self.movers.len() as u32,
            recommendation: self.recommendation,
            kogaku_count: self.kogaku_count,
        }
    }
}

/// The RK row last sent for a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentRk {
    /// A row (訂正 0 or 1) with these fields.
    Row(RkFields),
    /// A 取消 (訂正 2) of the row with these fields.
    Withdrawn(RkFields),
}

/// Who decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    /// A KT record of B's submission.
    File { receipt: String, line: u32 },
    /// `kokuho decide` (B over the API).
    Api,
    /// Auto-confirmation of a reason 11 candidate (H3, when the deployment switches it on).
    Auto,
    /// An operator's reversal, with why (audited).
    Operator { operator: String, reason: String },
}

/// A decision (H3): final for the municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub decision: ContinuationDecision,
    /// 確定年月日: the business date of the decision.
    pub on: Date,
    pub by: DecidedBy,
    /// RK fields 7–11 the decision was made on (A08 compares 7–10 with them).
    pub fields: RkFields,
}

/// A candidate as kogaku keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: CandidateKey,
    /// 継続候補番号.
    pub number: String,
    /// Its facts now; `None` once it no longer exists (its movers are no longer paired so).
    pub facts: Option<Facts>,
    pub sent: Option<SentRk>,
    pub decided: Option<Decided>,
    /// A08 is open: fields 7–10 changed after the decision, or the candidate disappeared.
    pub changed: bool,
    /// The RG row last sent (K3, K4).
    pub reported: Option<Rg>,
}

impl Candidate {
    pub fn new(key: CandidateKey, number: String) -> Self {
        Self { key, number, facts: None, sent: None, decided: None, changed: false, reported: None }
    }

    /// Confirmed 継続: h_B inherits from h_A (K3).
    pub fn continues(&self) -> bool {
        self.decided.as_ref().is_some_and(|d| d.decision == ContinuationDecision::Continue)
    }
}

/// The 継続候補番号 of a candidate: 15 digits from a SHA-256 of its key, so it depends on the
/// key alone (T2), whatever arrived first. Numbers are unique per receiving municipality;
/// `attempt` > 0 gives the next number to try should one be taken (never seen in practice:
/// about one in 10^9 for a municipality with 50,000 candidates).
pub fn number(key: &CandidateKey, attempt: u32) -> String {
    let text = format!(
        "{}/{}/{}/{}/{}/{attempt}",
        key.group.to,
        key.group.household,
        key.group.moved_in_on.to_yyyymmdd(),
        key.from,
        key.from_household
    );
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 10^14 ..= 10^15 − 1: always 15 digits, never a leading zero.
    (100_000_000_000_000 + u64::from_be_bytes(first) % 900_000_000_000_000).to_string()
}

/// Why a decision is refused (E011).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No candidate with that number for the municipality.
    Unknown,
    /// The candidate no longer exists (H5).
    Withdrawn,
    /// The candidate was decided (H3: final for the municipality).
    AlreadyDecided,
    /// Another candidate of the same move (h_B, D) is confirmed 継続 (H4).
    SecondContinuation,
    /// A reversal of a candidate nobody decided.
    NotDecided,
}

impl Refusal {
    /// RE 内容 of the E011 row (fixed texts).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unknown => "継続候補番号がありません",
            Refusal::Withdrawn => "継続候補は取り消されています",
            Refusal::AlreadyDecided => "継続候補は確定済みです",
            Refusal::SecondContinuation => "同じ転入世帯・転入年月日で継続が確定済みです",
            Refusal::NotDecided => "継続候補は確定されていません",
        }
    }

    /// The E011 row for a KT record of `receipt`, line `line`.
    pub fn row(self, receipt: &str, line: u32) -> Row {
        Row::Re(Re {
            kubun: Kubun::Error,
            code: "E011",
            receipt: receipt.to_string(),
            file_kind: Some(kokuho_ids::codes::InputKind::ContinuationDecisions),
            line: Some(line),
            resident: String::new(),
            field: NUMBER_FIELD.to_string(),
            message: self.message().to_string(),
            counterpart: String::new(),
            counterpart_start: None,
            counterpart_end: None,
            state: AlertState::Raised,
        })
    }
}

/// H3, H4: B's decision on a candidate. `confirmed_elsewhere`: another candidate of the same
/// (h_B, D) is confirmed 継続.
pub fn decide(
    c: &Candidate,
    decision: ContinuationDecision,
    confirmed_elsewhere: bool,
    on: Date,
    by: DecidedBy,
) -> Result<Decided, Refusal> {
    if c.decided.is_some() {
        return Err(Refusal::AlreadyDecided);
    }
    let Some(facts) = &c.facts else { return Err(Refusal::Withdrawn) };
    if decision == ContinuationDecision::Continue && confirmed_elsewhere {
        return Err(Refusal::SecondContinuation);
    }
    Ok(Decided { decision, on, by, fields: facts.rk_fields() })
}

/// H3: an operator's reversal of a decision to `decision`, with why. The facts now become what
/// A08 compares with (a candidate that disappeared keeps those of the first decision).
pub fn reverse(
    c: &Candidate,
    decision: ContinuationDecision,
    confirmed_elsewhere: bool,
    on: Date,
    operator: &str,
    reason: &str,
) -> Result<Decided, Refusal> {
    let Some(before) = &c.decided else { return Err(Refusal::NotDecided) };
    if before.decision == decision {
        return Err(Refusal::AlreadyDecided);
    }
    if decision == ContinuationDecision::Continue && confirmed_elsewhere {
        return Err(Refusal::SecondContinuation);
    }
    Ok(Decided {
        decision,
        on,
        by: DecidedBy::Operator { operator: operator.to_string(), reason: reason.to_string() },
        fields: c.facts.as_ref().map(Facts::rk_fields).unwrap_or(before.fields),
    })
}

/// H3: does auto-confirmation (when `enabled`) confirm this candidate 継続 now? Only an
/// undecided, existing reason 11 candidate, and never a second 継続 for its move (H4).
pub fn auto_confirms(c: &Candidate, enabled: bool, confirmed_elsewhere: bool) -> bool {
    enabled
        && !confirmed_elsewhere
        && c.decided.is_none()
        && c.facts.as_ref().is_some_and(|f| f.recommendation.reason == ContinuationReason::SameHouseholder)
}

fn rk_row(c: &Candidate, f: RkFields, correction: Correction) -> Row {
    Row::Rk(Rk {
        candidate: c.number.clone(),
        household: c.key.group.household.clone(),
        moved_in_on: c.key.group.moved_in_on,
        from: c.key.from.clone(),
        from_household: c.key.from_household.clone(),
        former_householder: f.former_householder,
        movers: f.movers,
        recommended: f.recommendation.decision,
        reason: f.recommendation.reason,
        kogaku_count: f.kogaku_count,
        correction,
    })
}

/// The A08 row of a candidate (formats.md: 項目名 継続候補番号, 10 転出元, 11 転入年月日).
fn a08_row(c: &Candidate, state: AlertState) -> Row {
    Row::Re(Re {
        kubun: Kubun::Anomaly,
        code: AnomalyCode::A08.code(),
        receipt: String::new(),
        file_kind: None,
        line: None,
        resident: String::new(),
        field: NUMBER_FIELD.to_string(),
        message: AnomalyCode::A08.label().to_string(),
        counterpart: c.key.from.clone(),
        counterpart_start: Some(c.key.group.moved_in_on),
        counterpart_end: None,
        state,
    })
}

/// What a candidate sends to B now that its facts, decision or handover may have changed
/// (H5, K3, K4), and the candidate as it is after sending:
///
/// - undecided: RK when fields 7–11 differ from the row last sent (訂正 0 the first time, 1
///   after), RK 訂正 2 when it no longer exists (and 訂正 1 should it come back);
/// - decided: no RK after the first (one is sent if the candidate was confirmed as soon as it
///   existed, by auto-confirmation); A08 (状態 1) when fields 7–10 differ from those of the decision
///   or the candidate disappeared, closed (状態 2) when they are back; RG when its fields 2–8
///   (the decision and `handover`, K3's for the decision now) differ from the row last sent (訂正 0 the first time, 1 after).
pub fn settle(c: &mut Candidate, handover: Option<Handover>) -> Vec<Row> {
    let mut rows = Vec::new();
    match &c.decided {
        None => {
            let now = c.facts.as_ref().map(Facts::rk_fields);
            let (row, sent) = match (c.sent, now) {
                (None, Some(f)) => (Some(rk_row(c, f, Correction::First)), Some(SentRk::Row(f))),
                (Some(SentRk::Row(last)), Some(f)) if last != f => {
                    (Some(rk_row(c, f, Correction::Replaces)), Some(SentRk::Row(f)))
                }
                (Some(SentRk::Withdrawn(_)), Some(f)) => {
                    (Some(rk_row(c, f, Correction::Replaces)), Some(SentRk::Row(f)))
                }
                (Some(SentRk::Row(last)), None) => {
                    (Some(rk_row(c, last, Correction::Withdrawn)), Some(SentRk::Withdrawn(last)))
                }
                (sent, _) => (None, sent),
            };
            rows.extend(row);
            c.sent = sent;
        }
        Some(d) => {
            // A candidate confirmed as soon as it exists (auto-confirmation) is still listed.
            if let (None, Some(f)) = (c.sent, c.facts.as_ref().map(Facts::rk_fields)) {
                rows.push(rk_row(c, f, Correction::First));
                c.sent = Some(SentRk::Row(f));
            }
            let changed = c.facts.as_ref().is_none_or(|f| f.rk_fields().before_count() != d.fields.before_count());
            if changed != c.changed {
                rows.push(a08_row(c, if changed { AlertState::Raised } else { AlertState::Closed }));
                c.changed = changed;
            }
            if let Some(h) = handover {
                let rg = Rg {
                    candidate: c.number.clone(),
                    household: c.key.group.household.clone(),
                    decision: d.decision,
                    decided_on: d.on,
                    inherited: h.inherited.iter().copied().collect(),
                    count: h.count,
                    many_times: h.many_times,
                    correction: if c.reported.is_some() { Correction::Replaces } else { Correction::First },
                };
                // Fields 2–8 (訂正 aside): a reversal changes 4 and 5, K4 changes 6–8.
                if c.reported.as_ref().is_none_or(|last| Rg { correction: rg.correction, ..last.clone() } != rg) {
                    rows.push(Row::Rg(rg.clone()));
                    c.reported = Some(rg);
                }
            }
        }
    }
    rows
}
