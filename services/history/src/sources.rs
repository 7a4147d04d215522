//! What each stream's events say about residents and persons, as facts with their rule ids
//! (rules.md, formats.md "Codes", security.md). Names are masked; no 個人番号 is ever read here
//! (history reads identity's public subject only, S7).

use std::collections::BTreeMap;

use kokuho_proto::history::v1::Fact;
use kokuho_store::ApplyError;
use prost::Message as _;

use crate::index::{CALENDAR_PREFIX, Sink, Source, Writer, case_key, decode, mask, nanos};

fn ymd(d: u32) -> String {
    if d == 0 { String::new() } else { d.to_string() }
}

/// One application period as history writes it: `131016 20200401(03)〜20260509(02→131032)`.
fn period_text(
    muni: &str,
    (start, start_reason, moved_in_from): (u32, &str, &str),
    (end, end_reason, moved_out_to): (u32, &str, &str),
) -> String {
    let from = if moved_in_from.is_empty() { String::new() } else { format!("←{moved_in_from}") };
    let to = if moved_out_to.is_empty() { String::new() } else { format!("→{moved_out_to}") };
    let end = if end == 0 { String::new() } else { format!("{end}({end_reason}{to})") };
    format!("{muni} {start}({start_reason}{from})〜{end}")
}

fn processing(code: &str) -> &'static str {
    match code {
        "1" => "登録",
        "3" => "削除",
        _ => "異動",
    }
}

/// The rule ids behind an RE コード (formats.md "Codes" and the rules they cite).
pub(crate) fn code_rules(code: &str) -> Vec<&str> {
    let rule = match code {
        "W001" => Some("I5"),
        "W002" | "W005" | "C01" => Some("I3"),
        "C02" => Some("I4"),
        "W004" => Some("C8"),
        "A01" => Some("C3"),
        "A02" => Some("C4"),
        "A03" | "A04" | "A05" => Some("C5"),
        "A06" => Some("C6"),
        "A07" => Some("C7"),
        "A08" => Some("H5"),
        "R01" | "R02" => Some("R5"),
        "R03" => Some("R4"),
        "R04" => Some("R3"),
        "E011" => Some("H4"),
        _ => None,
    };
    let mut out = vec![code];
    out.extend(rule);
    out
}

// === intake: records as they came, and the calendar ===

pub(crate) struct Intake;

impl Source for Intake {
    const NAME: &'static str = "intake";
    const STREAM: &'static str = kokuho_intake_contract::STREAM.name;

    fn read(&self, sink: &mut Sink<'_, '_>, seq: u64, payload: &[u8]) -> Result<(), ApplyError> {
        use kokuho_intake_contract::{Event, Events, pb};
        let (envelope, event) = decode::<Events>(payload)?;
        match event {
            Event::BusinessDateSet(pb::BusinessDateSet { date }) | Event::DayClosed(pb::DayClosed { date, .. }) => {
                let key = format!("{CALENDAR_PREFIX}{:020}/{seq:020}", nanos(&envelope).max(0));
                sink.put(key.into_bytes(), date.to_be_bytes().to_vec());
            }
            Event::RecordsAccepted(chunk) => {
                let mut w = sink.event(Self::STREAM, seq, &envelope, chunk.business_date);
                for record in &chunk.records {
                    let Some(pb::change_record::Record::Person(p)) = &record.record else { continue };
                    let text = || {
                        let period = period_text(
                            &chunk.municipality,
                            (p.start_date, &p.start_reason, &p.moved_in_from),
                            (p.end_date, &p.end_reason, &p.moved_out_to),
                        );
                        format!(
                            "KK {} 受付 {} {}行: 世帯 {} 氏名 {} 生年月日 {} 性別 {} 適用 {} 異動日 {}",
                            processing(&p.processing),
                            chunk.receipt,
                            record.line,
                            p.household_number,
                            mask(&p.name),
                            ymd(p.birth_date),
                            p.sex,
                            period,
                            ymd(p.changed_on),
                        )
                    };
                    w.resident((&chunk.municipality, &p.resident_number, ""), "record", &["KK"], text);
                }
            }
            Event::SubmissionAccepted(_) | Event::SubmissionRejected(_) => {}
        }
        Ok(())
    }
}

