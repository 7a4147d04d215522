//! A resident's or a person's history from history's trees, and why a resident is linked the
//! way it is. Pure reads of the stores: no clock, no log.

use std::collections::BTreeSet;

use kokuho_proto::history::v1 as pb;
use kokuho_proto::history::v1::Fact;
use kokuho_store::{Read, StoreError, u32_of};

use crate::index::{
    CALENDAR_PREFIX, links_prefix, merged_from_prefix, merged_into_key, person_prefix, resident_prefix,
    residents_prefix,
};
use crate::sources::fact_of;

/// history's trees, the identity tree (links, merges) and the intake tree (calendar) first.
pub(crate) struct Trees<'a> {
    pub(crate) identity: &'a dyn Read,
    pub(crate) intake: &'a dyn Read,
    /// Every tree, in the order a fact's stream is shown on a tie (intake … audit).
    pub(crate) all: Vec<&'a dyn Read>,
}

/// Whose history.
#[derive(Debug, Clone)]
pub(crate) enum Subject {
    Resident { municipality: String, resident: String },
    Person(String),
}

/// A query: the subject, who looks (`None`: an operator, who sees every municipality's
/// facts), and the last business date shown.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) subject: Subject,
    pub(crate) viewer: Option<String>,
    pub(crate) as_of: Option<u32>,
}

fn tail(key: &[u8], prefix: &str) -> String {
    String::from_utf8_lossy(&key[prefix.len()..]).into_owned()
}

/// The persons a resident is linked to.
fn linked(identity: &dyn Read, municipality: &str, resident: &str) -> Result<BTreeSet<String>, StoreError> {
    let prefix = links_prefix(municipality, resident);
    Ok(identity.scan_prefix(prefix.as_bytes())?.into_iter().map(|(k, _)| tail(&k, &prefix)).collect())
}

/// The person `pref` resolves to now (I5: a merged provisional person resolves to its survivor).
pub(crate) fn survivor(identity: &dyn Read, pref: &str) -> Result<String, StoreError> {
    let mut current = pref.to_string();
    for _ in 0..64 {
        match identity.get(&merged_into_key(&current))? {
            Some(into) => current = String::from_utf8_lossy(&into).into_owned(),
            None => break,
        }
    }
    Ok(current)
}

/// `persons` with every person merged into them or they into, transitively (I5).
fn with_merges(identity: &dyn Read, persons: BTreeSet<String>) -> Result<BTreeSet<String>, StoreError> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = persons.into_iter().collect();
    while let Some(p) = todo.pop() {
        if !out.insert(p.clone()) {
            continue;
        }
        if let Some(into) = identity.get(&merged_into_key(&p))? {
            todo.push(String::from_utf8_lossy(&into).into_owned());
        }
        let prefix = merged_from_prefix(&p);
        todo.extend(identity.scan_prefix(prefix.as_bytes())?.into_iter().map(|(k, _)| tail(&k, &prefix)));
    }
    Ok(out)
}

/// The business date in force at each moment (rules.md T1), from intake's calendar.
fn calendar(intake: &dyn Read) -> Result<Vec<(String, u32)>, StoreError> {
    Ok(intake
        .scan_prefix(CALENDAR_PREFIX.as_bytes())?
        .into_iter()
        .map(|(k, v)| (tail(&k, CALENDAR_PREFIX)[..20].to_string(), u32_of(Some(v))))
        .collect())
}

fn nanos_key(fact: &Fact) -> String {
    let n = fact.occurred_at.as_ref().map(|t| t.seconds as i128 * 1_000_000_000 + t.nanos as i128).unwrap_or(0);
    format!("{:020}", n.max(0))
}

