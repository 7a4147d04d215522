//! What the CLI prints: text for people, one JSON object per command with `--json`.
#![allow(clippy::print_stdout)] // The CLI's output is its job.

use std::path::Path;

use kokuho_client::scenario::{Outcome, StepReport};
use kokuho_client::{GetStatusResponse, ResultFile, SubmissionStatus, SubmitResponse};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    pub(crate) json: bool,
}

pub(crate) fn line(text: &str) {
    println!("{text}");
}

fn status_word(s: SubmissionStatus) -> &'static str {
    match s {
        SubmissionStatus::Accepted => "accepted",
        SubmissionStatus::Partial => "partial",
        SubmissionStatus::Rejected => "rejected",
        SubmissionStatus::Duplicate => "duplicate",
        SubmissionStatus::Unspecified => "unknown",
    }
}

/// Decodes a result file for display (UTF-8, else CP932).
fn text_of(content: &[u8]) -> String {
    match std::str::from_utf8(content) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::SHIFT_JIS.decode(content).0.into_owned(),
    }
}

impl Out {
    pub(crate) fn error(&self, message: &str) {
        if self.json {
            println!("{}", json!({ "error": message }));
        } else {
            eprintln!("kokuho: {message}");
        }
    }

    pub(crate) fn value(&self, text: &str, value: serde_json::Value) {
        if self.json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    }

    pub(crate) fn submission(&self, r: &SubmitResponse) {
        let status = status_word(r.status());
        let code = (!r.code.is_empty()).then(|| r.code.clone());
        if self.json {
            println!(
                "{}",
                json!({ "receipt": r.receipt, "status": status, "code": code, "accepted": r.accepted,
                        "rejected": r.rejected, "warnings": r.warnings })
            );
            return;
        }
        println!("受付番号 {}: {status}{}", r.receipt, code.map(|c| format!(" ({c})")).unwrap_or_default());
        println!("  accepted {}, rejected {}, warnings {}", r.accepted, r.rejected, r.warnings);
        for row in &r.rows {
            // fields: 区分, コード, 受付番号, 種別, 行, 宛名番号, 項目名, 内容
            let f = |i: usize| row.fields.get(i).map(String::as_str).unwrap_or("");
            println!("  {} {} {} line {} {} {}: {}", f(0), f(1), f(3), f(4), f(5), f(6), f(7));
        }
    }

    pub(crate) fn status(&self, r: &GetStatusResponse) {
        let status = status_word(r.status());
        if self.json {
            let progress: Vec<_> = r
                .progress
                .iter()
                .map(|p| json!({ "service": p.service, "done": p.done, "pending": p.pending }))
                .collect();
            println!(
                "{}",
                json!({ "receipt": r.receipt, "municipality": r.municipality, "status": status,
                        "code": (!r.code.is_empty()).then(|| r.code.clone()), "accepted": r.accepted,
                        "rejected": r.rejected, "warnings": r.warnings, "files": r.files, "progress": progress })
            );
            return;
        }
        println!("受付番号 {} ({}): {status} {}", r.receipt, r.municipality, r.code);
        println!("  accepted {}, rejected {}, warnings {}", r.accepted, r.rejected, r.warnings);
        for f in &r.files {
            println!("  file {f}");
        }
        for p in &r.progress {
            println!(
                "  {:<28} {}",
                p.service,
                if p.done { "done".to_string() } else { format!("{} pending", p.pending) }
            );
        }
    }

    /// Continuation candidates, one line each (RK fields and the decision).
    pub(crate) fn candidates(&self, list: &[kokuho_client::CandidateSummary]) {
        if self.json {
            let all: Vec<serde_json::Value> = list.iter().map(candidate_json).collect();
            println!("{}", serde_json::Value::Array(all));
            return;
        }
        if list.is_empty() {
            line("no candidates");
        }
        for c in list {
            let decision = match c.decision.as_str() {
                "" => "未確定".to_string(),
                d => format!(
                    "{} {} ({}){}",
                    if d == "1" { "継続" } else { "非継続" },
                    c.decided_on,
                    c.decided_by,
                    if c.changed { " A08" } else { "" }
                ),
            };
            line(&format!(
                "{} {} 世帯 {} {} ← {} 世帯 {}: 推奨 {} 理由 {} 移動 {} 高額 {}{}; {decision}",
                c.number,
                c.municipality,
                c.household,
                c.moved_in_on,
                c.from_municipality,
                c.from_household,
                c.recommended,
                c.reason,
                c.movers,
                c.kogaku_count,
                if c.withdrawn { " (取消)" } else { "" },
            ));
        }
    }