// === identity: persons, links, conflicts, merges, decisions (stored whole, S7) ===

pub(crate) struct Identity;

fn link_facts(
    w: &mut Writer<'_, '_, '_>,
    municipality: &str,
    ids: &[kokuho_identity_contract::pb::MunicipalIdAssigned],
    links: &[kokuho_identity_contract::pb::RecordLinked],
    provisional: &BTreeMap<&str, bool>,
) {
    for id in ids {
        w.link(&id.municipality, &id.resident_number, &id.pref_id);
        w.resident((&id.municipality, &id.resident_number, &id.pref_id), "id", &["I2"], || {
            format!("市区町村被保険者ID {} を付番 (付番日 {}、RI)", id.muni_id, ymd(id.assigned_on))
        });
    }
    for l in links {
        let Some(record) = &l.record else { continue };
        w.link(municipality, &record.resident_number, &l.pref_id);
        let (rules, how): (&[&str], &str) = if provisional.get(l.pref_id.as_str()).copied().unwrap_or(false) {
            (&["I5"], "個人番号なし: 宛名番号で仮の被保険者に")
        } else if l.muni_id.is_empty() {
            (&["I1", "I6"], "擬制世帯主の記録を")
        } else {
            (&["I1", "I2"], "")
        };
        w.resident((municipality, &record.resident_number, &l.pref_id), "link", rules, || {
            format!("受付 {} {}行の記録を{how}都道府県被保険者ID {} に紐付け", l.receipt, l.line, l.pref_id)
        });
    }
}

impl Source for Identity {
    const NAME: &'static str = "identity";
    const STREAM: &'static str = kokuho_identity_contract::STREAM.name;
    const SUBJECT: Option<&'static str> = Some(kokuho_identity_contract::CHUNKS_SUBJECT);
    const STORED: bool = true;

    fn read(&self, sink: &mut Sink<'_, '_>, seq: u64, payload: &[u8]) -> Result<(), ApplyError> {
        use kokuho_identity_contract::{Event, Events};
        let (envelope, event) = decode::<Events>(payload)?;
        match event {
            Event::ChunkLinked(e) => {
                let muni = e.municipality.as_str();
                let mut w = sink.event(Self::STREAM, seq, &envelope, e.business_date);
                let provisional: BTreeMap<&str, bool> =
                    e.persons.iter().map(|p| (p.pref_id.as_str(), !p.has_number)).collect();
                for p in &e.persons {
                    let (rules, text): (&[&str], _) = if p.has_number {
                        (&["I1"], format!("個人番号の新しい被保険者として都道府県被保険者ID {} を作成", p.pref_id))
                    } else {
                        (&["I5"], format!("個人番号なし: 仮の被保険者 {} を作成", p.pref_id))
                    };
                    w.person(&p.pref_id, muni, ("person", ""), rules, || text);
                }
                for a in &e.attached {
                    w.person(&a.pref_id, muni, ("person", ""), &["I5"], || {
                        format!("仮の被保険者 {} に個人番号が付きました", a.pref_id)
                    });
                }
                for c in &e.corrected {
                    w.person(&c.pref_id, muni, ("person", ""), &["I3", "W005"], || {
                        format!("生年月日 {} 性別 {} に訂正 (その者を持つ唯一の市区町村から)", ymd(c.birth_date), c.sex)
                    });
                }
                link_facts(&mut w, muni, &e.ids, &e.links, &provisional);
                for h in &e.held {
                    let Some(record) = &h.record else { continue };
                    let rule = if h.code == "C02" { "I4" } else { "I3" };
                    let why = if h.code == "C02" {
                        "この宛名番号は別の個人番号の被保険者に紐付いています"
                    } else {
                        "個人番号の被保険者と生年月日または性別が違います"
                    };
                    w.resident((muni, &record.resident_number, &h.pref_id), "held", &[&h.code, rule], || {
                        format!(
                            "{} 保留 (審査 {}): {why}。対象の被保険者 {}。下流には何も渡しません",
                            h.code, h.case_id, h.pref_id
                        )
                    });
                    w.sink.put(case_key(&h.case_id), format!("{muni}/{}", record.resident_number).into_bytes());
                }
                for m in &e.merged {
                    w.merged(&m.from, &m.into);
                    let text = || format!("仮の被保険者 {} を {} に統合 (同じ個人番号)", m.from, m.into);
                    w.person(&m.into, "", ("merged", ""), &["I5"], text);
                    w.person(&m.from, "", ("merged", ""), &["I5"], text);
                    for id in &m.survivor_ids {
                        w.link(&id.municipality, &id.resident_number, &m.into);
                    }
                }
            }
            Event::CaseResolved(e) => {
                let resident = sink.get(&case_key(&e.case_id))?.map(|v| String::from_utf8_lossy(&v).into_owned());
                let mut w = sink.event(Self::STREAM, seq, &envelope, e.decided_on);
                let action = match e.action.as_str() {
                    "link" => "紐付け",
                    "relink" => "別の被保険者に紐付け",
                    "reject" => "却下",
                    other => other,
                };
                if let Some((muni, resident)) = resident.as_deref().and_then(|r| r.split_once('/')) {
                    w.resident((muni, resident, ""), "resolved", &["I6"], || {
                        format!("運用者 {} が審査 {} を{action} (理由: {})", e.operator, e.case_id, e.reason)
                    });
                }
                let provisional: BTreeMap<&str, bool> =
                    e.persons.iter().map(|p| (p.pref_id.as_str(), !p.has_number)).collect();
                for p in &e.persons {
                    w.person(&p.pref_id, &e.municipality, ("person", ""), &["I6", "I1"], || {
                        format!("審査の結果、都道府県被保険者ID {} を作成", p.pref_id)
                    });
                }
                link_facts(&mut w, &e.municipality, &e.ids, &e.links, &provisional);
            }
            Event::BusinessDay(_) | Event::NumbersKept(_) => {}
        }
        Ok(())
    }
}

