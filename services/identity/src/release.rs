//! identity's release audit (rules.md R6, security.md S8): every release of a 個人番号 is an entry
//! of a hash chain on `kokuho.identity.audit`, appended before the number leaves.

use kokuho_runtime::audit::{Chained, chain_hash};

use crate::{Event, Events};

/// One release entry (`NumberReleased`) as a link of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Release(pub kokuho_identity_contract::pb::NumberReleased);

impl Chained for Release {
    type Events = Events;

    fn previous_hash(&self) -> &str {
        &self.0.previous_hash
    }

    fn hash(&self) -> &str {
        &self.0.hash
    }

    fn computed_hash(&self) -> String {
        let e = &self.0;
        let at = e.released_at.to_string();
        chain_hash([e.previous_hash.as_str(), &e.pref_id, &e.purpose, &e.caller, &at])
    }

    fn chain_to(&mut self, previous: String) {
        self.0.previous_hash = previous;
        self.0.hash = self.computed_hash();
    }

    fn of(event: Event) -> Option<Self> {
        match event {
            Event::NumberReleased(e) => Some(Release(e)),
            Event::ChunkLinked(_) | Event::CaseResolved(_) | Event::BusinessDay(_) => None,
        }
    }

    fn into_event(self) -> Event {
        Event::NumberReleased(self.0)
    }
}

/// The hash of a release audit entry: SHA-256 over the previous hash and the entry's fields.
pub fn audit_hash(e: &kokuho_identity_contract::pb::NumberReleased) -> String {
    Release(e.clone()).computed_hash()
}
