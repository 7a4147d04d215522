//! Wire ↔ domain for kogaku: the only module that reads another stream's events (intake's) and
//! kogaku's stored state.

use std::collections::BTreeSet;

use kokuho_ids::codes::{
    ContinuationDecision, ContinuationReason, Correction, DeemedHouseholder, EndReason, FormerHouseholder, KogakuKind,
    ProcessingKind,
};
use kokuho_ids::{Date, Month};
use kokuho_intake_contract::pb::RecordsAccepted;
use kokuho_intake_contract::pb::change_record::Record;
use kokuho_intake_contract::{Event, Events};
use kokuho_kogaku_contract::pb as kpb;
use kokuho_kogaku_domain::candidate::{Candidate, Decided, DecidedBy, Facts, RkFields, SentRk};
use kokuho_kogaku_domain::households::{HouseholdState, MemberRecord};
use kokuho_kogaku_domain::{CandidateKey, GroupKey, Pair, Recommendation};
use kokuho_proto::kogaku::v1 as pb;
use kokuho_rows::Rg;

/// What an event of the intake stream is to kogaku, decoded once.
pub(crate) enum IntakeInput {
    /// A chunk of accepted records.
    Chunk(RecordsAccepted),
    /// The business date from here on (rules.md T1).
    Calendar(u32),
    Nothing,
}

/// Decodes an event of the intake stream (every event of the stream is named here, so a new one
/// forces a decision).
pub(crate) fn intake_input(bytes: &[u8]) -> Result<IntakeInput, String> {
    let (_, event) = kokuho_bus::event::decode::<Events>(bytes)?;
    Ok(match event {
        Event::RecordsAccepted(chunk) => IntakeInput::Chunk(chunk),
        Event::BusinessDateSet(d) => IntakeInput::Calendar(d.date),
        Event::DayClosed(d) => IntakeInput::Calendar(d.date),
        Event::SubmissionAccepted(_) | Event::SubmissionRejected(_) => IntakeInput::Nothing,
    })
}

fn processing(p: &str) -> Result<ProcessingKind, String> {
    ProcessingKind::parse(p).map_err(|_| format!("処理区分 {p:?}"))
}

/// A KG record as kogaku keeps it: registered (`true`) or deleted, with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KogakuRecord {
    pub(crate) municipality: String,
    pub(crate) household: String,
    pub(crate) month: Month,
    pub(crate) kind: KogakuKind,
    pub(crate) register: bool,
}

/// The KG records of a chunk, in file order. intake checked them; a value that does not parse
/// is an error (the event is dead-lettered), never a default.
pub(crate) fn kogaku_records(chunk: &RecordsAccepted) -> Result<Vec<KogakuRecord>, String> {
    let mut out = Vec::new();
    for r in &chunk.records {
        let Some(Record::Kogaku(k)) = &r.record else { continue };
        let month = Month::from_yyyymm(k.month).ok_or_else(|| format!("診療年月 {} of line {}", k.month, r.line))?;
        let kind = KogakuKind::parse(&k.kogaku_kind).map_err(|_| format!("該当区分 {:?}", k.kogaku_kind))?;
        out.push(KogakuRecord {
            municipality: chunk.municipality.clone(),
            household: k.household_number.clone(),
            month,
            kind,
            register: processing(&k.processing)? == ProcessingKind::Register,
        });
    }
    Ok(out)
}

/// A KS record as kogaku keeps it: the state from its 異動年月日 on, or `None` for a 削除.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HouseholdRecord {
    pub(crate) municipality: String,
    pub(crate) household: String,
    pub(crate) changed_on: Date,
    pub(crate) state: Option<HouseholdState>,
}