// === continuity: each person's periods as evaluated (rows sent are the results stream's) ===

pub(crate) struct Continuity;

impl Source for Continuity {
    const NAME: &'static str = "continuity";
    const STREAM: &'static str = kokuho_continuity_contract::STREAM.name;

    fn read(&self, sink: &mut Sink<'_, '_>, seq: u64, payload: &[u8]) -> Result<(), ApplyError> {
        use kokuho_continuity_contract::{Event, Events};
        let (envelope, Event::PersonsEvaluated(e)) = decode::<Events>(payload)?;
        let mut w = sink.event(Self::STREAM, seq, &envelope, e.business_date);
        for p in &e.persons {
            // Every evaluation is noted; a query shows the periods only where they changed.
            let rules: &[&str] = if p.pairs.is_empty() { &["C1"] } else { &["C1", "C2"] };
            w.person(&p.pref_id, "", ("periods", ""), rules, || {
                let mut periods: Vec<String> = p
                    .periods
                    .iter()
                    .map(|q| {
                        period_text(
                            &q.municipality,
                            (q.start, &q.start_reason, &q.moved_in_from),
                            (q.end, &q.end_reason, &q.moved_out_to),
                        )
                    })
                    .collect();
                periods.sort();
                let text = if periods.is_empty() { "適用期間なし".to_string() } else { periods.join("、") };
                let pairs = p
                    .pairs
                    .iter()
                    .map(|m| {
                        format!("{} {}〜 → {} {}〜", m.from_municipality, m.from_start, m.to_municipality, m.to_start)
                    })
                    .collect::<Vec<_>>();
                let pairs = if pairs.is_empty() {
                    String::new()
                } else {
                    format!(" / 転出転入の組: {}", pairs.join("、"))
                };
                format!("適用期間: {text}{pairs}")
            });
        }
        Ok(())
    }
}

// === kogaku: continuation candidates of the movers ===

pub(crate) struct Kogaku;