    pub(crate) fn reviews(&self, cases: &[kokuho_client::ReviewCase]) {
        if self.json {
            let list: Vec<_> = cases
                .iter()
                .map(|c| {
                    json!({ "case": c.case_id, "code": c.code, "municipality": c.municipality,
                                 "resident_number": c.resident_number, "line": c.line, "pref_id": c.pref_id })
                })
                .collect();
            println!("{}", json!({ "cases": list }));
            return;
        }
        if cases.is_empty() {
            println!("No held records.");
        }
        for c in cases {
            println!(
                "{}  {}  {} 宛名番号 {} (line {})  person {}",
                c.case_id, c.code, c.municipality, c.resident_number, c.line, c.pref_id
            );
        }
    }

    pub(crate) fn files(&self, files: &[ResultFile], dir: &Path) {
        if self.json {
            let names: Vec<_> = files.iter().map(|f| &f.name).collect();
            println!("{}", json!({ "files": names, "dir": dir }));
            return;
        }
        if files.is_empty() {
            println!("No pending result files.");
        }
        for f in files {
            println!("{}", dir.join(&f.name).display());
        }
    }

    pub(crate) fn file_listing(&self, municipality: &str, l: &kokuho_client::ListFilesResponse) {
        let info = |f: &kokuho_client::FileInfo| {
            json!({ "name": f.name, "kind": f.kind, "rows": f.rows, "business_date": f.business_date,
                    "file_sequence": f.file_sequence, "acknowledged": f.acknowledged })
        };
        if self.json {
            let pending: Vec<_> = l.pending.iter().map(info).collect();
            let stored: Vec<_> = l.acknowledged.iter().map(info).collect();
            println!(
                "{}",
                json!({ "municipality": municipality, "pending": pending, "stored": stored, "next_before": l.next_before })
            );
            return;
        }
        let row = |f: &kokuho_client::FileInfo| format!("  {}  {} rows", f.name, f.rows);
        println!("{municipality}: {} pending", l.pending.len());
        l.pending.iter().for_each(|f| println!("{}", row(f)));
        println!("stored, newest first: {}", l.acknowledged.len());
        l.acknowledged.iter().for_each(|f| println!("{}", row(f)));
        if l.next_before != 0 {
            println!("older: --before {}", l.next_before);
        }
    }

    pub(crate) fn step(&self, report: &StepReport) {
        let what = match &report.outcome {
            Outcome::Submitted { municipality, files, response } => format!(
                "{municipality} submits {}: {} {}{} (accepted {}, rejected {}, warnings {})",
                files.join(" "),
                response.receipt,
                status_word(response.status()),
                if response.code.is_empty() { String::new() } else { format!(" {}", response.code) },
                response.accepted,
                response.rejected,
                response.warnings
            ),
            Outcome::Refused { what, status } => format!("{what}: refused: {}", status.message()),
            Outcome::DayClosed { date } => format!("day closed; business date {date}"),
            Outcome::Skipped { what } => format!("skipped: {what}"),
            Outcome::Decided { municipality, candidate, why } => format!(
                "{municipality} decides {} on candidate {} (推奨 {} 理由 {}); 確定年月日 {}\n  why:\n    {}",
                if candidate.decision == "1" { "継続" } else { "非継続" },
                candidate.number,
                if candidate.recommended == "1" { "継続" } else { "非継続" },
                candidate.reason,
                candidate.decided_on,
                why.join("\n    ")
            ),
        };
        if self.json {
            let fetched: serde_json::Map<_, _> = report
                .fetched
                .iter()
                .map(|(m, files)| (m.clone(), json!(files.iter().map(|f| &f.name).collect::<Vec<_>>())))
                .collect();
            println!("{}", json!({ "step": report.index, "what": what, "fetched": fetched }));
            return;
        }
        println!("\n== step {}: {what}", report.index);
        for (muni, files) in &report.fetched {
            for f in files {
                println!("  {muni} gets {}:", f.name);
                for l in text_of(&f.content).lines() {
                    println!("    {l}");
                }
            }
        }
    }
}