/// The KS records of a chunk, in file order.
pub(crate) fn household_records(chunk: &RecordsAccepted) -> Result<Vec<HouseholdRecord>, String> {
    let mut out = Vec::new();
    for r in &chunk.records {
        let Some(Record::Household(h)) = &r.record else { continue };
        let changed_on = Date::from_yyyymmdd(h.changed_on).ok_or_else(|| format!("異動年月日 of line {}", r.line))?;
        let state = match processing(&h.processing)? {
            ProcessingKind::Delete => None,
            ProcessingKind::Register => {
                let deemed = DeemedHouseholder::parse(&h.deemed_householder)
                    .map_err(|_| format!("擬制世帯主区分 {:?}", h.deemed_householder))?;
                Some(HouseholdState {
                    householder: h.householder.clone(),
                    deemed: deemed == DeemedHouseholder::Deemed,
                    card_symbol: h.card_symbol.clone(),
                    card_number: h.card_number.clone(),
                })
            }
        };
        out.push(HouseholdRecord {
            municipality: chunk.municipality.clone(),
            household: h.household_number.clone(),
            changed_on,
            state,
        });
    }
    Ok(out)
}

/// A household state as stored.
pub(crate) fn stored_state(s: &HouseholdState) -> pb::HouseholdStateRecord {
    pb::HouseholdStateRecord {
        householder: s.householder.clone(),
        deemed: s.deemed,
        card_symbol: s.card_symbol.clone(),
        card_number: s.card_number.clone(),
    }
}

pub(crate) fn state_of(r: pb::HouseholdStateRecord) -> HouseholdState {
    HouseholdState {
        householder: r.householder,
        deemed: r.deemed,
        card_symbol: r.card_symbol,
        card_number: r.card_number,
    }
}

/// What a linked KK record tells kogaku about household members (H2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MemberChange {
    /// (municipality, 宛名番号) is the person's.
    Linked { municipality: String, resident: String, person: String },
    /// The record with this key is registered in the household (or replaced), or deleted.
    Record {
        municipality: String,
        household: String,
        resident: String,
        start: u32,
        state: Option<pb::MemberStateRecord>,
    },
    /// I5: every link of `from` is `into`'s from now on.
    Merged { from: String, into: String },
}

/// The member changes of an event of identity's stream, in order (every event of the stream is
/// named here, so a new one forces a decision).
pub(crate) fn member_changes(bytes: &[u8]) -> Result<Vec<MemberChange>, String> {
    use kokuho_identity_contract::Event as IdentityEvent;
    let (_, event) = kokuho_bus::event::decode::<kokuho_identity_contract::Events>(bytes)?;
    let (municipality, links, merges) = match event {
        IdentityEvent::ChunkLinked(c) => (c.municipality, c.links, c.merged),
        IdentityEvent::CaseResolved(r) => (r.municipality, r.links, Vec::new()),
        IdentityEvent::BusinessDay(_) | IdentityEvent::NumbersKept(_) => return Ok(Vec::new()),
    };
    let mut out: Vec<MemberChange> =
        merges.into_iter().map(|m| MemberChange::Merged { from: m.from, into: m.into }).collect();
    for l in links {
        let r = l.record.ok_or("a linked record without its record")?;
        let insured = kokuho_ids::codes::InsuredKind::parse(&r.insured_kind)
            .map_err(|_| format!("被保険者区分 {:?}", r.insured_kind))?
            == kokuho_ids::codes::InsuredKind::Insured;
        let start = if insured { r.start_date } else { 0 };
        let state = match processing(&r.processing)? {
            ProcessingKind::Delete => None,
            ProcessingKind::Register => {
                let died = insured
                    && !r.end_reason.is_empty()
                    && EndReason::parse(&r.end_reason).map_err(|_| format!("適用終了事由 {:?}", r.end_reason))?
                        == EndReason::Death;
                Some(pb::MemberStateRecord { insured, start, end: if insured { r.end_date } else { 0 }, died })
            }
        };
        out.push(MemberChange::Linked {
            municipality: municipality.clone(),
            resident: r.resident_number.clone(),
            person: l.pref_id,
        });
        out.push(MemberChange::Record {
            municipality: municipality.clone(),
            household: r.household_number,
            resident: r.resident_number,
            start,
            state,
        });
    }
    Ok(out)
}