fn candidate_text(c: &kokuho_kogaku_contract::pb::CandidateState, f: &kokuho_kogaku_contract::pb::RkFields) -> String {
    let mut text = format!(
        "継続候補 {}: 転入 {} 世帯 {} ({}) ← 転出元 {} 世帯 {}; 推奨 {} 理由 {} 高額該当 {}回",
        c.number,
        c.to_municipality,
        c.to_household,
        c.moved_in_on,
        c.from_municipality,
        c.from_household,
        f.recommended,
        f.reason,
        f.kogaku_count
    );
    if c.sent_withdrawn {
        text.push_str("; 取消");
    }
    if let Some(d) = &c.decision {
        let by = if d.operator.is_empty() { d.by.clone() } else { format!("運用者 {}", d.operator) };
        text.push_str(&format!("; 判定 {} (確定 {} {by})", d.decision, ymd(d.decided_on)));
    }
    if let Some(rg) = &c.reported {
        text.push_str(&format!("; RG 引継後該当回数 {}", rg.count));
    }
    text
}

impl Source for Kogaku {
    const NAME: &'static str = "kogaku";
    const STREAM: &'static str = kokuho_kogaku_contract::STREAM.name;

    fn read(&self, sink: &mut Sink<'_, '_>, seq: u64, payload: &[u8]) -> Result<(), ApplyError> {
        use kokuho_kogaku_contract::{Event, Events};
        let (envelope, Event::CandidatesEvaluated(e)) = decode::<Events>(payload)?;
        let mut w = sink.event(Self::STREAM, seq, &envelope, e.business_date);
        for c in &e.candidates {
            let Some(facts) = &c.facts else { continue };
            let f = facts.fields.clone().unwrap_or_default();
            let mut rules = vec!["H1", "H2", "K2"];
            if c.decision.is_some() {
                rules.push("H3");
            }
            if c.reported.is_some() {
                rules.push("K3");
            }
            for mover in &facts.movers {
                w.person(mover, &c.to_municipality, ("candidate", &c.number), &rules, || candidate_text(c, &f));
            }
        }
        Ok(())
    }
}

// === relay: what was built for and sent to the intermediate server, and provision ===

pub(crate) struct Relay;

fn operation_key(id: u64) -> Vec<u8> {
    format!("op/{id:020}").into_bytes()
}

impl Source for Relay {
    const NAME: &'static str = "relay";
    const STREAM: &'static str = kokuho_relay_contract::STREAM.name;

    fn read(&self, sink: &mut Sink<'_, '_>, seq: u64, payload: &[u8]) -> Result<(), ApplyError> {
        use kokuho_relay_contract::{Event, Events};
        let (envelope, event) = decode::<Events>(payload)?;
        match event {
            Event::RecordsPlanned(e) => {
                for op in &e.operations {
                    let Some(period) = &op.period else { continue };
                    let value = format!("{}/{}/{}", period.municipality, period.resident_number, op.processing);
                    sink.put(operation_key(op.id), value.into_bytes());
                }
                let mut w = sink.event(Self::STREAM, seq, &envelope, 0);
                for p in &e.periods {
                    let Some(period) = &p.period else { continue };
                    let rules: &[&str] = if p.waiting.is_empty() { &["R2", "R3"] } else { &["R5", &p.waiting] };
                    let whose = (period.municipality.as_str(), period.resident_number.as_str(), p.person.as_str());
                    w.resident(whose, "relay-plan", rules, || match (&p.record, p.waiting.as_str()) {
                        (_, code) if !code.is_empty() => {
                            format!("適用 {}〜: 中間サーバーへの送信待ち {code}", period.start)
                        }
                        (Some(r), _) => format!(
                            "加入者情報 版{}: {} {} {} 枝番 {:02} 資格取得 {} 喪失 {} (都道府県 取得 {} 喪失 {})",
                            p.version,
                            r.insurer,
                            r.symbol,
                            r.number,
                            r.branch,
                            ymd(r.acquired_on),
                            ymd(r.lost_on),
                            ymd(r.pref_acquired_on),
                            ymd(r.pref_lost_on)
                        ),
                        (None, _) => format!("適用 {}〜: 加入者情報を削除", period.start),
                    });
                }
            }
            Event::RecordsDelivered(e) => {
                let mut delivered = Vec::new();
                for o in &e.outcomes {
                    let Some(op) = sink.get(&operation_key(o.operation))? else { continue };
                    delivered.push((o, String::from_utf8_lossy(&op).into_owned()));
                }
                let mut w = sink.event(Self::STREAM, seq, &envelope, 0);
                for (o, op) in &delivered {
                    let mut parts = op.splitn(3, '/');
                    let (Some(muni), Some(resident), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
                        continue;
                    };
                    let rules: &[&str] = if o.accepted { &["R4"] } else { &["R4", "R03"] };
                    w.resident((muni, resident, ""), "relay-delivery", rules, || {
                        if o.accepted {
                            format!("中間サーバーへ送信 (処理区分 {kind}): 受理")
                        } else {
                            format!("中間サーバーへ送信 (処理区分 {kind}): エラー {} {}", o.error_code, o.message)
                        }
                    });
                }
            }
            Event::ProvisionRecorded(p) => {
                let mut w = sink.event(Self::STREAM, seq, &envelope, 0);
                w.person(&p.person, "", ("provision", ""), &["P1", "P2"], || {
                    let outcome = if p.allowed { "提供" } else { "拒否" };
                    format!(
                        "情報提供の求め: {} → {} 項目 {} {}: {outcome} ({}) 受付者 {}",
                        p.requester, p.target, p.item, p.file, p.basis, p.caller
                    )
                });
            }
            Event::PartitionStall(_) => {}
        }
        Ok(())
    }
}

