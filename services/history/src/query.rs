//! A resident's or a person's history, and why a resident is linked the way it is: who the
//! query is about (links and merges in identity's tree), their facts (identity's stored whole,
//! the others' read again from the log where the index says they are), then what the caller
//! may see, dated and in order.

use std::collections::BTreeSet;

use kokuho_proto::history::v1 as pb;
use kokuho_proto::history::v1::Fact;
use kokuho_store::{Read, StoreError, u32_of};

use crate::index::{
    CALENDAR_PREFIX, Sink, Source, Wanted, links_prefix, merged_from_prefix, merged_into_key, person_prefix,
    person_refs, refs, resident_prefix, resident_refs, residents_prefix,
};
use crate::sources::fact_of;

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

/// The residents and persons the query is about: the resident's persons (with their merges)
/// and every resident of those persons the viewer may see.
pub(crate) fn wanted(identity: &dyn Read, q: &Query) -> Result<Wanted, StoreError> {
    let (persons, mut residents) = match &q.subject {
        Subject::Resident { municipality, resident } => {
            (linked(identity, municipality, resident)?, BTreeSet::from([(municipality.clone(), resident.clone())]))
        }
        Subject::Person(p) => (BTreeSet::from([p.clone()]), BTreeSet::new()),
    };
    let persons = with_merges(identity, persons)?;
    for p in &persons {
        let prefix = residents_prefix(p);
        for (k, _) in identity.scan_prefix(prefix.as_bytes())? {
            if let Some((m, r)) = tail(&k, &prefix).split_once('/') {
                residents.insert((m.to_string(), r.to_string()));
            }
        }
    }
    if let Some(viewer) = &q.viewer {
        residents.retain(|(m, _)| m == viewer);
    }
    Ok(Wanted { residents, persons })
}

/// The facts a tree stores whole (identity's).
pub(crate) fn stored(tree: &dyn Read, wanted: &Wanted) -> Result<Vec<Fact>, StoreError> {
    let prefixes = wanted
        .residents
        .iter()
        .map(|(m, r)| resident_prefix(m, r))
        .chain(wanted.persons.iter().map(|p| person_prefix(p)));
    let mut out = Vec::new();
    for prefix in prefixes {
        for (_, v) in tree.scan_prefix(prefix.as_bytes())? {
            out.push(fact_of(&v)?);
        }
    }
    Ok(out)
}

/// Where a tree's index says the wanted residents' and persons' events are.
fn located(tree: &dyn Read, wanted: &Wanted) -> Result<BTreeSet<u64>, StoreError> {
    let keys =
        wanted.residents.iter().map(|(m, r)| resident_refs(m, r)).chain(wanted.persons.iter().map(|p| person_refs(p)));
    let mut out = BTreeSet::new();
    for key in keys {
        if let Some(v) = tree.get(&key)? {
            out.extend(refs(&v));
        }
    }
    Ok(out)
}

