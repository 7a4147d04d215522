//! Wire ↔ domain for continuity: the only module of the service that reads identity's events
//! and builds or reads continuity's own. Unknown codes are errors (the event is dead-lettered
//! with the reason), never a default.

use std::collections::{BTreeMap, BTreeSet};

use kokuho_continuity_contract::pb;
use kokuho_continuity_domain::{self as domain, Anomaly, Change, PersonState, Source, Step, Tracked};
use kokuho_identity_contract::pb as ipb;
use kokuho_ids::Date;
use kokuho_ids::codes::{AnomalyCode, Correction, EndReason, InsuredKind, Judgement, ProcessingKind, StartReason};
use kokuho_proto::results::v1::ResultRow;
use kokuho_rows::{Row, Rs};

fn date(v: u32) -> Option<Date> {
    if v == 0 { None } else { Date::from_yyyymmdd(v) }
}

fn required_date(v: u32, what: &str) -> Result<Date, String> {
    Date::from_yyyymmdd(v).ok_or_else(|| format!("{what} {v} is not a date"))
}

fn yyyymmdd(d: Option<Date>) -> u32 {
    d.map(Date::to_yyyymmdd).unwrap_or(0)
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn parse<T>(s: &str, what: &str, parse: impl FnOnce(&str) -> Result<T, kokuho_ids::IdError>) -> Result<T, String> {
    parse(s).map_err(|_| format!("{what} {s:?} is not a known code"))
}

fn optional<T>(
    s: &str,
    what: &str,
    p: impl FnOnce(&str) -> Result<T, kokuho_ids::IdError>,
) -> Result<Option<T>, String> {
    if s.is_empty() { Ok(None) } else { parse(s, what, p).map(Some) }
}

// === identity's events: what continuity is asked to do ===

/// A merge of a provisional person (rules.md I5), with the survivor's IDs per municipality.
pub(crate) struct Merge {
    pub(crate) from: String,
    pub(crate) into: String,
    pub(crate) ids: BTreeMap<String, String>,
}

/// What one identity event asks continuity to do.
pub(crate) struct Work {
    pub(crate) step: Step,
    /// `None`: keep the business date.
    pub(crate) day: Option<u32>,
    /// Linked records of 被保険者: (person, what they report).
    pub(crate) changes: Vec<(String, Change)>,
    pub(crate) merges: Vec<Merge>,
    /// Evaluate the watched persons (a day close).
    pub(crate) watched: bool,
}

/// A period from its wire fields: (開始事由, 終了年月日, 終了事由) and (転入元, 転出先).
fn period(
    municipality: &str,
    resident: &str,
    start: Date,
    (start_reason, end, end_reason): (&str, u32, &str),
    (moved_in_from, moved_out_to): (&str, &str),
) -> Result<domain::Period, String> {
    Ok(domain::Period {
        municipality: municipality.to_string(),
        resident: resident.to_string(),
        start,
        start_reason: parse(start_reason, "適用開始事由", StartReason::parse)?,
        end: date(end),
        end_reason: optional(end_reason, "適用終了事由", EndReason::parse)?,
        moved_in_from: opt(moved_in_from),
        moved_out_to: opt(moved_out_to),
    })
}

/// What a linked record reports; `None` for a 擬制世帯主 (no period).
fn change_of(municipality: &str, link: &ipb::RecordLinked) -> Result<Option<(String, Change)>, String> {
    let r = link.record.as_ref().ok_or("a linked record without its record")?;
    if parse(&r.insured_kind, "被保険者区分", InsuredKind::parse)? != InsuredKind::Insured {
        return Ok(None);
    }
    let start = required_date(r.start_date, "適用開始年月日")?;
    let key = (municipality.to_string(), r.resident_number.clone(), start);
    let change = match parse(&r.processing, "処理区分", ProcessingKind::parse)? {
        ProcessingKind::Delete => Change::Delete { key },
        ProcessingKind::Register => Change::Register {
            period: period(
                municipality,
                &r.resident_number,
                start,
                (&r.start_reason, r.end_date, &r.end_reason),
                (&r.moved_in_from, &r.moved_out_to),
            )?,
            muni_id: link.muni_id.clone(),
            birth: date(r.birth_date),
            source: Source { receipt: link.receipt.clone(), line: link.line },
            household: r.household_number.clone(),
        },
    };
    Ok(Some((link.pref_id.clone(), change)))
}

fn changes(municipality: &str, links: &[ipb::RecordLinked]) -> Result<Vec<(String, Change)>, String> {
    links.iter().filter_map(|l| change_of(municipality, l).transpose()).collect()
}

/// The work of an event of identity's stream; `None` for events continuity has nothing to do
/// with. Every event of the stream is named here, so a new one forces a decision.
pub(crate) fn work_of(bytes: &[u8]) -> Result<Option<Work>, String> {
    use kokuho_identity_contract::Event;
    let (_, event) = kokuho_bus::event::decode::<kokuho_identity_contract::Events>(bytes)?;
    Ok(match event {
        Event::ChunkLinked(c) => Some(Work {
            step: Step::Submission,
            day: None,
            changes: changes(&c.municipality, &c.links)?,
            merges: c
                .merged
                .into_iter()
                .map(|m| Merge {
                    ids: m.survivor_ids.into_iter().map(|i| (i.municipality, i.muni_id)).collect(),
                    from: m.from,
                    into: m.into,
                })
                .collect(),
            watched: false,
        }),
        Event::CaseResolved(r) => Some(Work {
            step: Step::Submission,
            day: None,
            changes: changes(&r.municipality, &r.links)?,
            merges: Vec::new(),
            watched: false,
        }),
        Event::BusinessDay(d) => Some(Work {
            step: if d.day_close { Step::DayClose } else { Step::Submission },
            day: Some(d.date),
            changes: Vec::new(),
            merges: Vec::new(),
            watched: d.day_close,
        }),
        // Read by identity alone (S7); never delivered to continuity's filtered consumer.
        Event::NumbersKept(_) => None,
    })
}

// === continuity's own state ===

fn sent_of(s: &pb::SentRow) -> Result<Rs, String> {
    Ok(Rs {
        resident: s.resident_number.clone(),
        muni_id: s.muni_id.clone(),
        acquired_on: required_date(s.acquired_on, "資格取得年月日")?,
        acquired_reason: parse(&s.acquired_reason, "資格取得事由", StartReason::parse)?,
        lost_on: date(s.lost_on),
        lost_reason: optional(&s.lost_reason, "資格喪失事由", EndReason::parse)?,
        start: required_date(s.start, "適用開始年月日")?,
        end: date(s.end),
        judgement: parse(&s.judgement, "判定区分", Judgement::parse)?,
        correction: parse(&s.correction, "訂正", Correction::parse)?,
    })
}

fn sent_row(r: &Rs) -> pb::SentRow {
    pb::SentRow {
        resident_number: r.resident.clone(),
        muni_id: r.muni_id.clone(),
        acquired_on: r.acquired_on.to_yyyymmdd(),
        acquired_reason: r.acquired_reason.code().into(),
        lost_on: yyyymmdd(r.lost_on),
        lost_reason: r.lost_reason.map(EndReason::code).unwrap_or_default().into(),
        start: r.start.to_yyyymmdd(),
        end: yyyymmdd(r.end),
        judgement: r.judgement.code().into(),
        correction: r.correction.code().into(),
    }
}

fn tracked_of(p: &pb::PeriodState) -> Result<Tracked, String> {
    Ok(Tracked {
        period: period(
            &p.municipality,
            &p.resident_number,
            required_date(p.start, "適用開始年月日")?,
            (&p.start_reason, p.end, &p.end_reason),
            (&p.moved_in_from, &p.moved_out_to),
        )?,
        muni_id: p.muni_id.clone(),
        sent: p.sent.as_ref().map(sent_of).transpose()?,
        source: Source { receipt: p.receipt.clone(), line: p.line },
        household: p.household_number.clone(),
    })
}

fn period_state(t: &Tracked) -> pb::PeriodState {
    let p = &t.period;
    pb::PeriodState {
        municipality: p.municipality.clone(),
        resident_number: p.resident.clone(),
        muni_id: t.muni_id.clone(),
        start: p.start.to_yyyymmdd(),
        start_reason: p.start_reason.code().into(),
        end: yyyymmdd(p.end),
        end_reason: p.end_reason.map(EndReason::code).unwrap_or_default().into(),
        moved_in_from: p.moved_in_from.clone().unwrap_or_default(),
        moved_out_to: p.moved_out_to.clone().unwrap_or_default(),
        sent: t.sent.as_ref().map(sent_row),
        receipt: t.source.receipt.clone(),
        line: t.source.line,
        household_number: t.household.clone(),
    }
}

fn anomaly_of(a: &pb::AnomalyState) -> Result<Anomaly, String> {
    Ok(Anomaly {
        code: parse(&a.code, "anomaly code", AnomalyCode::parse)?,
        to: a.municipality.clone(),
        resident: a.resident_number.clone(),
        counterpart: a.counterpart.clone(),
        counterpart_start: date(a.counterpart_start),
        counterpart_end: date(a.counterpart_end),
    })
}

fn anomaly_state(a: &Anomaly) -> pb::AnomalyState {
    pb::AnomalyState {
        code: a.code.code().into(),
        municipality: a.to.clone(),
        resident_number: a.resident.clone(),
        counterpart: a.counterpart.clone(),
        counterpart_start: yyyymmdd(a.counterpart_start),
        counterpart_end: yyyymmdd(a.counterpart_end),
    }
}

/// A stored person, as the domain knows them.
pub(crate) fn person_of(p: &pb::PersonState) -> Result<PersonState, String> {
    Ok(PersonState {
        pref_id: p.pref_id.clone(),
        birth: date(p.birth_date),
        periods: p.periods.iter().map(tracked_of).collect::<Result<_, _>>()?,
        open: p.open.iter().map(anomaly_of).collect::<Result<BTreeSet<_>, _>>()?,
        watch: p.watch,
    })
}

pub(crate) fn person_state(p: &PersonState) -> pb::PersonState {
    pb::PersonState {
        pref_id: p.pref_id.clone(),
        birth_date: yyyymmdd(p.birth),
        periods: p.periods.iter().map(period_state).collect(),
        open: p.open.iter().map(anomaly_state).collect(),
        watch: p.watch,
        pairs: p
            .pairs()
            .into_iter()
            .map(|(o, i)| {
                let (a, b) = (&p.periods[o], &p.periods[i]);
                pb::MovePair {
                    from_municipality: a.period.municipality.clone(),
                    from_resident_number: a.period.resident.clone(),
                    from_start: a.period.start.to_yyyymmdd(),
                    from_end: yyyymmdd(a.period.end),
                    from_household_number: a.household.clone(),
                    to_municipality: b.period.municipality.clone(),
                    to_resident_number: b.period.resident.clone(),
                    to_start: b.period.start.to_yyyymmdd(),
                    to_household_number: b.household.clone(),
                }
            })
            .collect(),
    }
}

/// Rows per municipality, on the wire.
pub(crate) fn municipality_rows(rows: BTreeMap<String, Vec<Row>>) -> Vec<ipb::MunicipalityRows> {
    rows.into_iter()
        .map(|(municipality, rows)| ipb::MunicipalityRows {
            municipality,
            rows: rows.iter().map(kokuho_outbox::wire).collect::<Vec<ResultRow>>(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored person survives the round trip domain → wire → domain.
    #[test]
    fn person_round_trip() {
        let d = |s: &str| Date::parse(s).unwrap();
        let mut person = PersonState { pref_id: "13p".into(), birth: Some(d("19550820")), ..Default::default() };
        let mut gone = Vec::new();
        let period = domain::Period {
            municipality: "131016".into(),
            resident: "100001".into(),
            start: d("20200401"),
            start_reason: StartReason::LeftEmployeeInsurance,
            end: Some(d("20260509")),
            end_reason: Some(EndReason::MoveOutWithinPrefecture),
            moved_in_from: None,
            moved_out_to: Some("131032".into()),
        };
        let source = Source { receipt: "131016-00000001".into(), line: 3 };
        let change = Change::Register { period, muni_id: "M".into(), birth: None, source, household: "1001".into() };
        domain::report(&mut person, change, &mut gone);
        domain::step(&mut person, &[], Step::DayClose, d("20260701"));
        assert!(person.periods[0].sent.is_some() && !person.open.is_empty());
        assert_eq!(person_of(&person_state(&person)).unwrap(), person);
    }

    /// An unknown code is an error with its reason (the event is dead-lettered), never a default.
    #[test]
    fn an_unknown_anomaly_code_is_an_error() {
        let mut stored = pb::PersonState::default();
        stored.open.push(pb::AnomalyState { code: "A99".into(), ..Default::default() });
        let err = person_of(&stored).unwrap_err();
        assert!(err.contains("A99"), "{err}");
    }
}
