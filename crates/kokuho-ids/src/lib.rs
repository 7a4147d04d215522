//! Identifiers and values of the kokuho specification (`spec/identifiers.md`, `spec/formats.md`).
//!
//! This crate owns every format and check-digit rule: 地方公共団体コード ([`LocalGovCode`]),
//! 保険者番号 ([`InsurerNumber`]), 個人番号 ([`IndividualNumber`]), the IDs the system assigns
//! ([`PrefInsuredId`], [`MuniInsuredId`], Luhn), 西暦 and 和暦 dates and months ([`Date`],
//! [`Month`]), the code sets of formats.md ([`codes`]), names and カナ ([`text`]), and the
//! municipality [`Registry`].
//!
//! Architecture invariant: no IO, no async, no panics on input. Every parser returns an
//! [`IdError`] whose kind maps one to one onto the E00x codes of formats.md. The 個人番号 type
//! never prints its digits through `Debug` or `Display`.

#[cfg(test)]
mod boundaries;
mod check;
pub mod codes;
mod date;
mod ids;
mod registry;
pub mod text;

pub use check::{individual_number_check, insurer_check, local_gov_check, luhn_check, luhn_valid};
pub use date::{Date, Month};
pub use ids::{
    IndividualNumber, InsurerNumber, LocalGovCode, MuniInsuredId, PrefInsuredId, PrefectureCode, receipt,
    receipt_municipality,
};
pub use registry::{Municipality, Registry, RegistryError, ResultEncoding};

/// Why a value was refused. Each kind is one error code of formats.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// E001: wrong length, characters or format.
    #[error("wrong length, characters or format")]
    Format,
    /// E002: the check digit is wrong.
    #[error("check digit wrong")]
    CheckDigit,
    /// E003: an impossible date or month, or a 和暦 date outside its era.
    #[error("impossible date or month")]
    Impossible,
    /// E004: not a value of the code set.
    #[error("value not in the code set")]
    NotInCodeSet,
}

impl IdError {
    /// The stable error code of formats.md.
    pub fn code(self) -> &'static str {
        match self {
            IdError::Format => "E001",
            IdError::CheckDigit => "E002",
            IdError::Impossible => "E003",
            IdError::NotInCodeSet => "E004",
        }
    }
}

/// Digits of an ASCII string, or `None` if any character is not `0`–`9`.
pub(crate) fn ascii_digits(s: &str) -> Option<Vec<u8>> {
    s.bytes().map(|b| b.is_ascii_digit().then(|| b - b'0')).collect()
}