/// A stored member record as the domain's.
pub(crate) fn member_of(person: String, household: String, r: &pb::MemberStateRecord) -> Result<MemberRecord, String> {
    let date = |v: u32| Date::from_yyyymmdd(v).ok_or_else(|| format!("date {v}"));
    let period =
        if r.insured { Some((date(r.start)?, if r.end == 0 { None } else { Some(date(r.end)?) })) } else { None };
    Ok(MemberRecord { person, household, period, died: r.died })
}

/// A person and their pairs now (`None`: merged away).
pub(crate) type PersonPairs = (String, Option<Vec<Pair>>);

/// The C2 pairs of the persons an event of continuity's stream evaluated (each person's pairs
/// as they are now: `None` for a person merged away), as kogaku's domain reads them.
pub(crate) fn person_pairs(bytes: &[u8]) -> Result<Vec<PersonPairs>, String> {
    use kokuho_continuity_contract::Event as ContinuityEvent;
    let (_, event) = kokuho_bus::event::decode::<kokuho_continuity_contract::Events>(bytes)?;
    let ContinuityEvent::PersonsEvaluated(e) = event;
    let mut out: Vec<PersonPairs> = e.merged_away.into_iter().map(|p| (p, None)).collect();
    for person in e.persons {
        let pairs = person
            .pairs
            .iter()
            .map(|p| {
                Ok(Pair {
                    person: person.pref_id.clone(),
                    from: p.from_municipality.clone(),
                    from_household: p.from_household_number.clone(),
                    to: p.to_municipality.clone(),
                    to_household: p.to_household_number.clone(),
                    to_resident: p.to_resident_number.clone(),
                    moved_in_on: Date::from_yyyymmdd(p.to_start).ok_or_else(|| format!("転入 {}", p.to_start))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        out.push((person.pref_id, Some(pairs)));
    }
    Ok(out)
}

/// What an input event asks kogaku to look at again (and the decisions it carries).
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// (municipality, 世帯番号) whose household states or 高額 months changed.
    pub(crate) households: BTreeSet<(String, String)>,
    /// (municipality, 宛名番号) whose records or links changed: the households they are in.
    pub(crate) residents: BTreeSet<(String, String)>,
    /// Persons merged (I5): the households of every record linked to them.
    pub(crate) persons: BTreeSet<String>,
    /// Persons whose C2 pairs changed: the move groups they were and are in.
    pub(crate) movers: BTreeSet<String>,
    pub(crate) orders: Vec<Order>,
}

/// A decision on a candidate: B's (KT record or API) or an operator's reversal (H3).
#[derive(Debug, Clone)]
pub(crate) struct Order {
    /// Who asks: B for a decision (another municipality's number is unknown to it).
    pub(crate) municipality: String,
    pub(crate) number: String,
    pub(crate) decision: ContinuationDecision,
    pub(crate) on: Date,
    pub(crate) by: DecidedBy,
}

/// What an event of the intake stream asks of kogaku: KS and KG households, and KT decisions
/// (on the business date of their acceptance).
pub(crate) fn intake_work(bytes: &[u8]) -> Result<Option<Work>, String> {
    let IntakeInput::Chunk(chunk) = intake_input(bytes)? else { return Ok(None) };
    let on = Date::from_yyyymmdd(chunk.business_date).ok_or_else(|| format!("業務日 {}", chunk.business_date))?;
    let mut work = Work::default();
    for r in chunk.records {
        match r.record {
            Some(Record::Household(h)) => {
                work.households.insert((chunk.municipality.clone(), h.household_number));
            }
            Some(Record::Kogaku(k)) => {
                work.households.insert((chunk.municipality.clone(), k.household_number));
            }
            Some(Record::Decision(d)) => work.orders.push(Order {
                municipality: chunk.municipality.clone(),
                number: d.candidate,
                decision: ContinuationDecision::parse(&d.decision).map_err(|_| format!("判定 {:?}", d.decision))?,
                on,
                by: DecidedBy::File { receipt: chunk.receipt.clone(), line: r.line },
            }),
            Some(Record::Person(_)) | None => {}
        }
    }
    Ok(Some(work))
}

/// What an event of identity's stream asks of kogaku: the residents whose records or links
/// changed, and merged persons.
pub(crate) fn identity_work(bytes: &[u8]) -> Result<Option<Work>, String> {
    let changes = member_changes(bytes)?;
    if changes.is_empty() {
        return Ok(None);
    }
    let mut work = Work::default();
    for c in changes {
        match c {
            MemberChange::Linked { municipality, resident, .. }
            | MemberChange::Record { municipality, resident, .. } => {
                work.residents.insert((municipality, resident));
            }
            MemberChange::Merged { from, into } => {
                work.persons.insert(from);
                work.persons.insert(into);
            }
        }
    }
    Ok(Some(work))
}

/// What an event of continuity's stream asks of kogaku: the persons it evaluated (their pairs
/// may have changed) and those merged away.
pub(crate) fn continuity_work(bytes: &[u8]) -> Result<Option<Work>, String> {
    let pairs = person_pairs(bytes)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    Ok(Some(Work { movers: pairs.into_iter().map(|(p, _)| p).collect(), ..Work::default() }))
}

fn code<T>(s: &str, parse: impl Fn(&str) -> Result<T, kokuho_ids::IdError>, what: &str) -> Result<T, String> {
    parse(s).map_err(|_| format!("{what} {s:?}"))
}

fn rk_fields_pb(f: &RkFields) -> kpb::RkFields {
    kpb::RkFields {
        former_householder: f.former_householder.code().into(),
        movers: f.movers,
        recommended: f.recommendation.decision.code().into(),
        reason: f.recommendation.reason.code().into(),
        kogaku_count: f.kogaku_count,
    }
}

fn rk_fields_of(f: &kpb::RkFields) -> Result<RkFields, String> {
    Ok(RkFields {
        former_householder: code(&f.former_householder, FormerHouseholder::parse, "転出元世帯主")?,
        movers: f.movers,
        recommendation: Recommendation {
            decision: code(&f.recommended, ContinuationDecision::parse, "推奨判定")?,
            reason: code(&f.reason, ContinuationReason::parse, "判定理由")?,
        },
        kogaku_count: f.kogaku_count,
    })
}

fn date_of(v: u32) -> Result<Date, String> {
    Date::from_yyyymmdd(v).ok_or_else(|| format!("date {v}"))
}

fn month_of(v: u32) -> Result<Month, String> {
    Month::from_yyyymm(v).ok_or_else(|| format!("month {v}"))
}

/// A candidate as its event and kogaku's store carry it.
pub(crate) fn candidate_pb(c: &Candidate) -> kpb::CandidateState {
    let facts = c.facts.as_ref().map(|f| kpb::CandidateFacts {
        fields: Some(rk_fields_pb(&f.rk_fields())),
        movers: f.movers.iter().cloned().collect(),
        former_householder_person: f.former_householder_person.clone().unwrap_or_default(),
        householder_person: f.householder_person.clone().unwrap_or_default(),
        rule: u32::from(f.rule),
    });
    let (sent, sent_withdrawn) = match &c.sent {
        None => (None, false),
        Some(SentRk::Row(f)) => (Some(rk_fields_pb(f)), false),
        Some(SentRk::Withdrawn(f)) => (Some(rk_fields_pb(f)), true),
    };
    let decision = c.decided.as_ref().map(|d| {
        let mut out = kpb::Decision {
            decision: d.decision.code().into(),
            decided_on: d.on.to_yyyymmdd(),
            fields: Some(rk_fields_pb(&d.fields)),
            ..Default::default()
        };
        match &d.by {
            DecidedBy::File { receipt, line } => {
                out.by = "file".into();
                out.receipt = receipt.clone();
                out.line = *line;
            }
            DecidedBy::Api => out.by = "api".into(),
            DecidedBy::Auto => out.by = "auto".into(),
            DecidedBy::Operator { operator, reason } => {
                out.by = "operator".into();
                out.operator = operator.clone();
                out.reason = reason.clone();
            }
        }
        out
    });
    let reported = c.reported.as_ref().map(|g| kpb::SentRg {
        decision: g.decision.code().into(),
        decided_on: g.decided_on.to_yyyymmdd(),
        inherited: g.inherited.iter().map(|m| m.to_yyyymm()).collect(),
        count: g.count,
        many_times: g.many_times,
        correction: g.correction.code().into(),
    });
    kpb::CandidateState {
        number: c.number.clone(),
        to_municipality: c.key.group.to.clone(),
        to_household: c.key.group.household.clone(),
        moved_in_on: c.key.group.moved_in_on.to_yyyymmdd(),
        from_municipality: c.key.from.clone(),
        from_household: c.key.from_household.clone(),
        facts,
        sent,
        sent_withdrawn,
        decision,
        changed: c.changed,
        reported,
    }
}

/// A stored candidate as the domain's.
pub(crate) fn candidate_of(s: kpb::CandidateState) -> Result<Candidate, String> {
    let key = CandidateKey {
        group: GroupKey { to: s.to_municipality, household: s.to_household, moved_in_on: date_of(s.moved_in_on)? },
        from: s.from_municipality,
        from_household: s.from_household,
    };
    let person = |p: String| if p.is_empty() { None } else { Some(p) };
    let facts = match s.facts {
        None => None,
        Some(f) => {
            let fields = rk_fields_of(&f.fields.ok_or("facts without fields")?)?;
            Some(Facts {
                former_householder: fields.former_householder,
                movers: f.movers.into_iter().collect(),
                recommendation: fields.recommendation,
                rule: f.rule as u8,
                kogaku_count: fields.kogaku_count,
                former_householder_person: person(f.former_householder_person),
                householder_person: person(f.householder_person),
            })
        }
    };
    let sent = match s.sent {
        None => None,
        Some(f) if s.sent_withdrawn => Some(SentRk::Withdrawn(rk_fields_of(&f)?)),
        Some(f) => Some(SentRk::Row(rk_fields_of(&f)?)),
    };
    let decided = match s.decision {
        None => None,
        Some(d) => Some(Decided {
            decision: code(&d.decision, ContinuationDecision::parse, "判定")?,
            on: date_of(d.decided_on)?,
            by: match d.by.as_str() {
                "file" => DecidedBy::File { receipt: d.receipt, line: d.line },
                "api" => DecidedBy::Api,
                "auto" => DecidedBy::Auto,
                "operator" => DecidedBy::Operator { operator: d.operator, reason: d.reason },
                other => return Err(format!("decided by {other:?}")),
            },
            fields: rk_fields_of(&d.fields.ok_or("a decision without its fields")?)?,
        }),
    };
    let reported = match s.reported {
        None => None,
        Some(g) => Some(Rg {
            candidate: s.number.clone(),
            household: key.group.household.clone(),
            decision: code(&g.decision, ContinuationDecision::parse, "判定")?,
            decided_on: date_of(g.decided_on)?,
            inherited: g.inherited.into_iter().map(month_of).collect::<Result<_, _>>()?,
            count: g.count,
            many_times: g.many_times,
            correction: code(&g.correction, Correction::parse, "訂正")?,
        }),
    };
    Ok(Candidate { key, number: s.number, facts, sent, decided, changed: s.changed, reported })
}