// === results: every row sent to a municipality about a resident ===

pub(crate) struct Results;

fn group_key(group: &str) -> Vec<u8> {
    format!("g/{group}").into_bytes()
}

/// The 宛名番号 a row is about, and what it says with its rule ids.
fn row_fact(row: &kokuho_proto::results::v1::ResultRow) -> Option<(String, Vec<String>, String)> {
    let f = |i: usize| row.fields.get(i).map(String::as_str).unwrap_or("");
    let owned = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
    match row.kind.as_str() {
        "RS" => {
            let rules = match f(8) {
                "2" => vec!["C1", "C2", "C9"],
                "9" => vec!["C9"],
                _ => vec!["C1", "C9"],
            };
            let lost = if f(4).is_empty() { String::new() } else { format!(" 資格喪失 {}({})", f(4), f(5)) };
            let text = format!(
                "RS 判定区分 {} 資格取得 {}({}){lost} 適用 {}〜{} 訂正 {} (市区町村被保険者ID {})",
                f(8),
                f(2),
                f(3),
                f(6),
                f(7),
                f(9),
                f(1)
            );
            Some((f(0).to_string(), owned(rules), text))
        }
        "RI" => {
            let rules = if f(3) == "1" { vec!["I2", "I5"] } else { vec!["I2"] };
            Some((
                f(0).to_string(),
                owned(rules),
                format!("RI 市区町村被保険者ID {} 付番日 {} 訂正 {}", f(1), f(2), f(3)),
            ))
        }
        "RE" => {
            let state = if f(11) == "2" { "解消" } else { "発生" };
            let counterpart =
                if f(8).is_empty() { String::new() } else { format!(" 相手先 {} {}〜{}", f(8), f(9), f(10)) };
            let at = if f(4).is_empty() { String::new() } else { format!(" (受付 {} {}行 {})", f(2), f(4), f(6)) };
            let text = format!("RE {} {} {state}: {}{counterpart}{at}", f(0), f(1), f(7));
            Some((f(5).to_string(), owned(code_rules(f(1))), text))
        }
        "RM" => Some((f(0).to_string(), vec!["R4".into(), "R5".into()], format!("RM {}", row.fields[1..].join(" ")))),
        _ => None,
    }
}

impl Source for Results {
    const NAME: &'static str = "results";
    const STREAM: &'static str = kokuho_outbox::RESULTS.name;

