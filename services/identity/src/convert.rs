//! Wire ↔ crypto and domain types for identity: the only module that builds proto messages
//! from decisions.

use kokuho_crypto::AtRest;
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

/// The context a held record's stored number is bound to.
pub(crate) fn case_context(case_id: &str) -> Vec<u8> {
    format!("case:{case_id}").into_bytes()
}
