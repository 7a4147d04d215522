//! Wire ↔ crypto and domain types for identity: the only module that reads another stream's
//! events (intake's) and builds proto messages from decisions.

use kokuho_ids::codes::{InsuredKind, ProcessingKind};
use kokuho_intake_contract as intake;

use kokuho_crypto::{AtRest, CryptoError, Vault};
use kokuho_ids::IndividualNumber;
use kokuho_proto::identity::v1 as pb;

pub(crate) fn at_rest(s: &pb::SealedNumber) -> AtRest {
    AtRest { key_id: s.key_id.clone(), nonce: s.nonce.clone(), ciphertext: s.ciphertext.clone() }
}

pub(crate) fn sealed(a: AtRest) -> pb::SealedNumber {
    pb::SealedNumber { key_id: a.key_id, nonce: a.nonce, ciphertext: a.ciphertext }
}

/// The context a person's stored number is bound to.
pub(crate) fn person_context(pref_id: &str) -> Vec<u8> {
    format!("pref:{pref_id}").into_bytes()
}

/// A person's number as identity keeps it: sealed for the person, with its keyed hash.
pub(crate) fn person_number(
    vault: &Vault,
    pref_id: &str,
    number: &IndividualNumber,
) -> Result<pb::PersonNumber, CryptoError> {
    let (hash, key) = vault.index_with_id(number);
    Ok(pb::PersonNumber {
        pref_id: pref_id.to_string(),
        number: Some(sealed(vault.seal_at_rest(number, &person_context(pref_id))?)),
        number_index: hash.to_vec(),
        index_key_id: key.to_string(),
    })
}

/// The keyed hash of a kept number under identity's current key: the one kept with it, or
/// computed again from the sealed number after a key rotation.
pub(crate) fn index_of(vault: &Vault, kept: &pb::PersonNumber) -> Result<[u8; 32], CryptoError> {
    if kept.index_key_id == vault.current_id()
        && let Ok(hash) = <[u8; 32]>::try_from(kept.number_index.as_slice())
    {
        return Ok(hash);
    }
    let sealed = kept.number.as_ref().map(at_rest).ok_or(CryptoError::Open)?;
    Ok(vault.index(&vault.open_at_rest(&sealed, &person_context(&kept.pref_id))?))
}

/// The context a held record's stored number is bound to.
pub(crate) fn case_context(case_id: &str) -> Vec<u8> {
    format!("case:{case_id}").into_bytes()
}

/// An RI row (I2, I5) on the wire. `date` is a business date (YYYYMMDD) of the log.
pub(crate) fn ri(
    resident: &str,
    muni_id: &str,
    date: u32,
    correction: kokuho_ids::codes::Correction,
) -> kokuho_proto::results::v1::ResultRow {
    kokuho_outbox::wire(
        &kokuho_rows::Ri {
            resident: resident.to_string(),
            muni_id: muni_id.to_string(),
            assigned_on: kokuho_ids::Date::from_yyyymmdd(date).unwrap_or(kokuho_ids::Date::MAX),
            correction,
        }
        .into(),
    )
}

/// An RE row of identity's decider (W002, W005, C01, C02) on the wire, with the chunk's receipt.
pub(crate) fn re(r: &kokuho_identity_domain::Row, receipt: &str) -> kokuho_proto::results::v1::ResultRow {
    use kokuho_ids::codes::{AlertState, InputKind};
    kokuho_outbox::wire(
        &kokuho_rows::Re {
            kubun: r.kubun,
            code: r.code,
            receipt: receipt.to_string(),
            file_kind: Some(InputKind::Persons),
            line: Some(r.line),
            resident: r.resident.clone(),
            field: r.field.to_string(),
            message: r.message.to_string(),
            counterpart: String::new(),
            counterpart_start: None,
            counterpart_end: None,
            state: AlertState::Raised,
        }
        .into(),
    )
}

/// What identity does with an event of the intake stream.
pub(crate) enum IntakeInput {
    /// A chunk of accepted records: its KK records are linked (I1–I5).
    Chunk(intake::pb::RecordsAccepted),
    /// The business calendar, carried over so day closes keep their place among the chunks.
    Calendar { date: u32, day_close: bool },
    /// Nothing for identity to decide.
    Nothing,
}

/// Decodes an event of the intake stream (every event of it is named here, so a new one forces
/// a decision).
pub(crate) fn intake_input(bytes: &[u8]) -> Result<IntakeInput, String> {
    use intake::Event;
    let (_, event) = kokuho_bus::event::decode::<intake::Events>(bytes)?;
    Ok(match event {
        Event::RecordsAccepted(chunk) => IntakeInput::Chunk(chunk),
        Event::BusinessDateSet(d) => IntakeInput::Calendar { date: d.date, day_close: false },
        Event::DayClosed(d) => IntakeInput::Calendar { date: d.date, day_close: true },
        Event::SubmissionAccepted(_) | Event::SubmissionRejected(_) => IntakeInput::Nothing,
    })
}

/// 処理区分 3 削除 of a record intake accepted (and so checked).
pub(crate) fn is_delete(p: &intake::pb::PersonRecord) -> bool {
    ProcessingKind::parse(&p.processing) == Ok(ProcessingKind::Delete)
}

/// 被保険者区分 1 of a record intake accepted.
pub(crate) fn is_insured(p: &intake::pb::PersonRecord) -> bool {
    InsuredKind::parse(&p.insured_kind) == Ok(InsuredKind::Insured)
}
