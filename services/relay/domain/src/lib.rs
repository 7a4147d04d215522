//! relay's rules (rules.md R1–R5) as pure functions. relay keeps each municipality's partition
//! of the intermediate server (委託区画) up to date with 加入者情報.
//!
//! - [`card_of`] and [`build`] (R2): the record of a 被保険者 period — 記号番号 from the household
//!   state in force on the period's last day (the latest one for an open period), the
//!   insurer-level dates (資格喪失年月日 = 適用終了年月日 + 1) and the prefecture-level 資格取得年月日
//!   — or why it waits (R5: R01 no 個人番号, R02 a held identity conflict).
//! - [`Branches`] (R3): 枝番 per 記号番号, the smallest never used, kept for good, never reused,
//!   in KK line order within a submission; R04 when all 99 are used.
//! - [`changes`] (R4): what a change of a record sends — 1 新規, 2 変更, 3 削除, and a 削除 under
//!   the old 記号番号 with a 新規 under the new one when the 記号番号 changes — and
//!   [`idempotency_key`], one per record version.
//!
//! - [`provision`] (P1): the 別紙2 policy — which institution may be provided which file.
//!
//! The record carries the person, never the 個人番号: relay asks identity for it at send time
//! (R6, security.md S1).
//!
//! Architecture invariant: no IO, no clock, no wire types.

pub mod provision;

use std::collections::BTreeMap;

use kokuho_ids::Date;
use kokuho_ids::codes::RelayProcessing;

/// A person of the prefecture (都道府県被保険者ID).
pub type PersonId = String;

/// 保険者番号, 記号, 番号: the card a record is filed under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Card {
    pub insurer: String,
    pub symbol: String,
    pub number: String,
}

/// A household state's card: (記号, 番号), by 異動年月日.
pub type CardStates = BTreeMap<Date, (String, String)>;

/// A 被保険者 period at a municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub municipality: String,
    pub resident: String,
    pub start: Date,
    /// 適用終了年月日; `None` while open.
    pub end: Option<Date>,
}

/// What relay knows of the period's person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: PersonId,
    /// identity holds a 個人番号 for the person.
    pub has_number: bool,
    /// The record is held in an identity conflict (I3, C01/C02).
    pub held: bool,
    pub name: String,
    pub kana: String,
    pub birth: Date,
    pub sex: String,
}

/// 加入者情報 as relay sends it (R2), without the 個人番号 (fetched at send time, R6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub card: Card,
    /// 枝番, 1–99 (R3).
    pub branch: u8,
    pub person: PersonId,
    pub name: String,
    pub kana: String,
    pub birth: Date,
    pub sex: String,
    /// Insurer level: 資格取得年月日 = 適用開始年月日.
    pub acquired: Date,
    /// Insurer level: 資格喪失年月日 = 適用終了年月日 + 1; `None` while the period is open.
    pub lost: Option<Date>,
    /// Prefecture level: 資格取得年月日 from C1 (`None` until continuity determined it).
    pub pref_acquired: Option<Date>,
    /// Prefecture level: 資格喪失年月日 (only on the period that ends the prefecture span).
    pub pref_lost: Option<Date>,
}

/// The prefecture-level dates of a period, from continuity's determination (C1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pref {
    pub acquired: Option<Date>,
    pub lost: Option<Date>,
}

/// Why a period's record waits (R5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// R01: no 個人番号 yet.
    NoNumber,
    /// R02: the identity is held in a conflict.
    Held,
    /// No household state carries the period (記号番号 unknown).
    NoCard,
}

impl Waiting {
    /// RE コード of the wait (NoCard is not reported: a KK record always has its household).
    pub fn code(self) -> Option<&'static str> {
        match self {
            Waiting::NoNumber => Some("R01"),
            Waiting::Held => Some("R02"),
            Waiting::NoCard => None,
        }
    }
}

/// relay's RE codes (rules.md R5, docs/codes.md): the code, 項目名 and 内容 (fixed texts, never a
/// value).
pub fn re_text(code: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match code {
        "R01" => ("R01", "個人番号", "個人番号が未設定のため中間サーバーへ連携できません（届きしだい連携します）"),
        "R02" => ("R02", "個人番号", "識別子不整合の保留中のため中間サーバーへ連携できません（解消しだい連携します）"),
        "R03" => (
            "R03",
            "加入者情報",
            "中間サーバーが加入者情報を受け付けませんでした（結果ファイル RM のエラーコードを確認してください）",
        ),
        "R04" => ("R04", "枝番", "この記号番号の枝番（01～99）はすべて使用済みです"),
        "R05" => ("R05", "委託区画", "中間サーバーへの連携が止まっています（連合会で確認中です）"),
        _ => return None,
    })
}