/// A candidate for `--json`.
pub(crate) fn candidate_json(c: &kokuho_client::CandidateSummary) -> serde_json::Value {
    serde_json::json!({
        "number": c.number, "municipality": c.municipality, "household": c.household,
        "moved_in_on": c.moved_in_on, "from_municipality": c.from_municipality,
        "from_household": c.from_household, "former_householder": c.former_householder,
        "movers": c.movers, "recommended": c.recommended, "reason": c.reason,
        "kogaku_count": c.kogaku_count, "withdrawn": c.withdrawn, "decision": c.decision,
        "decided_on": c.decided_on, "decided_by": c.decided_by, "changed": c.changed,
        "inherited": c.inherited, "handover_count": c.handover_count, "many_times": c.many_times,
    })
}

/// A fact of a history, as JSON.
pub(crate) fn fact_json(f: &kokuho_client::Fact) -> serde_json::Value {
    json!({
        "business_date": f.business_date, "occurred_at": f.occurred_at.map(|t| t.to_string()),
        "municipality": f.municipality, "resident_number": f.resident_number, "person": f.person,
        "kind": f.kind, "rules": f.rules, "text": f.text,
        "stream": f.stream, "sequence": f.sequence, "event_id": f.event_id,
    })
}

/// `kokuho history --csv`: one fact per row, with a header, for the auditor.
pub(crate) fn history_csv(r: &kokuho_client::HistoryResponse) {
    let mut w = csv::Writer::from_writer(std::io::stdout().lock());
    let header = [
        "business_date",
        "occurred_at",
        "municipality",
        "resident_number",
        "person",
        "kind",
        "rules",
        "text",
        "stream",
        "sequence",
        "event_id",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    rows.extend(r.facts.iter().map(|f| {
        vec![
            f.business_date.to_string(),
            f.occurred_at.map(|t| t.to_string()).unwrap_or_default(),
            f.municipality.clone(),
            f.resident_number.clone(),
            f.person.clone(),
            f.kind.clone(),
            f.rules.join(" "),
            f.text.clone(),
            f.stream.clone(),
            f.sequence.to_string(),
            f.event_id.clone(),
        ]
    }));
    for row in rows {
        if w.write_record(&row).is_err() {
            return; // stdout closed (a pipe): nothing more to say
        }
    }
    let _ = w.flush();
}

impl Out {
    /// `kokuho history`: the persons, then one line per fact.
    pub(crate) fn history(&self, r: &kokuho_client::HistoryResponse) {
        if self.json {
            let facts: Vec<_> = r.facts.iter().map(fact_json).collect();
            println!("{}", json!({ "persons": r.persons, "complete": r.complete, "facts": facts }));
            return;
        }
        if !r.complete {
            eprintln!("kokuho: history is still reading the log (a load in progress): the latest facts may be missing");
        }
        println!("都道府県被保険者ID: {}", if r.persons.is_empty() { "-".into() } else { r.persons.join(", ") });
        for f in &r.facts {
            let whose = match (f.municipality.as_str(), f.resident_number.as_str()) {
                ("", _) => "-".to_string(),
                (m, "") => m.to_string(),
                (m, r) => format!("{m}/{r}"),
            };
            println!(
                "{} {:<14} {:<14} [{}] {}\n    {}#{} {}",
                f.business_date,
                whose,
                f.kind,
                f.rules.join(","),
                f.text,
                f.stream,
                f.sequence,
                f.event_id
            );
        }
    }
}
