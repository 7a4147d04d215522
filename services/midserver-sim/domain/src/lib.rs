//! The intermediate server (医療保険者等向け中間サーバー) as kokuho's simulator plays it, pure:
//! what an Apply does to a partition's records (R1, R4), what an eligibility check answers
//! (オンライン資格確認), and which calls an injected fault hits.
//!
//! A record is filed under its card and 枝番 (保険者番号, 記号, 番号, 枝番) in one partition
//! (委託区画, the municipality). `N` is the 個人番号 as the store keeps it (sealed at rest).
//!
//! Architecture invariant: no IO, no clock, no wire types.

use kokuho_ids::Date;
use kokuho_ids::codes::RelayProcessing;
use sha2::{Digest as _, Sha256};

/// Where a record is filed: card and 枝番.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub insurer: String,
    pub symbol: String,
    pub number: String,
    pub branch: u8,
}

/// 加入者情報 as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<N> {
    pub partition: String,
    pub individual_number: N,
    pub name: String,
    pub kana: String,
    pub birth: Date,
    pub sex: String,
    pub acquired: Date,
    pub lost: Option<Date>,
    pub pref_acquired: Option<Date>,
    pub pref_lost: Option<Date>,
}

/// Why the server refuses an Apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 新規 for a card and 枝番 that holds a record.
    AlreadyRegistered,
    /// 変更 or 削除 of a card and 枝番 that holds none.
    NotRegistered,
    /// The record is filed in another partition.
    OtherPartition,
    /// An injected fault: rejected with this reason.
    Injected(String),
}

impl Rejection {
    /// The server's code (RM エラーコード, RE R03 内容).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::AlreadyRegistered => "M01",
            Rejection::NotRegistered => "M02",
            Rejection::OtherPartition => "M03",
            Rejection::Injected(_) => "M99",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Rejection::AlreadyRegistered => "同じ記号番号・枝番の加入者情報が登録済みです".into(),
            Rejection::NotRegistered => "記号番号・枝番の加入者情報が登録されていません".into(),
            Rejection::OtherPartition => "他の委託区画の加入者情報です".into(),
            Rejection::Injected(reason) => reason.clone(),
        }
    }
}

/// R1, R4: an Apply on the record filed under its key (`current`): the record after it
/// (`None`: deleted), or why it is refused. A partition touches only its own records.
pub fn apply<N>(
    current: Option<&Entry<N>>,
    partition: &str,
    processing: RelayProcessing,
    new: Entry<N>,
) -> Result<Option<Entry<N>>, Rejection> {
    if new.partition != partition || current.is_some_and(|c| c.partition != partition) {
        return Err(Rejection::OtherPartition);
    }
    match (processing, current) {
        (RelayProcessing::New, Some(_)) => Err(Rejection::AlreadyRegistered),
        (RelayProcessing::New, None) => Ok(Some(new)),
        (RelayProcessing::Change | RelayProcessing::Delete, None) => Err(Rejection::NotRegistered),
        (RelayProcessing::Change, Some(_)) => Ok(Some(new)),
        (RelayProcessing::Delete, Some(_)) => Ok(None),
    }
}

/// What an eligibility check answers: never the 個人番号.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub found: bool,
    pub insured: bool,
    pub acquired: Option<Date>,
    pub lost: Option<Date>,
    pub pref_acquired: Option<Date>,
    pub pref_lost: Option<Date>,
}

/// Insured on `date`: acquired on or before it and not yet lost (資格喪失年月日 is the first day
/// without qualification).
pub fn eligibility<N>(entry: Option<&Entry<N>>, date: Date) -> Answer {
    match entry {
        None => {
            Answer { found: false, insured: false, acquired: None, lost: None, pref_acquired: None, pref_lost: None }
        }
        Some(e) => Answer {
            found: true,
            insured: e.acquired <= date && e.lost.is_none_or(|l| date < l),
            acquired: Some(e.acquired),
            lost: e.lost,
            pref_acquired: e.pref_acquired,
            pref_lost: e.pref_lost,
        },
    }
}

/// Injected faults (from configuration and at run time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    pub unreachable: bool,
    pub delay_ms: u32,
    pub reject_per_mille: u32,
    pub reject_reason: String,
    pub lose_ack_per_mille: u32,
}

impl Faults {
    /// Parses `key=value` pairs separated by commas (a deployment setting), e.g.
    /// `reject_per_mille=100,reject_reason=検証エラー,delay_ms=20`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut f = Faults::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not key=value"))?;
            let number = |v: &str| v.parse::<u32>().map_err(|_| format!("{k}: {v:?} is not a number"));
            match k {
                "unreachable" => {
                    f.unreachable = v.parse().map_err(|_| format!("unreachable: {v:?} is not true or false"))?
                }
                "delay_ms" => f.delay_ms = number(v)?,
                "reject_per_mille" => f.reject_per_mille = number(v)?.min(1000),
                "reject_reason" => f.reject_reason = v.to_string(),
                "lose_ack_per_mille" => f.lose_ack_per_mille = number(v)?.min(1000),
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(f)
    }

    /// Is this Apply rejected by the injected share? Always the same keys (a retry of a rejected
    /// record is rejected again, as a real validation error would be).
    pub fn rejects(&self, key: &str) -> bool {
        share(key, b"reject") < self.reject_per_mille
    }

    /// Is this Apply's answer lost the first time (applied, then UNAVAILABLE)?
    pub fn loses_ack(&self, key: &str) -> bool {
        share(key, b"ack") < self.lose_ack_per_mille
    }
}

