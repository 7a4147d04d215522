//! I6: an operator's decision on a held record (link, relink or reject), and the IDs it implies
//! (I2: the first link to a municipality as 被保険者 assigns a 市区町村被保険者ID).

use kokuho_ids::codes::Correction;

/// What an operator decides on a held record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Link the record to the person it was held against.
    Link,
    /// Link the record to the owner of its own number (a new person if nobody has it).
    Relink,
    /// Do not link it.
    Reject,
}

/// What was decided before, for the held record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFacts {
    /// The person the record was held against (C01: the number's owner; C02: the 宛名番号's).
    pub held_against: String,
    /// Relink: the owner of the record's own number, if anyone has it.
    pub number_owner: Option<String>,
    /// The record is a 被保険者's (被保険者区分 1).
    pub insured: bool,
    /// The person the (municipality, 宛名番号) is linked to now, if any.
    pub resident_person: Option<String>,
    /// The 市区町村被保険者ID here of the person the decision links to, if it has one.
    pub muni_id: Option<String>,
}

/// The person a decision links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Known(String),
    /// A new person, registered with the record's number (relink to a number nobody has).
    New,
}

/// What the decision does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseDecision {
    /// `None`: rejected; nothing is linked.
    pub target: Option<Target>,
    /// The ID the link carries: the person's own here, or a new one (`assign`).
    pub muni_id: Option<String>,
    /// A new 市区町村被保険者ID is assigned here (I2).
    pub assign: bool,
    /// An RI row with this 訂正: 0 for a new ID, 1 when the 宛名番号 moved to another person.
    pub ri: Option<Correction>,
}

/// I6: the decision on a held record. The caller looks up `facts` for the target the action
/// names ([`target_of`]) and builds the event from the decision.
pub fn resolve(action: Action, facts: &CaseFacts) -> CaseDecision {
    let Some(target) = target_of(action, facts) else {
        return CaseDecision { target: None, muni_id: None, assign: false, ri: None };
    };
    let target_id = match &target {
        Target::Known(id) => Some(id.as_str()),
        Target::New => None,
    };
    // The 宛名番号 was linked to another person: RI replaces the ID the municipality was told.
    let moved = facts.resident_person.as_deref().is_some_and(|p| Some(p) != target_id);
    let correction = if moved { Correction::Replaces } else { Correction::First };
    let (muni_id, assign, ri) = match (&facts.muni_id, facts.insured) {
        (_, false) => (None, false, None),
        (Some(id), true) => (Some(id.clone()), false, moved.then_some(Correction::Replaces)),
        (None, true) => (None, true, Some(correction)),
    };
    CaseDecision { target: Some(target), muni_id, assign, ri }
}

/// The person `action` links the held record to.
pub fn target_of(action: Action, facts: &CaseFacts) -> Option<Target> {
    match action {
        Action::Reject => None,
        Action::Link => Some(Target::Known(facts.held_against.clone())),
        Action::Relink => Some(match &facts.number_owner {
            Some(owner) => Target::Known(owner.clone()),
            None => Target::New,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> CaseFacts {
        CaseFacts {
            held_against: "13a".into(),
            number_owner: Some("13b".into()),
            insured: true,
            resident_person: None,
            muni_id: None,
        }
    }

    /// I6: a rejection links nothing; link links to the person held against; relink to the
    /// number's owner, or a new person when nobody has the number.
    #[test]
    fn i6_each_action_links_to_its_person() {
        assert_eq!(
            resolve(Action::Reject, &facts()),
            CaseDecision { target: None, muni_id: None, assign: false, ri: None }
        );
        assert_eq!(resolve(Action::Link, &facts()).target, Some(Target::Known("13a".into())));
        assert_eq!(resolve(Action::Relink, &facts()).target, Some(Target::Known("13b".into())));
        let nobody = CaseFacts { number_owner: None, ..facts() };
        assert_eq!(resolve(Action::Relink, &nobody).target, Some(Target::New));
    }

    /// I6 with I2: a 被保険者 without an ID here gets one (RI 0); one with an ID keeps it (no RI);
    /// a 擬制世帯主 gets none.
    #[test]
    fn i6_i2_the_first_link_here_assigns_an_id() {
        let d = resolve(Action::Link, &facts());
        assert_eq!((d.assign, d.ri, d.muni_id), (true, Some(Correction::First), None));
        let has = CaseFacts { muni_id: Some("M".into()), ..facts() };
        let d = resolve(Action::Link, &has);
        assert_eq!((d.assign, d.ri, d.muni_id.as_deref()), (false, None, Some("M")));
        let deemed = CaseFacts { insured: false, ..facts() };
        let d = resolve(Action::Link, &deemed);
        assert_eq!((d.assign, d.ri, d.muni_id), (false, None, None));
    }

    /// I6 with I5's RI rule: when the 宛名番号 was linked to another person, RI replaces the ID
    /// the municipality was told (訂正 1), with the target's own ID or a new one.
    #[test]
    fn i6_a_moved_resident_number_gets_ri_with_correction() {
        let moved = CaseFacts { resident_person: Some("13z".into()), muni_id: Some("M".into()), ..facts() };
        let d = resolve(Action::Link, &moved);
        assert_eq!((d.assign, d.ri), (false, Some(Correction::Replaces)));
        let moved_new = CaseFacts { resident_person: Some("13z".into()), ..facts() };
        assert_eq!(resolve(Action::Link, &moved_new).ri, Some(Correction::Replaces));
        // Linked to the same person already: not moved.
        let same = CaseFacts { resident_person: Some("13a".into()), muni_id: Some("M".into()), ..facts() };
        assert_eq!(resolve(Action::Link, &same).ri, None);
    }
}