/// Why a record waits, as a clerk reads it: the 内容 of its R row; empty for a code that is none.
pub fn wait_reason(code: &str) -> &'static str {
    re_text(code).map(|(_, _, text)| text).unwrap_or("")
}

/// R2: the card of a period — the household state in force on its last day, or the latest
/// state for an open period.
pub fn card_of(states: &CardStates, period: &Period) -> Option<(String, String)> {
    let state = match period.end {
        Some(end) => states.range(..=end).next_back(),
        None => states.iter().next_back(),
    };
    state.map(|(_, card)| card.clone())
}

/// R2, R5: the record of a period, or why it waits. `branch` comes from [`Branches`].
pub fn build(
    insurer: &str,
    period: &Period,
    person: &Person,
    states: &CardStates,
    branch: u8,
    pref: Pref,
) -> Result<Subscriber, Waiting> {
    if person.held {
        return Err(Waiting::Held);
    }
    if !person.has_number {
        return Err(Waiting::NoNumber);
    }
    let (symbol, number) = card_of(states, period).ok_or(Waiting::NoCard)?;
    Ok(Subscriber {
        card: Card { insurer: insurer.to_string(), symbol, number },
        branch,
        person: person.id.clone(),
        name: person.name.clone(),
        kana: person.kana.clone(),
        birth: person.birth,
        sex: person.sex.clone(),
        acquired: period.start,
        lost: period.end.and_then(|e| e.add_days(1)),
        pref_acquired: pref.acquired,
        pref_lost: pref.lost,
    })
}

/// R04: every 枝番 of a card (99) is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// R3: the 枝番 of one card — who has which, and which was given last (none is given twice).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branches {
    pub given: BTreeMap<PersonId, u8>,
    pub last: u8,
}

impl Branches {
    /// The person's 枝番 under this card: the one they had (kept for good, also after leaving
    /// and returning), else the smallest never used before. Persons who first become relayable
    /// under a card in one submission are asked in KK line order.
    pub fn branch_of(&mut self, person: &str) -> Result<u8, Exhausted> {
        if let Some(b) = self.given.get(person) {
            return Ok(*b);
        }
        if self.last >= 99 {
            return Err(Exhausted);
        }
        self.last += 1;
        self.given.insert(person.to_string(), self.last);
        Ok(self.last)
    }
}

/// One operation on the intermediate server (R4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub processing: RelayProcessing,
    pub record: Subscriber,
}

/// R4: what a record's change sends: nothing if it is the same; 1 新規 for a new record; 3 削除
/// for one that is gone (a deleted period, a person no longer relayable); 2 変更 for a change
/// under the same card; and 3 削除 under the old card with 1 新規 under the new one when the
/// 記号番号 (or 枝番) changes (formats.md RM).
pub fn changes(sent: Option<&Subscriber>, now: Option<&Subscriber>) -> Vec<Operation> {
    let op = |processing, record: &Subscriber| Operation { processing, record: record.clone() };
    match (sent, now) {
        (None, None) => Vec::new(),
        (None, Some(n)) => vec![op(RelayProcessing::New, n)],
        (Some(s), None) => vec![op(RelayProcessing::Delete, s)],
        (Some(s), Some(n)) if s == n => Vec::new(),
        (Some(s), Some(n)) if (&s.card, s.branch) != (&n.card, n.branch) => {
            vec![op(RelayProcessing::Delete, s), op(RelayProcessing::New, n)]
        }
        (Some(_), Some(n)) => vec![op(RelayProcessing::Change, n)],
    }
}

/// R4: the idempotency key of an operation of one version of a period's record (a change of
/// card sends two: 削除 and 新規): the same operation sent again (a retry, a restart) carries
/// the same key, so the server applies it once.
pub fn idempotency_key(period: &Period, version: u64, processing: RelayProcessing) -> String {
    format!("{}/{}/{}/{version}/{}", period.municipality, period.resident, period.start, processing.code())
}

#[cfg(test)]
mod tests;
