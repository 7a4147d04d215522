//! I5 across municipalities: what a provisional person's 市区町村被保険者IDs become when it merges
//! into the owner of its number (the survivor).

use std::collections::BTreeMap;

/// The provisional person's IDs: per municipality, its ID there and the 宛名番号 linked to it.
pub type HeldIds = BTreeMap<String, (String, Vec<String>)>;

/// What the merge does to the IDs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeIds {
    /// Municipalities where the survivor had no ID: it takes the provisional one over, and no
    /// RI is sent (the municipality knows that ID): (municipality, ID, first 宛名番号).
    pub adopted: Vec<(String, String, String)>,
    /// Where the survivor has its own ID: RI tells each 宛名番号 of the provisional person the
    /// survivor's ID with 訂正 = 1: (municipality, 宛名番号, the survivor's ID).
    pub corrections: Vec<(String, String, String)>,
    /// The survivor's ID in every municipality where the provisional person had one: the ID every
    /// period there carries from now on (RS is re-sent where it changed).
    pub survivor_ids: BTreeMap<String, String>,
}

/// I5: the survivor keeps its 市区町村被保険者ID where it has one and takes over the provisional
/// person's elsewhere. `survivor` holds the survivor's IDs in (at least) the municipalities of
/// `provisional`.
pub fn merge_ids(provisional: &HeldIds, survivor: &BTreeMap<String, String>) -> MergeIds {
    let mut out = MergeIds::default();
    for (muni, (id, residents)) in provisional {
        match survivor.get(muni) {
            None => {
                out.adopted.push((muni.clone(), id.clone(), residents.first().cloned().unwrap_or_default()));
                out.survivor_ids.insert(muni.clone(), id.clone());
            }
            Some(own) => {
                out.corrections.extend(residents.iter().map(|r| (muni.clone(), r.clone(), own.clone())));
                out.survivor_ids.insert(muni.clone(), own.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(entries: &[(&str, &str, &[&str])]) -> HeldIds {
        entries
            .iter()
            .map(|(m, id, rs)| (m.to_string(), (id.to_string(), rs.iter().map(|r| r.to_string()).collect())))
            .collect()
    }

    /// I5: where the survivor has no ID, it adopts the provisional one (no RI); where it has
    /// one, it keeps it and RI tells every 宛名番号 of the provisional person (訂正 1); either
    /// way the periods there carry the survivor's ID.
    #[test]
    fn i5_the_survivor_keeps_its_ids_and_adopts_the_others() {
        let provisional = held(&[("131016", "MP16", &["100009"]), ("131032", "MP32", &["200009", "200010"])]);
        let survivor = [("131032".to_string(), "MS32".to_string())].into();
        let ids = merge_ids(&provisional, &survivor);
        assert_eq!(ids.adopted, vec![("131016".into(), "MP16".into(), "100009".into())]);
        assert_eq!(
            ids.corrections,
            vec![("131032".into(), "200009".into(), "MS32".into()), ("131032".into(), "200010".into(), "MS32".into())]
        );
        assert_eq!(
            ids.survivor_ids,
            [("131016".to_string(), "MP16".to_string()), ("131032".to_string(), "MS32".to_string())].into()
        );
        // A provisional person without IDs changes none.
        assert_eq!(merge_ids(&HeldIds::new(), &survivor), MergeIds::default());
    }
}