/// The facts about the wanted residents and persons in `S`'s stream: each event the index
/// locates, read again from the log and read by the same source that indexed it.
pub(crate) async fn from_log<S: Source>(
    source: &S,
    tree: &dyn Read,
    bus: &kokuho_bus::Bus,
    wanted: &Wanted,
) -> Result<Vec<Fact>, crate::HistoryError> {
    let mut out = Vec::new();
    for seq in located(tree, wanted)? {
        let Some(payload) = bus.event_at(S::STREAM, seq).await? else {
            return Err(crate::HistoryError::Missing { stream: S::STREAM, seq });
        };
        let mut sink = Sink::Collect { store: tree, wanted, out: &mut out };
        if let Err(e) = source.read(&mut sink, seq, &payload) {
            // Indexed once, so it decoded then: the log changed under the index.
            return Err(crate::HistoryError::Unreadable { stream: S::STREAM, seq, why: e.to_string() });
        }
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

/// Streams in the order their facts are shown on a tie: a cause's stream before its effects'.
const STREAMS: [&str; 7] = [
    crate::sources::Intake::STREAM,
    crate::sources::Identity::STREAM,
    crate::sources::Continuity::STREAM,
    crate::sources::Kogaku::STREAM,
    crate::sources::Relay::STREAM,
    crate::sources::Results::STREAM,
    crate::sources::Audit::STREAM,
];

/// What the viewer may see of `facts`, dated, up to `as_of`, in order: by business date, then
/// by the time it was appended (a cause before its effects), then by stream and sequence; a
/// fact equal to the last of its topic (a person's periods evaluated again unchanged) once.
pub(crate) fn arrange(facts: Vec<Fact>, q: &Query, intake: &dyn Read) -> Result<Vec<Fact>, StoreError> {
    let visible = |f: &Fact| match &q.viewer {
        None => true,
        Some(v) => f.municipality.is_empty() || &f.municipality == v,
    };
    let calendar = calendar(intake)?;
    let mut dated = Vec::new();
    for (n, mut fact) in facts.into_iter().enumerate() {
        if !visible(&fact) {
            continue;
        }
        let at = nanos_key(&fact);
        if fact.business_date == 0 {
            let i = calendar.partition_point(|(c, _)| *c <= at);
            fact.business_date = if i == 0 { 0 } else { calendar[i - 1].1 };
        }
        if q.as_of.is_some_and(|d| fact.business_date > d) {
            continue;
        }
        let rank = STREAMS.iter().position(|s| *s == fact.stream).unwrap_or(STREAMS.len());
        dated.push(((fact.business_date, at, rank, fact.sequence, n), fact));
    }
    dated.sort_by(|a, b| a.0.cmp(&b.0));
    let mut last: std::collections::BTreeMap<(String, String, String), String> = Default::default();
    let mut out = Vec::new();
    for (_, fact) in dated {
        if fact.kind == "periods" || fact.kind == "candidate" {
            let topic = (fact.kind.clone(), fact.person.clone(), fact.topic.clone());
            if last.get(&topic) == Some(&fact.text) {
                continue;
            }
            last.insert(topic, fact.text.clone());
        }
        out.push(fact);
    }
    Ok(out)
}

/// The facts of identity linkage: what `ExplainLink` rests on.
const LINK_KINDS: [&str; 6] = ["person", "id", "link", "held", "resolved", "merged"];

/// Why (municipality, 宛名番号) is linked to its person, or held (rules.md I1–I6), for `viewer`:
/// from identity's facts alone.
pub(crate) fn explain_link(
    identity: &dyn Read,
    intake: &dyn Read,
    municipality: &str,
    resident: &str,
    viewer: Option<&str>,
) -> Result<pb::ExplainLinkResponse, StoreError> {
    let q = Query {
        subject: Subject::Resident { municipality: municipality.into(), resident: resident.into() },
        viewer: viewer.map(str::to_string),
        as_of: None,
    };
    let wanted = wanted(identity, &q)?;
    let facts = arrange(stored(identity, &wanted)?, &q, intake)?;
    let facts: Vec<Fact> = facts.into_iter().filter(|f| LINK_KINDS.contains(&f.kind.as_str())).collect();
    let now: BTreeSet<String> =
        linked(identity, municipality, resident)?.iter().map(|p| survivor(identity, p)).collect::<Result<_, _>>()?;
    let mut lines = Vec::new();
    let person = now.iter().next().cloned().unwrap_or_default();
    if person.is_empty() {
        let held = facts.iter().any(|f| f.kind == "held") && !facts.iter().any(|f| f.kind == "resolved");
        lines.push(if held {
            format!("{municipality} の宛名番号 {resident} はどの被保険者にも紐付いていません: 審査待ちで保留中です (I3/I4、I6)")
        } else {
            format!("{municipality} の宛名番号 {resident} はどの被保険者にも紐付いていません")
        });
    } else {
        lines.push(format!(
            "{municipality} の宛名番号 {resident} は都道府県被保険者ID {person} に紐付いています (I2: 宛名番号がある限り同じ被保険者)"
        ));
        if wanted.persons.len() > 1 {
            let merged: Vec<&str> = wanted.persons.iter().filter(|p| **p != person).map(String::as_str).collect();
            lines.push(format!(
                "仮の被保険者 {} は同じ個人番号により {person} に統合されました (I5)",
                merged.join("、")
            ));
        }
    }
    for f in &facts {
        lines.push(format!("{} [{}] {}", f.business_date, f.rules.join(","), f.text));
    }
    let rules: BTreeSet<String> = facts.iter().flat_map(|f| f.rules.iter().cloned()).collect();
    Ok(pb::ExplainLinkResponse { person, rules: rules.into_iter().collect(), lines, facts })
}