/// Every fact of the query's subject the viewer may see, in order: by business date, then
/// by the time it was appended (a cause before its effects), then by stream and sequence.
pub(crate) fn history(trees: &Trees<'_>, q: &Query) -> Result<pb::HistoryResponse, StoreError> {
    let (persons, mut residents) = match &q.subject {
        Subject::Resident { municipality, resident } => (
            linked(trees.identity, municipality, resident)?,
            BTreeSet::from([(municipality.clone(), resident.clone())]),
        ),
        Subject::Person(p) => (BTreeSet::from([p.clone()]), BTreeSet::new()),
    };
    let persons = with_merges(trees.identity, persons)?;
    for p in &persons {
        let prefix = residents_prefix(p);
        for (k, _) in trees.identity.scan_prefix(prefix.as_bytes())? {
            if let Some((m, r)) = tail(&k, &prefix).split_once('/') {
                residents.insert((m.to_string(), r.to_string()));
            }
        }
    }
    if let Some(viewer) = &q.viewer {
        residents.retain(|(m, _)| m == viewer);
    }
    let visible = |f: &Fact| match &q.viewer {
        None => true,
        Some(v) => f.municipality.is_empty() || &f.municipality == v,
    };
    let calendar = calendar(trees.intake)?;
    let mut facts = Vec::new();
    for (rank, tree) in trees.all.iter().enumerate() {
        let prefixes =
            residents.iter().map(|(m, r)| resident_prefix(m, r)).chain(persons.iter().map(|p| person_prefix(p)));
        for prefix in prefixes {
            for (_, v) in tree.scan_prefix(prefix.as_bytes())? {
                let mut fact = fact_of(&v)?;
                if !visible(&fact) {
                    continue;
                }
                let at = nanos_key(&fact);
                if fact.business_date == 0 {
                    let i = calendar.partition_point(|(n, _)| *n <= at);
                    fact.business_date = if i == 0 { 0 } else { calendar[i - 1].1 };
                }
                if q.as_of.is_some_and(|d| fact.business_date > d) {
                    continue;
                }
                facts.push((fact.business_date, at, rank, fact.sequence, fact));
            }
        }
    }
    facts.sort_by(|a, b| (a.0, &a.1, a.2, a.3).cmp(&(b.0, &b.1, b.2, b.3)));
    Ok(pb::HistoryResponse {
        persons: persons.into_iter().collect(),
        facts: facts.into_iter().map(|f| f.4).collect(),
        complete: true,
    })
}

/// The facts of identity linkage: what `ExplainLink` rests on.
const LINK_KINDS: [&str; 6] = ["person", "id", "link", "held", "resolved", "merged"];

/// Why (municipality, 宛名番号) is linked to its person, or held (rules.md I1–I6), for `viewer`.
pub(crate) fn explain_link(
    trees: &Trees<'_>,
    municipality: &str,
    resident: &str,
    viewer: Option<&str>,
) -> Result<pb::ExplainLinkResponse, StoreError> {
    let q = Query {
        subject: Subject::Resident { municipality: municipality.into(), resident: resident.into() },
        viewer: viewer.map(str::to_string),
        as_of: None,
    };
    let mut history = history(trees, &q)?;
    history
        .facts
        .retain(|f| f.stream == kokuho_identity_contract::STREAM.name && LINK_KINDS.contains(&f.kind.as_str()));
    let now: BTreeSet<String> = linked(trees.identity, municipality, resident)?
        .iter()
        .map(|p| survivor(trees.identity, p))
        .collect::<Result<_, _>>()?;
    let mut lines = Vec::new();
    let person = now.iter().next().cloned().unwrap_or_default();
    if person.is_empty() {
        let held =
            history.facts.iter().any(|f| f.kind == "held") && !history.facts.iter().any(|f| f.kind == "resolved");
        lines.push(if held {
            format!("{municipality} の宛名番号 {resident} はどの被保険者にも紐付いていません: 審査待ちで保留中です (I3/I4、I6)")
        } else {
            format!("{municipality} の宛名番号 {resident} はどの被保険者にも紐付いていません")
        });
    } else {
        lines.push(format!(
            "{municipality} の宛名番号 {resident} は都道府県被保険者ID {person} に紐付いています (I2: 宛名番号がある限り同じ被保険者)"
        ));
        if history.persons.len() > 1 {
            let merged: Vec<&str> = history.persons.iter().filter(|p| **p != person).map(String::as_str).collect();
            lines.push(format!(
                "仮の被保険者 {} は同じ個人番号により {person} に統合されました (I5)",
                merged.join("、")
            ));
        }
    }
    for f in &history.facts {
        lines.push(format!("{} [{}] {}", f.business_date, f.rules.join(","), f.text));
    }
    let rules: BTreeSet<String> = history.facts.iter().flat_map(|f| f.rules.iter().cloned()).collect();
    Ok(pb::ExplainLinkResponse { person, rules: rules.into_iter().collect(), lines, facts: history.facts })
}