/// A stable number in 0..1000 for a key.
fn share(key: &str, salt: &[u8]) -> u32 {
    let digest = Sha256::new().chain_update(salt).chain_update(key.as_bytes()).finalize();
    (u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])) % 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    fn entry(partition: &str, lost: Option<&str>) -> Entry<()> {
        Entry {
            partition: partition.into(),
            individual_number: (),
            name: "山田 太郎".into(),
            kana: "ヤマダ タロウ".into(),
            birth: d("19550820"),
            sex: "1".into(),
            acquired: d("20260510"),
            lost: lost.map(d),
            pref_acquired: Some(d("20200401")),
            pref_lost: None,
        }
    }

    /// R4 as the server sees it: 新規 once, 変更 and 削除 of what exists.
    #[test]
    fn apply_registers_changes_and_deletes() {
        let e = entry("131032", None);
        assert_eq!(apply(None, "131032", RelayProcessing::New, e.clone()), Ok(Some(e.clone())));
        assert_eq!(apply(Some(&e), "131032", RelayProcessing::New, e.clone()), Err(Rejection::AlreadyRegistered));
        let ended = entry("131032", Some("20260816"));
        assert_eq!(apply(Some(&e), "131032", RelayProcessing::Change, ended.clone()), Ok(Some(ended)));
        assert_eq!(apply(Some(&e), "131032", RelayProcessing::Delete, e.clone()), Ok(None));
        assert_eq!(apply(None, "131032", RelayProcessing::Change, e.clone()), Err(Rejection::NotRegistered));
        assert_eq!(apply(None, "131032", RelayProcessing::Delete, e.clone()), Err(Rejection::NotRegistered));
    }

    /// R1: a partition holds only its municipality's records.
    #[test]
    fn r1_a_partition_touches_only_its_own_records() {
        let other = entry("131016", None);
        assert_eq!(apply(None, "131032", RelayProcessing::New, other.clone()), Err(Rejection::OtherPartition));
        let mine = entry("131032", None);
        assert_eq!(apply(Some(&other), "131032", RelayProcessing::Change, mine), Err(Rejection::OtherPartition));
    }

    /// Eligibility: insured from 資格取得年月日 until the day before 資格喪失年月日.
    #[test]
    fn eligibility_on_a_date() {
        let e = entry("131032", Some("20260816"));
        assert!(!eligibility(Some(&e), d("20260509")).insured);
        assert!(eligibility(Some(&e), d("20260510")).insured);
        assert!(eligibility(Some(&e), d("20260815")).insured);
        assert!(!eligibility(Some(&e), d("20260816")).insured);
        let a = eligibility(Some(&e), d("20260601"));
        assert_eq!(
            (a.found, a.acquired, a.lost, a.pref_acquired),
            (true, Some(d("20260510")), Some(d("20260816")), Some(d("20200401")))
        );
        assert!(eligibility(Some(&entry("131032", None)), d("20991231")).insured);
        assert!(!eligibility::<()>(None, d("20260601")).found);
    }

    /// Faults: parsed from a setting; the injected shares hit the same keys every time.
    #[test]
    fn faults_parse_and_hit_the_same_keys() {
        let f = Faults::parse("reject_per_mille=500, reject_reason=検証エラー,delay_ms=20,lose_ack_per_mille=1000")
            .unwrap();
        assert_eq!(
            (f.reject_per_mille, f.reject_reason.as_str(), f.delay_ms, f.unreachable),
            (500, "検証エラー", 20, false)
        );
        assert!(Faults::parse("unreachable=yes").is_err());
        assert!(Faults::parse("nonsense=1").is_err());
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        let keys: Vec<String> = (0..1000).map(|i| format!("131032/2000{i}/20260510/1/1")).collect();
        let rejected = keys.iter().filter(|k| f.rejects(k)).count();
        assert!((400..600).contains(&rejected), "about half: {rejected}");
        assert!(keys.iter().all(|k| f.rejects(k) == f.rejects(k)));
        assert!(keys.iter().all(|k| f.loses_ack(k)), "1000 per mille loses every answer");
        assert!(!Faults::default().rejects(&keys[0]) && !Faults::default().loses_ack(&keys[0]));
    }

    /// The server's codes and reasons: one each, the injected reason as given.
    #[test]
    fn rejections_have_their_codes_and_reasons() {
        let all = [
            Rejection::AlreadyRegistered,
            Rejection::NotRegistered,
            Rejection::OtherPartition,
            Rejection::Injected("検証エラー".into()),
        ];
        let codes: Vec<&str> = all.iter().map(Rejection::code).collect();
        assert_eq!(codes, ["M01", "M02", "M03", "M99"]);
        let messages: std::collections::BTreeSet<String> = all.iter().map(Rejection::message).collect();
        assert_eq!(messages.len(), 4);
        assert!(messages.contains("検証エラー") && messages.iter().all(|m| !m.is_empty()));
    }

    /// A share of 0 per mille hits no key, not even one whose number is 0.
    #[test]
    fn no_fault_at_zero() {
        let none = Faults::default();
        let reject_zero = (0..100_000).map(|i| format!("k{i}")).find(|k| share(k, b"reject") == 0).unwrap();
        let ack_zero = (0..100_000).map(|i| format!("k{i}")).find(|k| share(k, b"ack") == 0).unwrap();
        assert!(!none.rejects(&reject_zero));
        assert!(!none.loses_ack(&ack_zero));
        let one = Faults { reject_per_mille: 1, lose_ack_per_mille: 1, ..Faults::default() };
        assert!(one.rejects(&reject_zero) && one.loses_ack(&ack_zero));
    }
}
