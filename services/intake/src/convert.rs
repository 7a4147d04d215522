//! Domain ↔ wire for intake: the only module of the service that names `kokuho_proto` types.

use kokuho_crypto::{SealedNumber, Sealer};
use kokuho_ids::Date;
use kokuho_intake_domain::ReRow;
use kokuho_intake_domain::record::{Household, Kogaku, Person, Record};
use kokuho_intake_domain::submission::{AcceptedRecord, FileSummary};
use kokuho_proto::intake::v1 as pb;
use kokuho_proto::results::v1::ResultRow;

fn date(d: Option<Date>) -> u32 {
    d.map(Date::to_yyyymmdd).unwrap_or(0)
}

fn code<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|c| c.to_string()).unwrap_or_default()
}

pub(crate) fn re_row(row: &ReRow, receipt: &str) -> ResultRow {
    kokuho_outbox::wire(&row.to_row(receipt).into())
}

pub(crate) fn file_info(f: &FileSummary) -> pb::FileInfo {
    pb::FileInfo {
        kind: code(f.kind),
        sequence_number: f.sequence,
        sha256: f.sha256.clone(),
        data_records: f.data_records,
        name: f.name.clone(),
    }
}

/// An accepted record on the wire; a 個人番号 is sealed for identity (S2) with `sealer`, bound
/// to the municipality and 宛名番号.
pub(crate) fn change_record(
    municipality: &str,
    r: &AcceptedRecord,
    sealer: &Sealer,
) -> Result<pb::ChangeRecord, kokuho_crypto::CryptoError> {
    let record = match &r.record {
        Record::Household(h) => pb::change_record::Record::Household(household(h)),
        Record::Person(p) => pb::change_record::Record::Person(person(municipality, p, sealer)?),
        Record::Kogaku(k) => pb::change_record::Record::Kogaku(kogaku(k)),
        Record::Decision(d) => pb::change_record::Record::Decision(pb::ContinuationDecisionRecord {
            candidate: d.candidate.clone(),
            decision: d.decision.to_string(),
        }),
    };
    Ok(pb::ChangeRecord { kind: r.kind.to_string(), line: r.line, record: Some(record) })
}

fn household(h: &Household) -> pb::HouseholdRecord {
    let b = h.body.as_ref();
    pb::HouseholdRecord {
        processing: h.processing.to_string(),
        household_number: h.household.clone(),
        changed_on: h.changed_on.to_yyyymmdd(),
        reason: code(b.map(|b| b.reason)),
        householder: b.map(|b| b.householder.clone()).unwrap_or_default(),
        deemed_householder: code(b.map(|b| b.deemed)),
        card_symbol: b.map(|b| b.card_symbol.clone()).unwrap_or_default(),
        card_number: b.map(|b| b.card_number.clone()).unwrap_or_default(),
        income_category: code(b.and_then(|b| b.income)),
        counterpart: code(b.and_then(|b| b.counterpart)),
    }
}

/// The associated data a sealed 個人番号 is bound to.
pub fn number_context(municipality: &str, resident: &str) -> Vec<u8> {
    format!("{municipality}:{resident}").into_bytes()
}

fn person(municipality: &str, p: &Person, sealer: &Sealer) -> Result<pb::PersonRecord, kokuho_crypto::CryptoError> {
    let b = p.body.as_ref();
    let sealed = match b.and_then(|b| b.number.as_ref()) {
        Some(n) => {
            let SealedNumber { nonce, ciphertext } = sealer.seal(n, &number_context(municipality, &p.resident))?;
            Some(pb::SealedNumber { nonce, ciphertext })
        }
        None => None,
    };
    Ok(pb::PersonRecord {
        processing: p.processing.to_string(),
        resident_number: p.resident.clone(),
        household_number: b.map(|b| b.household.clone()).unwrap_or_default(),
        insured_kind: p.insured_kind.to_string(),
        individual_number: sealed,
        name: b.map(|b| b.name.clone()).unwrap_or_default(),
        kana: b.map(|b| b.kana.clone()).unwrap_or_default(),
        birth_date: date(b.map(|b| b.birth)),
        sex: code(b.map(|b| b.sex)),
        relation: code(b.map(|b| b.relation)),
        start_date: date(p.start),
        start_reason: code(b.and_then(|b| b.start_reason)),
        end_date: date(b.and_then(|b| b.end)),
        end_reason: code(b.and_then(|b| b.end_reason)),
        moved_in_from: code(b.and_then(|b| b.moved_in_from)),
        moved_out_to: code(b.and_then(|b| b.moved_out_to)),
        changed_on: date(b.map(|b| b.changed_on)),
    })
}

fn kogaku(k: &Kogaku) -> pb::KogakuRecord {
    pb::KogakuRecord {
        processing: k.processing.to_string(),
        household_number: k.household.clone(),
        month: k.month.to_yyyymm(),
        kogaku_kind: k.kind.to_string(),
        decided_on: date(k.decided_on),
    }
}

pub(crate) fn wrapped_key(sealer: &Sealer) -> pb::WrappedKey {
    let w = sealer.wrapped_key();
    pb::WrappedKey {
        recipient_key_id: w.recipient_key_id.clone(),
        encapsulated_key: w.encapsulated_key.clone(),
        ciphertext: w.ciphertext.clone(),
    }
}
