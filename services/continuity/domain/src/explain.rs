//! Why a period's determination and an anomaly are what they are (`kokuho why --rs`,
//! `--anomaly`): the same rules as [`crate::evaluate`], told step by step in Japanese with the
//! rule ids, from the same facts (the person's periods and the business date).

use kokuho_ids::Date;
use kokuho_ids::codes::{AnomalyCode, Judgement};

use crate::{Anomaly, Period, PeriodKey, UNKNOWN_START, WINDOW_DAYS, evaluate, pair};

/// An explanation: the rule ids and the reasoning, one step per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub rules: Vec<&'static str>,
    pub lines: Vec<String>,
}

fn ymd(d: Option<Date>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

/// `131016 20200401(03 社保離脱)〜20260509(02 県内転出 →131032)`.
pub fn describe(p: &Period) -> String {
    let from = p.moved_in_from.as_ref().map(|m| format!(" ←{m}")).unwrap_or_default();
    let end = match (p.end, p.end_reason) {
        (Some(e), Some(r)) => {
            let to = p.moved_out_to.as_ref().map(|m| format!(" →{m}")).unwrap_or_default();
            format!("{e}({} {}{to})", r.code(), r.label())
        }
        (Some(e), None) => e.to_string(),
        _ => "継続中".to_string(),
    };
    format!("{} {}({} {}{from})〜{end}", p.municipality, p.start, p.start_reason.code(), p.start_reason.label())
}

/// Why the period with `key` has the determination it has on `business_date` (C1, C2, C5, C9).
/// `None` if the person has no such period.
pub fn period(periods: &[Period], key: &PeriodKey, business_date: Date) -> Option<Reason> {
    let idx = periods.iter().position(|p| &p.key() == key)?;
    let pairs = pair(periods);
    let predecessor: std::collections::BTreeMap<usize, usize> = pairs.iter().map(|(o, i)| (*i, *o)).collect();
    let mut rules = vec!["C1"];
    let mut lines = vec![format!("この適用期間: {}", describe(&periods[idx]))];
    // The chain back to the period that starts the span (C1, C2).
    let mut chain = vec![idx];
    while let Some(prev) = predecessor.get(chain.last().expect("a chain has a period")) {
        if chain.contains(prev) {
            break;
        }
        chain.push(*prev);
    }
    for w in chain.windows(2) {
        let (to, from) = (&periods[w[0]], &periods[w[1]]);
        rules.push("C2");
        lines.push(format!("C2: {} は {} と転出・転入の組です", describe(to), describe(from)));
        if let Some(e) = from.end {
            if to.start > e.add_days(1).unwrap_or(e) {
                rules.push("C3");
                lines.push(format!(
                    "C3: 組の間に空白 ({}〜{}) があっても同じ資格の続きです (A01)",
                    ymd(e.add_days(1)),
                    ymd(to.start.add_days(-1))
                ));
            } else if to.start <= e {
                rules.push("C4");
                lines.push(format!("C4: 組が重なって ({}〜{}) いても同じ資格の続きです (A02)", to.start, e));
            }
        }
    }
    let first = &periods[*chain.last().expect("a chain has a period")];
    let evaluation = evaluate(periods, business_date);
    match evaluation.periods.get(key).cloned().flatten() {
        None => {
            rules.push("C5");
            let from = first.moved_in_from.clone().unwrap_or_default();
            lines.push(format!(
                "C1: 開始事由 02 (県内転入、転入元 {from}) の期間に組になる転出がまだありません: 判定は未定で、RS は送りません"
            ));
            lines.push(format!(
                "C5: 処理日 {business_date} が適用開始から {WINDOW_DAYS} 日 ({}) を過ぎると、A04 とし、事由 99 で資格取得とします",
                ymd(first.start.add_days(WINDOW_DAYS))
            ));
        }
        Some(det) => {
            if det.acquired_reason == UNKNOWN_START && first.start_reason != UNKNOWN_START {
                rules.push("C5");
                lines.push(format!(
                    "C1, C5: {} は組になる転出がないまま {WINDOW_DAYS} 日を過ぎたので、資格の始まりとし、資格取得事由は 99",
                    describe(first)
                ));
            } else {
                lines.push(format!("C1: 資格は {} で始まります (開始事由が 02 ではない期間)", describe(first)));
            }
            lines.push(format!("資格取得年月日 {} 資格取得事由 {}", det.acquired_on, det.acquired_reason.code()));
            let judgement = match det.judgement {
                Judgement::NewlyAcquired => "この期間が資格を始めます".to_string(),
                Judgement::Continued => "前の市区町村からの県内継続です".to_string(),
                Judgement::Lost => format!(
                    "終了事由 {} で資格が終わります: 資格喪失年月日 {} (適用終了年月日の翌日) 資格喪失事由 {}",
                    det.lost_reason.map(|r| r.code()).unwrap_or_default(),
                    ymd(det.lost_on),
                    det.lost_reason.map(|r| r.code()).unwrap_or_default()
                ),
                Judgement::Withdrawn => "取消".to_string(),
            };
            lines.push(format!("判定区分 {} ({}): {judgement}", det.judgement.code(), det.judgement.label()));
            if let Some(next) = pairs.get(&idx) {
                rules.push("C2");
                lines.push(format!("この期間は {} へ続きます (C2)", describe(&periods[*next])));
            } else if periods[idx].end.is_some() && det.judgement != Judgement::Lost {
                lines.push(
                    "C1: 終了事由 02 の転出先からの転入がまだないので、資格は終わっていません (資格喪失なし)"
                        .to_string(),
                );
            }
        }
    }
    rules.push("C9");
    lines.push("C9: この判定が初めて分かったとき、また変わるたびに RS を送ります (変わったときは訂正 1)".to_string());
    rules.sort_unstable();
    rules.dedup();
    Some(Reason { rules, lines })
}

/// Why `anomaly` is open (C3–C7, T1).
pub fn anomaly(periods: &[Period], anomaly: &Anomaly, business_date: Date) -> Reason {
    let own: Vec<String> = periods
        .iter()
        .filter(|p| p.municipality == anomaly.to && p.resident == anomaly.resident)
        .map(describe)
        .collect();
    let counterpart =
        format!("{} {}〜{}", anomaly.counterpart, ymd(anomaly.counterpart_start), ymd(anomaly.counterpart_end));
    let (rules, why): (Vec<&'static str>, String) = match anomaly.code {
        AnomalyCode::A01 => {
            (vec!["C2", "C3"], format!("C3: 転出・転入の組 (C2) の間に空白があります: 相手先 {counterpart}"))
        }
        AnomalyCode::A02 => {
            (vec!["C2", "C4"], format!("C4: 転出・転入の組 (C2) が重なっています: 相手先 {counterpart}"))
        }
        AnomalyCode::A03 => (
            vec!["C5", "T1"],
            format!(
                "C5: 02 転出 (転出先 {}) の転入が、処理日 {business_date} に適用終了から {WINDOW_DAYS} 日を過ぎても届いていません",
                anomaly.counterpart
            ),
        ),
        AnomalyCode::A04 => (
            vec!["C5", "T1"],
            format!(
                "C5: 02 転入 (転入元 {}) の転出が、処理日 {business_date} に適用開始から {WINDOW_DAYS} 日を過ぎても届いていません",
                anomaly.counterpart
            ),
        ),
        AnomalyCode::A05 => (
            vec!["C5", "T1"],
            format!("C5: {counterpart} に県内転入した人の、この市区町村の期間がまだ終わっていません"),
        ),
        AnomalyCode::A06 => (
            vec!["C6", "T1"],
            format!("C6: 転出・転入の組ではない期間と重なっています (二重加入): 相手先 {counterpart}"),
        ),
        AnomalyCode::A07 => (vec!["C7"], format!("C7: 死亡 (04) で終わった期間 {counterpart} の後に始まっています")),
        AnomalyCode::A08 => (vec!["H5"], "H5: 継続世帯の確定後に事実が変わりました".to_string()),
    };
    let mut lines = vec![format!("{} {}", anomaly.code.code(), anomaly.code.label()), why];
    if !own.is_empty() {
        lines.push(format!("この市区町村の期間: {}", own.join("、")));
    }
    if matches!(anomaly.code, AnomalyCode::A03 | AnomalyCode::A04 | AnomalyCode::A05 | AnomalyCode::A06) {
        lines.push("T1: この異常は日次締めで評価され、原因がなくなれば次の処理で解消 (状態 2) します".to_string());
    } else {
        lines.push("C10: 原因がなくなれば (データの訂正)、次の処理で解消 (状態 2) します".to_string());
    }
    let mut rules = rules;
    rules.push("C10");
    Reason { rules, lines }
}
