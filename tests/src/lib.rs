//! Helpers of the cross-service tests: the shipped sample scenario and its expected results,
//! and the normalised view of what municipalities got back (the shape of `expected.json`,
//! as `../shared/acceptance/run-fixture` builds it).

pub mod app;
pub mod generate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use kokuho_client::SubmissionStatus;
use kokuho_client::scenario::{Outcome, StepReport};
use serde_json::{Value, json};

/// `scenarios/sample`: the project's copy of the hand-checked fixture.
pub fn sample_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/sample"))
}

pub fn expected() -> Value {
    let text = std::fs::read_to_string(sample_dir().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

/// Every data row (without its leading `2`) of every fetched file of `kind`, per municipality.
pub fn rows(reports: &[StepReport], kind: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut out: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for r in reports {
        for (muni, files) in &r.fetched {
            for f in files.iter().filter(|f| f.kind == kind) {
                let text = String::from_utf8_lossy(&f.content).into_owned();
                for line in text.lines() {
                    let fields: Vec<String> = line.split(',').map(str::to_string).collect();
                    if fields.first().map(String::as_str) == Some("2") {
                        out.entry(muni.clone()).or_default().push(fields[1..].to_vec());
                    }
                }
            }
        }
    }
    out
}

/// The `intake` section of every municipality: receipts by submission number, and the count
/// of each E, W001, W003 and F row.
pub fn intake_view(reports: &[StepReport]) -> Value {
    // Per municipality: submissions by number, and receipt → submission number.
    type Receipts = (serde_json::Map<String, Value>, BTreeMap<String, String>);
    let mut munis: BTreeMap<String, Receipts> = BTreeMap::new();
    for r in reports {
        if let Outcome::Submitted { municipality, response, .. } = &r.outcome {
            let (subs, ordinal) = munis.entry(municipality.clone()).or_default();
            let n = subs.len() + 1;
            let v = if let Some(first) = ordinal.get(&response.receipt) {
                json!({ "status": "duplicate", "receipt_of": first.parse::<u64>().unwrap_or(0) })
            } else {
                match response.status() {
                    SubmissionStatus::Rejected => json!({ "status": "rejected", "code": response.code }),
                    SubmissionStatus::Duplicate => json!({ "status": "duplicate" }),
                    _ => json!({ "status": "accepted" }),
                }
            };
            ordinal.entry(response.receipt.clone()).or_insert_with(|| n.to_string());
            subs.insert(n.to_string(), v);
        }
    }
    let re = rows(reports, "RE");
    let mut out = serde_json::Map::new();
    for (muni, (subs, ordinal)) in munis {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for row in re.get(&muni).into_iter().flatten() {
            let f = |i: usize| row.get(i).cloned().unwrap_or_default();
            let (kubun, code, receipt) = (f(0), f(1), f(2));
            if !matches!(kubun.as_str(), "E" | "W") || (kubun == "W" && !matches!(code.as_str(), "W001" | "W003")) {
                continue;
            }
            let sub = ordinal.get(&receipt).cloned().unwrap_or_else(|| format!("?{receipt}"));
            let key = if code.starts_with('F') {
                format!("{sub}/{code}/{}", f(6))
            } else {
                let field = if matches!(code.as_str(), "E006" | "E009" | "E011") { "*".to_string() } else { f(6) };
                format!("{sub}/{}/{}/{}/{field}/{code}", f(3), f(4), f(5))
            };
            *counts.entry(key).or_default() += 1;
        }
        out.insert(muni, json!({ "submissions": subs, "RE": counts }));
    }
    Value::Object(out)
}

/// The `identity` section of every municipality: RI (latest row per 宛名番号, IDs replaced by
/// `MID#<municipality>:<smallest 宛名番号 with that ID>`), W002/W005 rows, open C rows.
pub fn identity_view(reports: &[StepReport]) -> Value {
    let ri = rows(reports, "RI");
    let re = rows(reports, "RE");
    let mut munis: Vec<String> = ri.keys().chain(re.keys()).cloned().collect();
    munis.sort();
    munis.dedup();
    let mut ordinals: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for r in reports {
        if let Outcome::Submitted { municipality, response, .. } = &r.outcome {
            let o = ordinals.entry(municipality.clone()).or_default();
            let n = o.len() + 1;
            o.entry(response.receipt.clone()).or_insert(n);
        }
    }
    let mut out = serde_json::Map::new();
    for m in munis {
        let mut latest: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in ri.get(&m).into_iter().flatten() {
            latest.insert(row[0].clone(), row.clone());
        }
        let mut placeholder: BTreeMap<String, String> = BTreeMap::new();
        for (atena, row) in &latest {
            placeholder.entry(row[1].clone()).or_insert_with(|| format!("MID#{m}:{atena}"));
        }
        let ri_view: serde_json::Map<String, Value> = latest
            .iter()
            .map(|(atena, row)| {
                (
                    atena.clone(),
                    json!({ "市区町村被保険者ID": placeholder[&row[1]], "付番年月日": row[2], "訂正": row[3] }),
                )
            })
            .collect();
        let mut warnings: BTreeMap<String, u64> = BTreeMap::new();
        let mut state: BTreeMap<(String, String), String> = BTreeMap::new();
        for row in re.get(&m).into_iter().flatten() {
            let f = |i: usize| row.get(i).cloned().unwrap_or_default();
            if f(0) == "C" {
                state.insert((f(1), f(5)), f(11));
            } else if matches!(f(1).as_str(), "W002" | "W005") {
                let sub = ordinals.get(&m).and_then(|o| o.get(&f(2))).map(|n| n.to_string()).unwrap_or_default();
                *warnings.entry(format!("{sub}/{}/{}/{}/{}/{}", f(3), f(4), f(5), f(6), f(1))).or_default() += 1;
            }
        }
        let open: Vec<String> = state
            .iter()
            .filter(|(_, s)| s.as_str() == "1")
            .map(|((code, atena), _)| format!("{code}/{atena}"))
            .collect();
        out.insert(m, json!({ "RI": ri_view, "RE": warnings, "open": open }));
    }
    Value::Object(out)
}

/// Every event stored in `stream` (whose events `S` declares), in order (read with a throwaway
/// consumer).
pub async fn all_events<S: kokuho_bus::event::StreamEvents>(
    bus: &kokuho_bus::Bus,
    stream: &'static str,
) -> Vec<S::Event> {
    let last = bus.last_seq(stream).await.expect("stream");
    let def = kokuho_bus::ConsumerDef { name: "test-scan".into(), stream, max_deliver: 1, filter_subject: None };
    let mut consumer = bus.consume(&def, 1).await.expect("consumer");
    let mut out = Vec::new();
    let mut seen = 0;
    while seen < last {
        let group = consumer.next_group(1_000, std::time::Duration::from_millis(20)).await.expect("messages");
        for d in &group {
            seen = d.stream_seq;
            out.push(kokuho_bus::event::decode::<S>(&d.payload).expect("an event").1);
        }
        // Acknowledged, so that the scan leaves nothing pending for `kokuho wait`.
        group.last().expect("a group is never empty").ack().await.expect("ack");
    }
    out
}

/// The `continuity` section of every municipality: RS (latest row per 宛名番号 + 適用開始年月日,
/// IDs as placeholders), open A01–A07 rows, W004 rows.
pub fn continuity_view(reports: &[StepReport]) -> Value {
    let ri = rows(reports, "RI");
    let rs = rows(reports, "RS");
    let re = rows(reports, "RE");
    let mut munis: Vec<String> = rs.keys().chain(re.keys()).cloned().collect();
    munis.sort();
    munis.dedup();
    let mut out = serde_json::Map::new();
    for m in munis {
        let mut latest_ri: BTreeMap<String, String> = BTreeMap::new();
        for row in ri.get(&m).into_iter().flatten() {
            latest_ri.insert(row[0].clone(), row[1].clone());
        }
        let mut placeholder: BTreeMap<String, String> = BTreeMap::new();
        for (atena, id) in &latest_ri {
            placeholder.entry(id.clone()).or_insert_with(|| format!("MID#{m}:{atena}"));
        }
        let mut rs_view = serde_json::Map::new();
        for row in rs.get(&m).into_iter().flatten() {
            let f = |i: usize| row.get(i).cloned().unwrap_or_default();
            let key = format!("{}/{}", f(0), f(6));
            let v = if f(8) == "9" {
                json!({ "判定区分": "9" })
            } else {
                json!({ "市区町村被保険者ID": placeholder.get(&f(1)).cloned().unwrap_or_else(|| "MID#?".into()),
                        "資格取得年月日": f(2), "資格取得事由": f(3), "資格喪失年月日": f(4), "資格喪失事由": f(5),
                        "適用開始年月日": f(6), "適用終了年月日": f(7), "判定区分": f(8), "訂正": f(9) })
            };
            rs_view.insert(key, v);
        }
        let mut state: BTreeMap<String, String> = BTreeMap::new();
        let mut warnings: BTreeMap<String, u64> = BTreeMap::new();
        for row in re.get(&m).into_iter().flatten() {
            let f = |i: usize| row.get(i).cloned().unwrap_or_default();
            if f(0) == "A" && f(1) != "A08" {
                state.insert(format!("{}/{}/{}/{}/{}", f(1), f(5), f(8), f(9), f(10)), f(11));
            } else if f(1) == "W004" {
                *warnings.entry(format!("{}/{}", f(5), f(1))).or_default() += 1;
            }
        }
        let open: Vec<String> = state.into_iter().filter(|(_, s)| s == "1").map(|(k, _)| k).collect();
        out.insert(m, json!({ "RS": rs_view, "open": open, "RE": warnings }));
    }
    Value::Object(out)
}

/// The `kogaku` section of every municipality: RK and RG (latest row per candidate, keyed by
/// `<B>/<転入世帯番号>/<転入年月日>/<転出元>/<転出元世帯番号>`; RG finds its key through the RK
/// row of the same 継続候補番号), and open A08 rows.
pub fn kogaku_view(reports: &[StepReport]) -> Value {
    let rk = rows(reports, "RK");
    let rg = rows(reports, "RG");
    let re = rows(reports, "RE");
    let mut munis: Vec<String> = rk.keys().chain(rg.keys()).chain(re.keys()).cloned().collect();
    munis.sort();
    munis.dedup();
    let mut out = serde_json::Map::new();
    for m in munis {
        let mut keys: BTreeMap<String, String> = BTreeMap::new();
        let mut rk_view = serde_json::Map::new();
        for row in rk.get(&m).into_iter().flatten() {
            let f = |i: usize| row.get(i).cloned().unwrap_or_default();
            let key = format!("{m}/{}/{}/{}/{}", f(1), f(2), f(3), f(4));
            keys.insert(f(0), key.clone());
            rk_view.insert(
                key,
                json!({ "転出元世帯主": f(5), "移動世帯員数": f(6), "推奨判定": f(7), "判定理由": f(8),
                        "直近12か月高額該当回数": f(9), "訂正": f(10) }),
            );
        }
        let mut rg_view = serde_json::Map::new();
        for row in rg.get(&m).into_iter().flatten() {
            let f = |i: usize| row.get(i).cloned().unwrap_or_default();
            let key = keys.get(&f(0)).cloned().unwrap_or_else(|| format!("?{}", f(0)));
            rg_view.insert(
                key,
                json!({ "判定": f(2), "確定年月日": f(3), "引継該当月": f(4), "引継後該当回数": f(5),
                        "多数回該当": f(6), "訂正": f(7) }),
            );
        }
        let mut state: BTreeMap<String, String> = BTreeMap::new();
        for row in re.get(&m).into_iter().flatten() {
            let f = |i: usize| row.get(i).cloned().unwrap_or_default();
            if f(1) == "A08" {
                state.insert(format!("{}/{}/{}/{}/{}", f(1), f(5), f(8), f(9), f(10)), f(11));
            }
        }
        let open: Vec<String> = state.into_iter().filter(|(_, s)| s == "1").map(|(k, _)| k).collect();
        out.insert(m, json!({ "RK": rk_view, "RG": rg_view, "open": open }));
    }
    Value::Object(out)
}

/// An input file: header (created 2026-04-01, 通番 `seq`), `lines`, trailer.
pub fn input_file(kind: &str, muni: &str, insurer: &str, seq: u32, lines: &[String]) -> (String, Vec<u8>) {
    let mut t = format!("1,{kind},{muni},{insurer},20260401,{seq}\n");
    for l in lines {
        t.push_str(l);
        t.push('\n');
    }
    t.push_str(&format!("9,{}\n", lines.len()));
    (format!("{kind}{seq}.csv"), t.into_bytes())
}

/// The data rows (without the leading `2`) of the fetched files of `kind`.
pub fn data_rows(files: &[kokuho_client::ResultFile], kind: &str) -> Vec<Vec<String>> {
    files
        .iter()
        .filter(|f| f.kind == kind)
        .flat_map(|f| String::from_utf8_lossy(&f.content).lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.starts_with("2,"))
        .map(|l| l.split(',').skip(1).map(str::to_string).collect())
        .collect()
}

/// The `relay` section of every municipality, as run-fixture compares it: RM (latest row per
/// `<宛名番号>/<記号>/<番号>`: 枝番, deleted or not, 結果) and open R rows (`<code>/<宛名番号>`).
pub fn relay_view(reports: &[StepReport]) -> Value {
    let rm = rows(reports, "RM");
    let re = rows(reports, "RE");
    let mut munis: Vec<String> = rm.keys().chain(re.keys()).cloned().collect();
    munis.sort();
    munis.dedup();
    let mut out = serde_json::Map::new();
    for m in munis {
        let mut rm_view = serde_json::Map::new();
        for row in rm.get(&m).into_iter().flatten() {
            let f = |i: usize| row.get(i).cloned().unwrap_or_default();
            rm_view.insert(
                format!("{}/{}/{}", f(0), f(1), f(2)),
                json!({ "枝番": f(3), "削除": if f(4) == "3" { "1" } else { "0" }, "結果": f(5) }),
            );
        }
        // An R row is closed by a later row with the same fields 2, 3, 7 and 10–12 (formats.md).
        let mut state: BTreeMap<(String, String, String, String, String), String> = BTreeMap::new();
        for row in re.get(&m).into_iter().flatten() {
            let f = |i: usize| row.get(i).cloned().unwrap_or_default();
            if f(0) == "R" {
                state.insert((f(1), f(5), f(8), f(9), f(10)), f(11));
            }
        }
        let open: Vec<String> =
            state.into_iter().filter(|(_, s)| s == "1").map(|(k, _)| format!("{}/{}", k.0, k.1)).collect();
        out.insert(m, json!({ "RM": rm_view, "open": open }));
    }
    Value::Object(out)
}