    fn read(&self, sink: &mut Sink<'_, '_>, seq: u64, payload: &[u8]) -> Result<(), ApplyError> {
        use kokuho_outbox::Results as Stream;
        use kokuho_proto::results::v1::results_event::Event;
        let (envelope, event) = decode::<Stream>(payload)?;
        let Event::ResultRowsAdded(added) = event else { return Ok(()) };
        // A group published again (a redelivery) counts once, as in the outbox.
        if sink.indexing() {
            if sink.get(&group_key(&added.group_id))?.is_some() {
                return Ok(());
            }
            sink.put(group_key(&added.group_id), Vec::new());
        }
        let mut w = sink.event(Self::STREAM, seq, &envelope, 0);
        for row in &added.rows {
            let Some((resident, rules, text)) = row_fact(row) else { continue };
            let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
            w.resident((&added.municipality, &resident, ""), "row", &rules, || {
                format!("{text} → {}", added.municipality)
            });
        }
        Ok(())
    }
}

// === audit: every access to the person's data, and every release of the number ===

pub(crate) struct Audit;

impl Source for Audit {
    const NAME: &'static str = "audit";
    const STREAM: &'static str = kokuho_runtime::audit::AUDIT.name;

    fn read(&self, sink: &mut Sink<'_, '_>, seq: u64, payload: &[u8]) -> Result<(), ApplyError> {
        use kokuho_proto::audit::v1::audit_event::Event;
        use kokuho_runtime::audit::Audit as Stream;
        let (envelope, event) = decode::<Stream>(payload)?;
        let mut w = sink.event(Self::STREAM, seq, &envelope, 0);
        match event {
            Event::AccessRecorded(a) => {
                // A municipality's accesses are its own to see; the operator's and services'
                // concern the person as a whole.
                let municipality = if a.role == "municipality" { a.who.as_str() } else { "" };
                for pref in &a.pref_ids {
                    w.person(pref, municipality, ("access", ""), &["S8"], || {
                        format!("{} ({}) が {} ({}): {}", a.who, a.role, a.action, a.purpose, a.outcome)
                    });
                }
            }
            Event::NumberReleased(r) => {
                w.person(&r.pref_id, release_municipality(&r.purpose), ("release", ""), &["R6", "S8"], || {
                    format!("個人番号を {} に渡しました ({})", r.caller, r.purpose)
                });
            }
        }
        Ok(())
    }
}

/// The municipality a release was for: relay's purpose names the partition
/// (`中間サーバー連携 <municipality> <key>`); any other release is the operator's to see.
fn release_municipality(purpose: &str) -> &str {
    match purpose.split_whitespace().nth(1) {
        Some(m) if m.len() == 6 && m.bytes().all(|b| b.is_ascii_digit()) => m,
        _ => crate::index::OPERATOR_ONLY,
    }
}

/// A stored fact.
pub(crate) fn fact_of(bytes: &[u8]) -> Result<Fact, kokuho_store::StoreError> {
    Fact::decode(bytes).map_err(|e| kokuho_store::StoreError::Corrupt(format!("history fact: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_anomaly_and_conflict_code_names_its_rule() {
        for (code, rule) in
            [("A01", "C3"), ("A02", "C4"), ("A04", "C5"), ("A06", "C6"), ("A07", "C7"), ("C01", "I3"), ("C02", "I4")]
        {
            assert_eq!(code_rules(code), vec![code, rule], "{code}");
        }
        assert_eq!(code_rules("E003"), vec!["E003"]);
    }

    #[test]
    fn a_release_is_seen_by_the_partition_it_was_for_and_otherwise_by_the_operator_only() {
        assert_eq!(release_municipality("中間サーバー連携 131016 131016/100001/20200401/1/1"), "131016");
        assert_eq!(release_municipality("照会"), crate::index::OPERATOR_ONLY);
    }

    #[test]
    fn an_rs_row_is_about_its_resident_with_c1_c2_c9_when_it_continues() {
        let row = kokuho_proto::results::v1::ResultRow {
            kind: "RS".into(),
            fields: ["200001", "3", "20200401", "03", "", "", "20260510", "", "2", "0"].map(String::from).to_vec(),
        };
        let (resident, rules, text) = row_fact(&row).expect("an RS row is about a resident");
        assert_eq!(resident, "200001");
        assert_eq!(rules, vec!["C1", "C2", "C9"]);
        assert!(text.contains("資格取得 20200401(03)"), "{text}");
    }
}
