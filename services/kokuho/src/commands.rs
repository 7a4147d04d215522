//! One function per command; each returns the process exit code.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kokuho_client::scenario::{self, Scenario, StepReport};
use kokuho_client::{Client, ClientError, SubmissionStatus};
use kokuho_ids::Registry;
use kokuho_system::{System, SystemConfig};

use crate::cli::{
    AuditCommand, Cli, Command, DemoArgs, FilesCommand, Global, KeysCommand, KogakuCommand, ProvisionCommand,
    ReviewCommand, ServeArgs, ServeSettings, SubmitArgs, UpArgs,
};
use crate::output::{self, Out};
use crate::{EXIT_OK, EXIT_REJECTED, EXIT_USAGE};

const DEFAULT_DATA_DIR: &str = ".kokuho";

pub(crate) async fn run(cli: Cli) -> u8 {
    let out = Out { json: cli.global.json };
    let result = match cli.command {
        Command::Up(args) => up(&cli.global, args).await,
        Command::Demo(args) => demo(out, args).await,
        Command::Serve(args) => serve(&cli.global, *args).await,
        Command::Keys { command: KeysCommand::Generate { out: dir } } => keys_generate(out, &dir),
        Command::Keys { command: KeysCommand::Nats { out: dir } } => keys_nats(out, &dir),
        Command::Keys { command: KeysCommand::Audit { out: dir } } => keys_audit(out, &dir),
        Command::Keys { command: KeysCommand::Tls { out: dir, namespace, callers } } => {
            keys_tls(out, &dir, &namespace, &callers)
        }
        Command::Keys { command: KeysCommand::Issue { issuer, role, name, municipality, days, out: file } } => {
            keys_issue(out, &issuer, &role, name, municipality, days, &file)
        }
        Command::Streams { nats, nats_credentials, stream_replicas } => {
            streams(out, &nats, &nats_credentials, stream_replicas).await
        }
        Command::Submit(args) => client_command(&cli.global, out, |c| submit(c, out, args)).await,
        Command::Status { receipt: Some(receipt), .. } => {
            client_command(&cli.global, out, |c| status(c, out, receipt)).await
        }
        Command::Status { receipt: None, municipality, .. } => {
            client_command(&cli.global, out, |c| relay_status(c, out, municipality)).await
        }
        Command::Partition { municipality } => {
            client_command(&cli.global, out, |c| partition(c, out, municipality)).await
        }
        Command::Provision { command: ProvisionCommand::Log } => {
            client_command(&cli.global, out, |c| provision_log(c, out)).await
        }
        Command::Provision { command: ProvisionCommand::Request { requester, target, item, file, person } } => {
            let request = kokuho_client::relay::ProvideRequest { requester, target, item, file, person };
            client_command(&cli.global, out, |c| provide(c, out, request)).await
        }
        Command::Replay { services, verify, until_date, out: dir, nats, patience } => {
            match until_date.as_deref().map(parse_date).transpose() {
                Ok(until) => {
                    replay(&cli.global, out, ReplayArgs { services, verify, until, dir, nats, patience }).await
                }
                Err(e) => Err(e),
            }
        }
        Command::DeadLetters { nats } => dead_letters(&cli.global, out, nats).await,
        Command::Wait { timeout } => client_command(&cli.global, out, |c| wait(c, out, timeout)).await,
        Command::CloseDay { date, anchors } => {
            let path = anchors.unwrap_or_else(|| anchor_file(&cli.global));
            client_command(&cli.global, out, |c| close_day(c, out, date, path)).await
        }
        Command::Fetch { municipality, out: dir } => {
            client_command(&cli.global, out, |c| fetch(c, out, municipality, dir)).await
        }
        Command::Files { command } => client_command(&cli.global, out, |c| files(c, out, command)).await,
        Command::Anomalies { municipality, limit, after } => {
            client_command(&cli.global, out, |c| anomalies(c, out, municipality, after, limit)).await
        }
        Command::Waiting { municipality, limit, after } => {
            client_command(&cli.global, out, |c| waiting(c, out, municipality, after, limit)).await
        }
        Command::Review { command } => client_command(&cli.global, out, |c| review(c, out, command)).await,
        Command::Kogaku { command: KogakuCommand::Count { municipality, household, month } } => {
            client_command(&cli.global, out, |c| kogaku_count(c, out, municipality, household, month)).await
        }
        Command::Audit { command: AuditCommand::Anchor { anchors } } => {
            let path = anchors.unwrap_or_else(|| anchor_file(&cli.global));
            client_command(&cli.global, out, |c| audit_anchor(c, out, path)).await
        }
        Command::Audit { command: AuditCommand::Verify { anchors } } => {
            let path = anchors.unwrap_or_else(|| anchor_file(&cli.global));
            client_command(&cli.global, out, |c| audit_verify(c, out, path)).await
        }
        Command::Decide { municipality, candidate, r#continue, discontinue, reverse, reason, operator } => {
            if r#continue == discontinue {
                out.error("say --continue (継続) or --discontinue (非継続)");
                return EXIT_USAGE;
            }
            let decision = if r#continue { "1" } else { "2" };
            let reversal = reverse.then(|| (operator, reason.unwrap_or_default()));
            client_command(&cli.global, out, |c| decide(c, out, municipality, candidate, decision, reversal)).await
        }
        Command::Eligibility { insurer, symbol, number, branch, date } => match parse_date(&date) {
            Ok(date) => {
                let request = kokuho_client::midserver::EligibilityRequest { insurer, symbol, number, branch, date };
                client_command(&cli.global, out, |c| eligibility(c, out, request)).await
            }
            Err(e) => Err(e),
        },
        Command::Why { municipality, candidate, resident, rs, anomaly, link } => {
            match why_of(candidate, resident, rs, anomaly, link) {
                Ok(what) => client_command(&cli.global, out, |c| why(c, out, municipality, what)).await,
                Err(e) => Err(e),
            }
        }
        Command::History { municipality, resident, person, as_of, csv, operator } => {
            match as_of.as_deref().map(parse_date).transpose() {
                Ok(as_of) => {
                    let format = if csv { HistoryFormat::Csv } else { HistoryFormat::Out(out) };
                    client_command(&cli.global, out, |c| {
                        history(c, format, municipality, resident, person, as_of.unwrap_or(0), operator)
                    })
                    .await
                }
                Err(e) => Err(e),
            }
        }
        Command::Kogaku { command: KogakuCommand::Candidates { municipality, changed } } => {
            client_command(&cli.global, out, |c| candidates(c, out, municipality, changed)).await
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            out.error(&format!("{e:#}"));
            EXIT_USAGE
        }
    }
}

/// The operator's anchor file by default (S8): in the CLI's data directory.
fn anchor_file(global: &Global) -> PathBuf {
    data_dir(global).join("audit-anchors.jsonl")
}

fn data_dir(global: &Global) -> PathBuf {
    global.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

fn endpoint(global: &Global) -> anyhow::Result<String> {
    if let Some(e) = &global.endpoint {
        return Ok(e.clone());
    }
    let dir = data_dir(global);
    let file = kokuho_system::endpoint_file(&dir);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "no endpoint: give --endpoint (or KOKUHO_ENDPOINT), or start `kokuho up --data-dir {}` first",
            dir.display()
        )
    })?;
    Ok(text.trim().to_string())
}

/// What the CLI trusts and shows for an https endpoint: `--ca-file` (else the dev CA of `up`'s
/// data dir) and `--cert-file` with `--key-file` (else the dev client certificate there).
fn client_tls(global: &Global) -> anyhow::Result<Option<kokuho_runtime::tls::ClientTls>> {
    let tls = data_dir(global).join("tls");
    let ca = global.ca_file.clone().unwrap_or_else(|| tls.join("ca.pem"));
    if global.ca_file.is_none() && !ca.exists() {
        return Ok(None);
    }
    let identity = match (&global.cert_file, &global.key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => {
            Some((tls.join("client.pem"), tls.join("client.key"))).filter(|(c, k)| c.exists() && k.exists())
        }
        _ => anyhow::bail!("a client certificate needs both --cert-file and --key-file"),
    };
    kokuho_runtime::tls::ClientTls::load(&ca, identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))).map(Some)
}

async fn client_command<F, Fut>(global: &Global, out: Out, f: F) -> anyhow::Result<u8>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<u8, ClientError>>,
{
    let endpoint = endpoint(global)?;
    let tls = client_tls(global)?;
    let client = match Client::connect_trusting(&endpoint, tls.as_ref()).await {
        Ok(c) => c,
        Err(e) => {
            out.error(&format!("{e}; is `kokuho up` running?"));
            return Ok(EXIT_USAGE);
        }
    };
    // The credential: `--token-file`, else the dev token of `up`'s data dir for the role each
    // request is made in (the municipality it names, the operator).
    let client = match &global.token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
            client.with_token(token.trim())
        }
        None => client.with_dev_credentials(kokuho_system::credentials_dir(&data_dir(global))),
    };
    match f(client).await {
        Ok(code) => Ok(code),
        Err(e) if e.is_answer() => {
            out.error(&e.to_string());
            Ok(EXIT_REJECTED)
        }
        Err(e) => {
            out.error(&e.to_string());
            Ok(EXIT_USAGE)
        }
    }
}

async fn audit_anchor(mut client: Client, out: Out, path: PathBuf) -> Result<u8, ClientError> {
    let heads = client.anchor_audit(&path).await?;
    out.value(
        &format!("Anchored the heads of {} audit chains in {}", heads.len(), path.display()),
        serde_json::json!({ "chains": heads.len(), "anchors": path }),
    );
    Ok(EXIT_OK)
}

async fn audit_verify(mut client: Client, out: Out, path: PathBuf) -> Result<u8, ClientError> {
    let anchors = kokuho_client::anchors::read(&path)
        .map_err(|source| ClientError::Io { path: path.display().to_string(), source })?;
    let anchored = anchors.len();
    let r = client.verify_audit(anchors).await?;
    let chains: Vec<serde_json::Value> = r
        .chains
        .iter()
        .map(|c| {
            serde_json::json!({
                "subject": c.subject, "entries": c.entries, "intact": c.intact,
                "broken_at": c.broken_at, "reason": c.reason, "foreign": c.foreign,
            })
        })
        .collect();
    let json = serde_json::json!({
        "entries": r.entries, "intact": r.intact, "broken_at": r.broken_at, "reason": r.reason, "chains": chains,
        "anchors": anchored,
    });
    let mut text: Vec<String> = r
        .chains
        .iter()
        .map(|c| match c.intact {
            true if c.foreign > 0 => format!(
                "  {}: {} entries, intact; {} foreign messages on its subject (dead-lettered)",
                c.subject, c.entries, c.foreign
            ),
            true => format!("  {}: {} entries, intact", c.subject, c.entries),
            false => format!("  {}: BROKEN at log sequence {}: {}", c.subject, c.broken_at, c.reason),
        })
        .collect();
    let verdict = if r.intact { "audit log intact" } else { "audit log BROKEN" };
    text.insert(
        0,
        format!("{verdict}: {} entries in {} chains, {anchored} anchors checked", r.entries, r.chains.len()),
    );
    out.value(&text.join("\n"), json);
    Ok(if r.intact { EXIT_OK } else { EXIT_REJECTED })
}

async fn kogaku_count(
    mut client: Client,
    out: Out,
    municipality: String,
    household: String,
    month: u32,
) -> Result<u8, ClientError> {
    let r = client.count_months(&municipality, &household, month).await?;
    let months: Vec<String> = r
        .months
        .iter()
        .map(|m| if m.inherited { format!("{} (引継)", m.month) } else { m.month.to_string() })
        .collect();
    out.value(
        &format!(
            "{municipality} 世帯 {household}, {month}: {} months [{}]{}",
            r.count,
            months.join(" "),
            if r.many_times { "; 多数回該当" } else { "" }
        ),
        serde_json::json!({
            "municipality": municipality, "household": household, "month": month, "count": r.count,
            "many_times": r.many_times,
            "months": r.months.iter().map(|m| serde_json::json!({ "month": m.month, "inherited": m.inherited })).collect::<Vec<_>>(),
        }),
    );
    Ok(EXIT_OK)
}

async fn decide(
    mut client: Client,
    out: Out,
    municipality: String,
    candidate: String,
    decision: &str,
    reversal: Option<(String, String)>,
) -> Result<u8, ClientError> {
    let c = match reversal {
        None => client.decide(&municipality, &candidate, decision).await?,
        Some((operator, reason)) => {
            client.reverse_decision(&municipality, &candidate, decision, &operator, &reason).await?
        }
    };
    out.candidates(std::slice::from_ref(&c));
    Ok(EXIT_OK)
}

fn unix_time(secs: i64) -> String {
    if secs <= 0 {
        return "-".into();
    }
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| {
            let t = t.to_offset(time::macros::offset!(+9));
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| "-".into())
}

async fn relay_status(mut client: Client, out: Out, municipality: Option<String>) -> Result<u8, ClientError> {
    let r = client.relay_status(municipality.as_deref()).await?;
    let mut text = format!(
        "intermediate server: {} (last contact {}){}\n",
        if r.server_reachable { "reachable" } else { "NOT reachable" },
        unix_time(r.server_last_contact_at),
        if r.server_last_error.is_empty() { String::new() } else { format!("; last error: {}", r.server_last_error) }
    );
    text.push_str(
        "municipality  last submission      last delivery        records  undelivered  lag(s)  waiting  alert\n",
    );
    let mut alerts = 0;
    for p in &r.partitions {
        // An operator's board lists the partitions that have anything.
        if municipality.is_none() && p.records == 0 && p.undelivered == 0 && p.waiting == 0 && p.last_submission_at == 0
        {
            continue;
        }
        alerts += u32::from(p.stalled);
        text.push_str(&format!(
            "{:<12}  {:<19}  {:<19}  {:>7}  {:>11}  {:>6}  {:>7}  {}\n",
            p.municipality,
            unix_time(p.last_submission_at),
            unix_time(p.last_delivery_at),
            p.records,
            p.undelivered,
            p.lag_seconds,
            p.waiting,
            if p.stalled { "R05 STALLED" } else { "" }
        ));
    }
    let partitions: Vec<serde_json::Value> = r
        .partitions
        .iter()
        .map(|p| {
            serde_json::json!({
                "municipality": p.municipality, "last_submission_at": p.last_submission_at,
                "last_delivery_at": p.last_delivery_at, "records": p.records, "undelivered": p.undelivered,
                "lag_seconds": p.lag_seconds, "waiting": p.waiting, "stalled": p.stalled,
                "delivered": p.delivered, "rejected": p.rejected,
            })
        })
        .collect();
    out.value(
        text.trim_end(),
        serde_json::json!({
            "server_reachable": r.server_reachable, "server_last_contact_at": r.server_last_contact_at,
            "server_last_error": r.server_last_error, "idle": r.idle, "partitions": partitions,
        }),
    );
    Ok(if alerts > 0 { EXIT_REJECTED } else { EXIT_OK })
}

async fn partition(mut client: Client, out: Out, municipality: String) -> Result<u8, ClientError> {
    let subscribers = client.midserver_partition(&municipality).await?;
    let mut text = format!("partition {municipality}: {} records\n", subscribers.len());
    let d = |v: u32| if v == 0 { "-".to_string() } else { v.to_string() };
    let mut json = Vec::new();
    for s in &subscribers {
        text.push_str(&format!(
            "  {} {} {} 枝番 {:02}  {} {}  資格取得 {} 喪失 {} / 都道府県 資格取得 {} 喪失 {}\n",
            s.insurer,
            s.symbol,
            s.number,
            s.branch,
            s.name,
            s.birth_date,
            d(s.acquired_on),
            d(s.lost_on),
            d(s.pref_acquired_on),
            d(s.pref_lost_on)
        ));
        json.push(serde_json::json!({
            "insurer": s.insurer, "symbol": s.symbol, "number": s.number, "branch": s.branch,
            "name": s.name, "kana": s.kana, "birth_date": s.birth_date, "sex": s.sex,
            "acquired_on": s.acquired_on, "lost_on": s.lost_on,
            "pref_acquired_on": s.pref_acquired_on, "pref_lost_on": s.pref_lost_on,
        }));
    }
    out.value(text.trim_end(), serde_json::json!({ "municipality": municipality, "subscribers": json }));
    Ok(EXIT_OK)
}

async fn provide(
    mut client: Client,
    out: Out,
    request: kokuho_client::relay::ProvideRequest,
) -> Result<u8, ClientError> {
    let asked = format!("{} → {} ({}, 項 {})", request.requester, request.file, request.target, request.item);
    let r = client.provide(request).await?;
    let text = if r.allowed {
        format!("{asked}: 提供可 — {} ({} records)", r.basis, r.records.len())
    } else {
        format!("{asked}: 提供不可 — {}", r.basis)
    };
    out.value(&text, serde_json::json!({ "allowed": r.allowed, "basis": r.basis, "records": r.records.len() }));
    Ok(if r.allowed { EXIT_OK } else { EXIT_REJECTED })
}

async fn provision_log(mut client: Client, out: Out) -> Result<u8, ClientError> {
    let entries = client.provision_log().await?;
    let mut text = format!("{} provision requests (情報提供等の記録)\n", entries.len());
    let mut json = Vec::new();
    for e in &entries {
        text.push_str(&format!(
            "  {}  {}  {}  項 {}  {}  person {}  {}  ({})\n",
            unix_time(e.requested_at),
            e.requester,
            e.target,
            e.item,
            e.file,
            e.person,
            if e.allowed { "allowed" } else { "denied" },
            e.basis
        ));
        json.push(serde_json::json!({
            "requested_at": e.requested_at, "requester": e.requester, "target": e.target, "item": e.item,
            "file": e.file, "person": e.person, "allowed": e.allowed, "basis": e.basis, "caller": e.caller,
        }));
    }
    out.value(text.trim_end(), serde_json::Value::Array(json));
    Ok(EXIT_OK)
}

async fn eligibility(
    mut client: Client,
    out: Out,
    request: kokuho_client::midserver::EligibilityRequest,
) -> Result<u8, ClientError> {
    let card = format!("{} {} {} 枝番 {:02}", request.insurer, request.symbol, request.number, request.branch);
    let date = request.date;
    let r = client.eligibility(request).await?;
    let d = |v: u32| if v == 0 { "-".to_string() } else { v.to_string() };
    let text = if !r.found {
        format!("{card}: 該当なし ({date})")
    } else {
        format!(
            "{card}: {} ({date}); 資格取得 {} 喪失 {} / 都道府県 資格取得 {} 喪失 {}",
            if r.insured { "資格あり" } else { "資格なし" },
            d(r.acquired_on),
            d(r.lost_on),
            d(r.pref_acquired_on),
            d(r.pref_lost_on)
        )
    };
    out.value(
        &text,
        serde_json::json!({
            "found": r.found, "insured": r.insured, "date": date,
            "acquired_on": r.acquired_on, "lost_on": r.lost_on,
            "pref_acquired_on": r.pref_acquired_on, "pref_lost_on": r.pref_lost_on,
        }),
    );
    Ok(EXIT_OK)
}

/// What `kokuho why` explains.
enum WhyOf {
    Candidate(String),
    Link(String),
    /// A resident's RS rows (`Some(0)`: every period) and open anomalies (a code or "all").
    Periods {
        resident: String,
        rs: Option<u32>,
        anomaly: Option<String>,
    },
}

fn why_of(
    candidate: Option<String>,
    resident: Option<String>,
    rs: Option<String>,
    anomaly: Option<String>,
    link: bool,
) -> anyhow::Result<WhyOf> {
    match (candidate, resident) {
        (Some(c), _) => Ok(WhyOf::Candidate(c)),
        (None, Some(r)) if link => Ok(WhyOf::Link(r)),
        (None, Some(resident)) => {
            let rs = match rs.as_deref() {
                None => None,
                Some("all") => Some(0),
                Some(d) => Some(parse_date(d)?),
            };
            Ok(WhyOf::Periods { resident, rs, anomaly })
        }
        (None, None) => anyhow::bail!("say --candidate, or --resident with --rs, --anomaly or --link"),
    }
}

async fn why(client: Client, out: Out, municipality: String, what: WhyOf) -> Result<u8, ClientError> {
    match what {
        WhyOf::Candidate(candidate) => why_candidate(client, out, municipality, candidate).await,
        WhyOf::Link(resident) => {
            let mut client = client;
            let r = client.explain_link(&municipality, &resident).await?;
            out.value(
                &r.lines.join("\n"),
                serde_json::json!({
                    "person": r.person, "rules": r.rules, "lines": r.lines,
                    "facts": r.facts.iter().map(output::fact_json).collect::<Vec<_>>(),
                }),
            );
            Ok(EXIT_OK)
        }
        WhyOf::Periods { resident, rs, anomaly } => {
            let mut client = client;
            let r = client.explain_periods(&municipality, &resident, rs, anomaly.as_deref()).await?;
            if r.explanations.is_empty() {
                out.error(&format!("{municipality} {resident}: nothing to explain (no such period or open anomaly)"));
                return Ok(EXIT_REJECTED);
            }
            let text = r
                .explanations
                .iter()
                .map(|e| format!("{} [{}]\n  {}", e.subject, e.rules.join(","), e.lines.join("\n  ")))
                .collect::<Vec<_>>()
                .join("\n\n");
            let json: Vec<_> = r
                .explanations
                .iter()
                .map(|e| serde_json::json!({ "subject": e.subject, "rules": e.rules, "lines": e.lines }))
                .collect();
            out.value(&text, serde_json::json!({ "explanations": json }));
            Ok(EXIT_OK)
        }
    }
}

/// How `kokuho history` prints.
#[derive(Clone, Copy)]
enum HistoryFormat {
    Out(Out),
    Csv,
}

async fn history(
    mut client: Client,
    format: HistoryFormat,
    municipality: Option<String>,
    resident: Option<String>,
    person: Option<String>,
    as_of: u32,
    operator: bool,
) -> Result<u8, ClientError> {
    let subject = match (&person, &municipality, &resident) {
        (Some(p), _, _) => kokuho_client::HistorySubject::Person(p),
        (None, Some(m), Some(r)) => kokuho_client::HistorySubject::Resident { municipality: m, resident: r },
        _ => {
            return Err(ClientError::Status(kokuho_client::Status::invalid_argument(
                "say --person, or --municipality and --resident",
            )));
        }
    };
    let r = client.history(subject, as_of, operator).await?;
    match format {
        HistoryFormat::Csv => output::history_csv(&r),
        HistoryFormat::Out(out) => out.history(&r),
    }
    Ok(if r.facts.is_empty() { EXIT_REJECTED } else { EXIT_OK })
}

async fn why_candidate(
    mut client: Client,
    out: Out,
    municipality: String,
    candidate: String,
) -> Result<u8, ClientError> {
    let r = client.explain_candidate(&municipality, &candidate).await?;
    out.value(
        &r.lines.join("\n"),
        serde_json::json!({
            "candidate": r.candidate.as_ref().map(output::candidate_json),
            "rule": r.rule, "lines": r.lines, "movers": r.movers,
            "householder": r.householder, "former_householder": r.former_householder,
        }),
    );
    Ok(EXIT_OK)
}

async fn candidates(
    mut client: Client,
    out: Out,
    municipality: Option<String>,
    changed: bool,
) -> Result<u8, ClientError> {
    let list = client.list_candidates(municipality.as_deref(), changed).await?;
    out.candidates(&list);
    Ok(EXIT_OK)
}

async fn review(mut client: Client, out: Out, command: ReviewCommand) -> Result<u8, ClientError> {
    match command {
        ReviewCommand::List => {
            let cases = client.list_reviews().await?;
            out.reviews(&cases);
            Ok(EXIT_OK)
        }
        ReviewCommand::Resolve { case, link, relink, reject, reason, operator } => {
            let action = match (link, relink, reject) {
                (true, _, _) => kokuho_client::ReviewAction::Link,
                (_, true, _) => kokuho_client::ReviewAction::Relink,
                (_, _, true) => kokuho_client::ReviewAction::Reject,
                _ => {
                    out.error("say --link, --relink or --reject");
                    return Ok(EXIT_USAGE);
                }
            };
            let pref_id = client.resolve_review(&case, action, &reason, &operator).await?;
            out.value(
                &format!(
                    "{case}: {}",
                    if pref_id.is_empty() { "rejected".to_string() } else { format!("linked to {pref_id}") }
                ),
                serde_json::json!({ "case": case, "pref_id": pref_id }),
            );
            Ok(EXIT_OK)
        }
    }
}

fn parse_date(s: &str) -> anyhow::Result<u32> {
    let d = kokuho_ids::Date::parse(s).map_err(|e| anyhow::anyhow!("{s} is not a date (YYYYMMDD): {e}"))?;
    Ok(d.to_yyyymmdd())
}

fn today() -> u32 {
    let now = time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.year() as u32 * 10_000 + u32::from(now.month() as u8) * 100 + u32::from(now.day())
}

fn registry(path: Option<&Path>) -> anyhow::Result<Arc<Registry>> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("read registry {}", p.display()))?;
            Ok(Arc::new(Registry::parse(&text).with_context(|| format!("registry {}", p.display()))?))
        }
        None => Ok(Arc::new(kokuho_system::default_registry())),
    }
}

async fn up(global: &Global, args: UpArgs) -> anyhow::Result<u8> {
    let dir = data_dir(global);
    std::fs::create_dir_all(dir.join("logs")).with_context(|| format!("create {}", dir.display()))?;
    let mut settings = kokuho_runtime::telemetry::TelemetrySettings::from_env();
    settings.log_file = Some(dir.join("logs").join("kokuho.log"));
    let _telemetry = kokuho_runtime::telemetry::init("kokuho", &settings)?;
    let business_date = match &args.business_date {
        Some(d) => parse_date(d)?,
        None => today(),
    };
    let municipalities = registry(args.registry.as_deref())?;
    let mut config = SystemConfig {
        nats_url: args.nats.clone(),
        listen: args.listen,
        ..SystemConfig::embedded(dir.clone(), municipalities.clone())
    }
    .with_business_date(business_date);
    if let Some(mib) = args.store_cache_mib {
        config.settings.set(kokuho_system::STORE_CACHE_MIB, mib.to_string());
    }
    let system = System::start(config).await?;
    output::line(&format!("kokuho is up at {} (data in {}); Ctrl-C stops it", system.endpoint(), dir.display()));
    if let Some(url) = system.metrics_url() {
        output::line(&format!("metrics (Prometheus): {url}"));
    }
    let console = start_console(&system, &dir, municipalities, args.console_listen).await?;
    let code = run_until_stopped(&system).await;
    output::line("Stopping kokuho");
    console.stop().await;
    system.stop().await?;
    Ok(code)
}

/// The clerk console of a system started in this process (`up`, `demo`): it calls the system's
/// endpoint and checks sign-ins against the system's credentials; its URL is printed and
/// written to `<data dir>/console`.
async fn start_console(
    system: &System,
    data: &Path,
    registry: Arc<Registry>,
    listen: std::net::SocketAddr,
) -> anyhow::Result<kokuho_console::Console> {
    let config = kokuho_console::ConsoleConfig {
        api: system.endpoint().to_string(),
        client_tls: system.client_tls().cloned(),
        credentials: kokuho_system::credentials_dir(data),
        registry,
        secure_cookies: false,
        page_size: 0,
    };
    let console = kokuho_console::Console::start(listen, config).await?;
    std::fs::write(data.join("console"), console.url()).with_context(|| format!("write {}", data.display()))?;
    output::line(&format!(
        "console: {} (sign in with a token file from {})",
        console.url(),
        kokuho_system::credentials_dir(data).display()
    ));
    Ok(console)
}

/// `kokuho serve console`: the clerk console alone, in front of the services' API.
async fn serve_console(settings: ServeSettings) -> anyhow::Result<u8> {
    let _telemetry =
        kokuho_runtime::telemetry::init("console", &kokuho_runtime::telemetry::TelemetrySettings::from_env())?;
    let client_tls = match &settings.tls_ca {
        Some(ca) => Some(kokuho_runtime::tls::ClientTls::load(
            ca,
            settings.tls_client_cert.as_deref().zip(settings.tls_client_key.as_deref()),
        )?),
        None => None,
    };
    let config = kokuho_console::ConsoleConfig {
        api: settings
            .console_api
            .context("no API: give --console-api or KOKUHO_CONSOLE_API (the services' gRPC endpoint)")?,
        client_tls,
        credentials: settings.credentials.context(
            "no credentials: give --credentials or KOKUHO_CREDENTIALS (the directory with the issuer's public key)",
        )?,
        registry: registry(settings.registry.as_deref())?,
        secure_cookies: settings.console_secure_cookies.unwrap_or(true),
        page_size: settings.console_page_size.unwrap_or(0),
    };
    let listen = settings.listen.unwrap_or_else(|| "0.0.0.0:8080".parse().expect("a socket address"));
    let console = kokuho_console::Console::start(listen, config).await?;
    output::line(&format!("console: {}", console.url()));
    kokuho_runtime::shutdown::signal().await;
    console.stop().await;
    Ok(EXIT_OK)
}

/// `kokuho replay`: the projections rebuilt from the log, and with `verify` compared with the
/// running system's.
struct ReplayArgs {
    services: Vec<String>,
    verify: bool,
    until: Option<u32>,
    dir: Option<PathBuf>,
    nats: Option<String>,
    patience: u64,
}

async fn replay(global: &Global, out: Out, args: ReplayArgs) -> anyhow::Result<u8> {
    let ReplayArgs { services, verify, until, dir, nats, patience } = args;
    let data = data_dir(global);
    let all = kokuho_system::replay::services();
    let services: Vec<&'static str> = if services.is_empty() {
        all.clone()
    } else {
        services
            .iter()
            .map(|s| all.iter().find(|a| *a == s).copied().with_context(|| format!("no service {s:?} to replay")))
            .collect::<anyhow::Result<_>>()?
    };
    let nats_url = nats_url(&data, nats)?;
    // The live system: its projections' positions and digests (operator).
    let live = if verify {
        let channel = kokuho_runtime::tls::endpoint(&endpoint(global)?, client_tls(global)?.as_ref())
            .map_err(anyhow::Error::msg)?
            .connect()
            .await
            .context("connect to the running system")?;
        let token = match &global.token_file {
            Some(path) => std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?,
            None => kokuho_runtime::credentials::Credentials::token_of(
                &kokuho_system::credentials_dir(&data),
                &kokuho_runtime::credentials::Caller::operator(),
            )?,
        };
        let token = token.trim().to_string();
        let projections = kokuho_system::replay::live_projections(channel.clone(), &token).await?;
        Some((channel, token, projections))
    } else {
        None
    };
    let targets =
        live.as_ref().map(|(_, _, p)| p.iter().map(|p| (p.name.clone(), p.position)).collect()).unwrap_or_default();
    // A past business date: every stream where it stood then (read as the auditor).
    let stream_targets = match until {
        Some(date) => {
            let live = SystemConfig::embedded(data.clone(), registry(None)?);
            let bus = kokuho_system::replay::auditor_bus(&live, &nats_url).await?;
            match kokuho_system::replay::positions_at_date(&bus, date).await? {
                Some(p) => p,
                None => {
                    eprintln!("the calendar has not moved past {date}: replaying the log as it is now");
                    Default::default()
                }
            }
        }
        None => Default::default(),
    };
    let scratch = match &dir {
        Some(d) => d.clone(),
        None => tempfile::tempdir()?.keep(),
    };
    // A bar on the terminal (none with --json or when stderr is not a terminal): the events
    // replayed of those to replay, and how many projections are at their positions.
    let bar = if out.json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(0) };
    bar.set_style(
        indicatif::ProgressStyle::with_template("replaying {bar:40} {pos}/{len} events  {msg}  {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |now: &[(String, u64, u64)]| {
        let target: u64 = now.iter().map(|(_, _, t)| *t).sum();
        let done: u64 = now.iter().map(|(_, p, t)| (*p).min(*t)).sum();
        let at = now.iter().filter(|(_, p, t)| *t > 0 && p >= t).count();
        bar.set_length(target.max(done));
        bar.set_position(done);
        bar.set_message(format!("{at} of {} projections at their positions", now.len()));
    };
    let config = SystemConfig::embedded(data.clone(), registry(None)?);
    let replay = kokuho_system::replay::Replay {
        live: config,
        nats_url,
        scratch: scratch.clone(),
        services,
        targets,
        stream_targets,
        patience: Duration::from_secs(patience),
    };
    let replayed = kokuho_system::replay::run(replay, progress).await;
    bar.finish_and_clear();
    let replayed = replayed?;
    let mut code = EXIT_OK;
    let mut rows = Vec::new();
    match &live {
        Some((channel, token, _)) => {
            for v in kokuho_system::replay::compare(&replayed, channel.clone(), token).await? {
                let verdict = match (&v.live, &v.first_difference) {
                    _ if v.equal() => "equal".to_string(),
                    (None, _) => "not in the running system".to_string(),
                    (Some(_), Some(key)) => format!("differs at key {}", printable(key)),
                    (Some(_), None) => "differs (position or metadata)".to_string(),
                };
                if !v.equal() {
                    code = EXIT_REJECTED;
                }
                rows.push((v.name.clone(), v.replayed.position, v.replayed.keys, v.replayed.sha256.clone(), verdict));
            }
        }
        None => {
            for r in &replayed {
                let d = &r.digest;
                rows.push((r.name.clone(), d.position, d.keys, d.sha256.clone(), "replayed".to_string()));
            }
        }
    }
    if dir.is_none() {
        drop(replayed);
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let text = rows
        .iter()
        .map(|(name, position, keys, sha, verdict)| {
            format!("{name:<24} at {position:>8}  {keys:>8} keys  {}…  {verdict}", &sha[..12])
        })
        .collect::<Vec<_>>()
        .join("\n");
    let json = serde_json::json!({
        "projections": rows.iter().map(|(name, position, keys, sha, verdict)| serde_json::json!({
            "name": name, "position": position, "keys": keys, "sha256": sha, "verdict": verdict
        })).collect::<Vec<_>>(),
        "equal": code == EXIT_OK,
    });
    out.value(&text, json);
    Ok(code)
}

/// The NATS URL of the log: given, or the one `kokuho up` wrote in the data dir.
fn nats_url(data: &Path, given: Option<String>) -> anyhow::Result<String> {
    match given {
        Some(url) => Ok(url),
        None => std::fs::read_to_string(kokuho_system::nats_url_file(data))
            .map(|s| s.trim().to_string())
            .with_context(|| format!("no NATS URL in {} (give --nats)", data.display())),
    }
}

/// `kokuho dead-letters`: read as the NATS auditor.
async fn dead_letters(global: &Global, out: Out, nats: Option<String>) -> anyhow::Result<u8> {
    let data = data_dir(global);
    let live = SystemConfig::embedded(data.clone(), registry(None)?);
    let bus = kokuho_system::replay::auditor_bus(&live, &nats_url(&data, nats)?).await?;
    let list = bus.dead_letter_list().await?;
    let text = if list.is_empty() {
        "no dead letters".to_string()
    } else {
        list.iter()
            .map(|d| {
                format!("{:>6}  {}  {} #{} ({})  {}", d.seq, d.consumer, d.stream, d.origin_seq, d.subject, d.reason)
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let json = serde_json::json!({ "dead_letters": list.iter().map(|d| serde_json::json!({
        "seq": d.seq, "consumer": d.consumer, "stream": d.stream, "origin_seq": d.origin_seq,
        "subject": d.subject, "reason": d.reason, "bytes": d.bytes,
    })).collect::<Vec<_>>() });
    out.value(&text, json);
    Ok(EXIT_OK)
}

/// A store key for people: text as it is, other bytes escaped.
fn printable(key: &[u8]) -> String {
    String::from_utf8_lossy(key).chars().flat_map(char::escape_debug).collect()
}

/// Runs until Ctrl-C / SIGTERM (exit 0), or until a task of a service failed for good (S9: exit
/// 1, so that the supervisor — a terminal, systemd, Kubernetes — restarts it and it resumes from
/// its stored positions, instead of serving a state that no longer moves).
async fn run_until_stopped(system: &System) -> u8 {
    tokio::select! {
        () = kokuho_runtime::shutdown::signal() => EXIT_OK,
        why = system.failed() => {
            tracing::error!(%why, "stopping: a service failed");
            output::line(&format!("kokuho stops: {why}"));
            EXIT_REJECTED
        }
    }
}

async fn serve(global: &Global, args: ServeArgs) -> anyhow::Result<u8> {
    if args.service == "console" {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("read config {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("config {}", path.display()))?
            }
            None => ServeSettings::default(),
        };
        return serve_console(args.settings.or(file)).await;
    }
    let Some(service) = kokuho_system::service_names().into_iter().find(|s| *s == args.service) else {
        anyhow::bail!(
            "service {:?} is not built yet; this binary runs {} (relay comes with its issue)",
            args.service,
            kokuho_system::service_names().join(", ")
        );
    };
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("read config {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("config {}", path.display()))?
        }
        None => ServeSettings::default(),
    };
    let mut flags = args.settings;
    flags.data_dir = global.data_dir.clone();
    let settings = flags.or(file);
    let nats = settings.nats.context("no NATS server: give --nats, KOKUHO_NATS_URL or `nats` in the config file")?;
    let mut config = SystemConfig {
        services: vec![service],
        nats_url: Some(nats),
        listen: settings.listen.unwrap_or_else(|| "0.0.0.0:50051".parse().expect("a socket address")),
        // A deployment mounts its keys; missing ones are an error of the service that needs them.
        dev_keys: false,
        ..SystemConfig::embedded(
            settings.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            registry(settings.registry.as_deref())?,
        )
    };
    if let Some(d) = settings.business_date.as_deref() {
        config.settings.set("business_date", parse_date(d)?.to_string());
    }
    if let Some(p) = &settings.identity_public_key {
        config.settings.set("identity_public_key", p.display().to_string());
    }
    if let Some(p) = &settings.identity_keys {
        config.settings.set("identity_keys", p.display().to_string());
    }
    if let Some(on) = settings.kogaku_auto_confirm {
        config.settings.set(kokuho_kogaku::AUTO_CONFIRM, on.to_string());
    }
    if let Some(p) = &settings.midserver_keys {
        config.settings.set(kokuho_midserver_sim::KEYS, p.display().to_string());
    }
    if let Some(f) = &settings.midserver_faults {
        config.settings.set(kokuho_midserver_sim::FAULTS, f.clone());
    }
    let relay = [
        (kokuho_system::NATS_CREDENTIALS, settings.nats_credentials.as_ref().map(|p| p.display().to_string())),
        (kokuho_system::AUDIT_SIGNING_KEYS, settings.audit_signing_keys.as_ref().map(|p| p.display().to_string())),
        (kokuho_runtime::tls::CERT, settings.tls_cert.as_ref().map(|p| p.display().to_string())),
        (kokuho_runtime::tls::KEY, settings.tls_key.as_ref().map(|p| p.display().to_string())),
        (kokuho_runtime::tls::CA, settings.tls_ca.as_ref().map(|p| p.display().to_string())),
        (kokuho_runtime::tls::CLIENT_CA, settings.tls_client_ca.as_ref().map(|p| p.display().to_string())),
        (kokuho_runtime::tls::CLIENT_CERT, settings.tls_client_cert.as_ref().map(|p| p.display().to_string())),
        (kokuho_runtime::tls::CLIENT_KEY, settings.tls_client_key.as_ref().map(|p| p.display().to_string())),
        (kokuho_system::RELEASE_PER_MINUTE, settings.release_per_minute.map(|n| n.to_string())),
        (kokuho_system::AUDIT_PUBLIC_KEYS, settings.audit_public_keys.as_ref().map(|p| p.display().to_string())),
        (kokuho_system::METRICS_LISTEN, settings.metrics_listen.map(|a| a.to_string())),
        (kokuho_system::HEALTH_LISTEN, settings.health_listen.map(|a| a.to_string())),
        (kokuho_system::STREAM_REPLICAS, settings.stream_replicas.map(|n| n.to_string())),
        (kokuho_intake::MAX_SUBMISSIONS, settings.intake_max_submissions.map(|n| n.to_string())),
        (kokuho_intake::SMALL_SUBMISSIONS, settings.intake_small_submissions.map(|n| n.to_string())),
        (kokuho_system::STORE_CACHE_MIB, settings.store_cache_mib.map(|n| n.to_string())),
        (kokuho_system::GRPC_TIMEOUT_SECONDS, settings.grpc_timeout_seconds.map(|n| n.to_string())),
        (kokuho_relay::IDENTITY_ENDPOINT, settings.identity_endpoint.clone()),
        (kokuho_relay::MIDSERVER_ENDPOINT, settings.midserver_endpoint.clone()),
        (kokuho_relay::TOKEN_FILE, settings.relay_token_file.as_ref().map(|p| p.display().to_string())),
        (kokuho_relay::IN_FLIGHT, settings.relay_in_flight.map(|n| n.to_string())),
        (kokuho_relay::SHARD, settings.relay_shard.clone()),
        (kokuho_relay::STALL_SECONDS, settings.relay_stall_seconds.map(|n| n.to_string())),
        (kokuho_relay::POLICY, settings.provision_policy.as_ref().map(|p| p.display().to_string())),
    ];
    for (key, value) in relay {
        if let Some(v) = value {
            config.settings.set(key, v);
        }
    }
    // Every service checks its callers (security.md S5).
    config.credentials_dir =
        Some(settings.credentials.context(
            "no credentials: give --credentials, KOKUHO_CREDENTIALS or `credentials` (a directory of tokens)",
        )?);
    // Each service's spans under its own name (OTLP `service.name`).
    let _telemetry =
        kokuho_runtime::telemetry::init(service, &kokuho_runtime::telemetry::TelemetrySettings::from_env())?;
    let system = System::start(config).await?;
    let code = run_until_stopped(&system).await;
    system.stop().await?;
    Ok(code)
}

async fn streams(out: Out, nats: &str, credentials: &Path, replicas: usize) -> anyhow::Result<u8> {
    kokuho_system::ensure_streams(nats, &kokuho_system::admin_user(credentials)?, replicas).await?;
    let n = kokuho_system::streams().len();
    out.value(&format!("{n} streams ready"), serde_json::json!({ "streams": n }));
    Ok(EXIT_OK)
}

fn keys_issue(
    out: Out,
    issuer: &Path,
    role: &str,
    name: Option<String>,
    municipality: Option<String>,
    days: u64,
    file: &Path,
) -> anyhow::Result<u8> {
    use kokuho_runtime::credentials::{Caller, Issuer};
    let caller = match (role, name, municipality) {
        ("operator", Some(name), _) => Caller::Operator(name),
        ("municipality", _, Some(code)) => Caller::Municipality(code),
        ("relay", _, _) => Caller::Relay,
        _ => anyhow::bail!("--role is municipality (with --municipality), operator (with --name) or relay"),
    };
    let token = Issuer::ensure(issuer)?.issue(&caller, days)?;
    std::fs::write(file, token)?;
    out.value(
        &format!("Wrote a {} token for {} to {} (valid {days} days)", caller.role(), caller.who(), file.display()),
        serde_json::json!({ "role": caller.role(), "who": caller.who(), "token": file, "days": days }),
    );
    Ok(EXIT_OK)
}

fn keys_audit(out: Out, dir: &Path) -> anyhow::Result<u8> {
    kokuho_system::ensure_audit_keys(dir)?;
    out.value(
        &format!("Wrote the services' audit keys (<service>.nk, <service>.pub) into {}", dir.display()),
        serde_json::json!({ "dir": dir }),
    );
    Ok(EXIT_OK)
}

fn keys_nats(out: Out, dir: &Path) -> anyhow::Result<u8> {
    let accounts = kokuho_system::nats_auth(dir)?;
    kokuho_runtime::tls::DevPki::ensure(dir)?;
    std::fs::write(dir.join("accounts.conf"), accounts)?;
    out.value(
        &format!(
            "Wrote the NATS users' seeds, {}/accounts.conf (include it in the server's config) and a dev CA with server and client certificates (ca.pem, server.*, client.*)",
            dir.display()
        ),
        serde_json::json!({ "dir": dir, "accounts": dir.join("accounts.conf") }),
    );
    Ok(EXIT_OK)
}

fn keys_tls(out: Out, dir: &Path, namespace: &str, callers: &[String]) -> anyhow::Result<u8> {
    let services = kokuho_system::service_names();
    let callers: Vec<&str> = callers.iter().map(String::as_str).collect();
    kokuho_runtime::tls::DevPki::ensure_deployment(dir, namespace, &services, &callers)?;
    out.value(
        &format!(
            "Wrote the gRPC CA ({0}/ca.pem), a certificate per service ({1}) and per caller ({2}) in {0}",
            dir.display(),
            services.join(", "),
            callers.join(", ")
        ),
        serde_json::json!({ "dir": dir, "services": services, "callers": callers }),
    );
    Ok(EXIT_OK)
}

fn keys_generate(out: Out, dir: &Path) -> anyhow::Result<u8> {
    let public = kokuho_crypto::generate_key_pair(dir)?;
    out.value(
        &format!("Wrote {0}/identity.pub and {0}/identity.key (key id {1})", dir.display(), public.id()),
        serde_json::json!({ "public": dir.join("identity.pub"), "private": dir.join("identity.key"), "key_id": public.id() }),
    );
    Ok(EXIT_OK)
}

async fn submit(mut client: Client, out: Out, args: SubmitArgs) -> Result<u8, ClientError> {
    let mut files = Vec::new();
    for path in &args.files {
        let bytes =
            std::fs::read(path).map_err(|source| ClientError::Io { path: path.display().to_string(), source })?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        files.push((name, bytes));
    }
    let r = client.submit(&args.municipality, files).await?;
    if args.wait {
        client.wait_idle(Duration::from_secs(600)).await?;
    }
    out.submission(&r);
    Ok(if r.status() == SubmissionStatus::Rejected { EXIT_REJECTED } else { EXIT_OK })
}

async fn status(mut client: Client, out: Out, receipt: String) -> Result<u8, ClientError> {
    let r = client.status(&receipt).await?;
    out.status(&r);
    Ok(EXIT_OK)
}

async fn wait(mut client: Client, out: Out, timeout: u64) -> Result<u8, ClientError> {
    let r = client.wait_idle(Duration::from_secs(timeout)).await?;
    out.value(
        if r.idle { "Every service has caught up." } else { "Still working; try again later." },
        serde_json::json!({ "idle": r.idle, "pending": r.progress.iter().map(|p| p.pending).sum::<u64>() }),
    );
    Ok(if r.idle { EXIT_OK } else { EXIT_REJECTED })
}

async fn close_day(mut client: Client, out: Out, date: String, anchors: PathBuf) -> Result<u8, ClientError> {
    let Ok(date) = parse_date(&date) else {
        out.error(&format!("{date} is not a date (YYYYMMDD)"));
        return Ok(EXIT_USAGE);
    };
    let r = client.close_day(date).await?;
    // S8: at every day close the audit chains' heads go to the operator's file.
    let heads = client.anchor_audit(&anchors).await?;
    out.value(
        &format!(
            "Business date is now {} (was {}). Anchored {} audit chains in {}.",
            r.business_date,
            r.previous,
            heads.len(),
            anchors.display()
        ),
        serde_json::json!({ "business_date": r.business_date, "previous": r.previous, "anchors": anchors }),
    );
    Ok(EXIT_OK)
}

async fn fetch(mut client: Client, out: Out, municipality: String, dir: PathBuf) -> Result<u8, ClientError> {
    let files = client.fetch_into(&municipality, &dir).await?;
    out.files(&files, &dir);
    Ok(EXIT_OK)
}

async fn files(mut client: Client, out: Out, command: FilesCommand) -> Result<u8, ClientError> {
    match command {
        FilesCommand::List { municipality, before, limit } => {
            let listing = client.list_files(&municipality, before, limit).await?;
            out.file_listing(&municipality, &listing);
        }
        FilesCommand::Get { municipality, name, out: dir } => {
            let file = client.get_file(&municipality, &name).await?;
            let files = [file];
            kokuho_client::save_files(&files, &dir).await?;
            out.files(&files, &dir);
        }
    }
    Ok(EXIT_OK)
}

async fn anomalies(
    mut client: Client,
    out: Out,
    municipality: String,
    after: String,
    limit: u32,
) -> Result<u8, ClientError> {
    let list = client.list_anomalies(&municipality, &after, limit).await?;
    let mut text = format!("{municipality}: {} residents with open anomalies\n", list.residents);
    let mut json = Vec::new();
    for a in &list.anomalies {
        let view = a.anomaly.clone().unwrap_or_default();
        let why = a.why.clone().unwrap_or_default();
        text.push_str(&format!("  {} {} [{}]\n", a.resident_number, view.code, why.rules.join(",")));
        for line in &why.lines {
            text.push_str(&format!("      {line}\n"));
        }
        json.push(serde_json::json!({
            "resident": a.resident_number, "code": view.code, "counterpart": view.counterpart,
            "counterpart_start": view.counterpart_start, "counterpart_end": view.counterpart_end,
            "rules": why.rules, "why": why.lines,
        }));
    }
    if !list.next_after.is_empty() {
        text.push_str(&format!("next: --after {}\n", list.next_after));
    }
    out.value(
        text.trim_end(),
        serde_json::json!({
            "municipality": municipality, "residents": list.residents, "anomalies": json, "next_after": list.next_after,
        }),
    );
    Ok(EXIT_OK)
}

async fn waiting(
    mut client: Client,
    out: Out,
    municipality: String,
    after: String,
    limit: u32,
) -> Result<u8, ClientError> {
    let status = client.relay_waiting(&municipality, &after, limit).await?;
    let mut text = String::new();
    let mut json = Vec::new();
    let mut next = String::new();
    for p in &status.partitions {
        text.push_str(&format!(
            "{}: {} records waiting; {} records held, {} operations undelivered (lag {} s){}\n",
            p.municipality,
            p.waiting,
            p.records,
            p.undelivered,
            p.lag_seconds,
            if p.stalled { ", STALLED (R05)" } else { "" }
        ));
        for w in &p.waiting_records {
            let open = w.wait.clone().unwrap_or_default();
            let why = kokuho_relay_domain::wait_reason(&open.code);
            text.push_str(&format!(
                "  {} {} {} {} (receipt {} line {})\n",
                w.resident_number, w.start, open.code, why, open.receipt, open.line
            ));
            json.push(serde_json::json!({
                "resident": w.resident_number, "start": w.start, "code": open.code,
                "receipt": open.receipt, "line": open.line,
            }));
        }
        if !p.waiting_next.is_empty() {
            text.push_str(&format!("next: --after {}\n", p.waiting_next));
            next = p.waiting_next.clone();
        }
    }
    let total: u64 = status.partitions.iter().map(|p| p.waiting).sum();
    out.value(
        text.trim_end(),
        serde_json::json!({ "municipality": municipality, "waiting": total, "records": json, "next_after": next }),
    );
    Ok(EXIT_OK)
}

/// The sample scenario shipped in the repository.
fn default_scenario() -> PathBuf {
    let here = PathBuf::from("scenarios/sample");
    if here.join("scenario.json").exists() {
        return here;
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/sample"))
}

/// The demo's end: what each partition of the intermediate server holds (R1, R2), and one
/// eligibility check as a clinic makes it.
/// The demo's last step: for the first person an RS row says moved within the prefecture
/// (判定区分 2), why that row says so and the person's history, as the clerk sees them.
async fn show_a_movers_history(client: &mut Client, reports: &[StepReport]) -> anyhow::Result<()> {
    let mover = reports.iter().flat_map(|r| &r.fetched).find_map(|(muni, files)| {
        files.iter().filter(|f| f.kind == "RS").find_map(|f| {
            String::from_utf8_lossy(&f.content).lines().find_map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                (fields.first() == Some(&"2") && fields.get(9) == Some(&"2"))
                    .then(|| (muni.clone(), fields[1].to_string(), fields[7].to_string()))
            })
        })
    });
    let Some((muni, resident, start)) = mover else { return Ok(()) };
    output::line(&format!("\n== kokuho why --municipality {muni} --resident {resident} --rs {start} =="));
    let start = parse_date(&start)?;
    for e in client.explain_periods(&muni, &resident, Some(start), None).await?.explanations {
        output::line(&format!("{} [{}]\n  {}", e.subject, e.rules.join(","), e.lines.join("\n  ")));
    }
    output::line(&format!("\n== kokuho history --municipality {muni} --resident {resident} (as {muni}'s clerk) =="));
    let subject = kokuho_client::HistorySubject::Resident { municipality: &muni, resident: &resident };
    Out { json: false }.history(&client.history(subject, 0, false).await?);
    Ok(())
}

async fn show_partitions(client: &mut Client, scenario: &Scenario) -> anyhow::Result<()> {
    let mut first = None;
    output::line("\n== 中間サーバー: what each partition (委託区画) holds ==");
    for m in scenario.municipalities() {
        let subscribers = client.midserver_partition(&m).await?;
        output::line(&format!("partition {m}: {} records", subscribers.len()));
        for s in &subscribers {
            output::line(&format!(
                "  {} {} {} 枝番 {:02}  {}  資格取得 {} 喪失 {}  都道府県 資格取得 {}",
                s.insurer,
                s.symbol,
                s.number,
                s.branch,
                s.name,
                s.acquired_on,
                if s.lost_on == 0 { "-".to_string() } else { s.lost_on.to_string() },
                if s.pref_acquired_on == 0 { "-".to_string() } else { s.pref_acquired_on.to_string() },
            ));
            // The query shows a mover if there is one: insured at the new municipality from the
            // day of the move, with the prefecture-level date carried over (C1).
            let mover = s.pref_acquired_on != 0 && s.pref_acquired_on < s.acquired_on;
            if first.is_none()
                || (mover
                    && first
                        .as_ref()
                        .is_some_and(|f: &kokuho_client::midserver::Subscriber| f.pref_acquired_on >= f.acquired_on))
            {
                first = Some(s.clone());
            }
        }
    }
    if let Some(s) = first {
        let date = s.acquired_on;
        let request = kokuho_client::midserver::EligibilityRequest {
            insurer: s.insurer.clone(),
            symbol: s.symbol.clone(),
            number: s.number.clone(),
            branch: s.branch,
            date,
        };
        let r = client.eligibility(request).await?;
        output::line(&format!(
            "\n== オンライン資格確認: {} {} {} 枝番 {:02} on {date} ==\n  {} (資格取得 {}, 都道府県 資格取得 {}); no 個人番号 in the answer",
            s.insurer,
            s.symbol,
            s.number,
            s.branch,
            if r.insured { "資格あり" } else { "資格なし" },
            r.acquired_on,
            r.pref_acquired_on
        ));
    }
    Ok(())
}

async fn demo(out: Out, args: DemoArgs) -> anyhow::Result<u8> {
    let scenario_dir = args.scenario.unwrap_or_else(default_scenario);
    let scenario = Scenario::load(&scenario_dir)?;
    let tmp = tempfile::Builder::new().prefix("kokuho-demo-").tempdir()?;
    let dir = tmp.path().to_path_buf();
    std::fs::create_dir_all(dir.join("logs"))?;
    let mut settings = kokuho_runtime::telemetry::TelemetrySettings::from_env();
    settings.log_file = Some(dir.join("logs").join("kokuho.log"));
    let _telemetry = kokuho_runtime::telemetry::init("kokuho", &settings)?;
    let municipalities = registry(None)?;
    let mut config = SystemConfig::embedded(dir.clone(), municipalities.clone());
    if let Some(d) = scenario.first_business_date() {
        config = config.with_business_date(d);
    }
    let system = System::start(config).await?;
    output::line(&format!(
        "kokuho demo: scenario {} on a fresh system at {} (business date {})",
        scenario_dir.display(),
        system.endpoint(),
        scenario.business_date
    ));
    let console = start_console(&system, &dir, municipalities, args.console_listen).await?;
    let mut client = Client::connect_trusting(system.endpoint(), system.client_tls())
        .await?
        .with_dev_credentials(kokuho_system::credentials_dir(&dir));
    let played = scenario::play(&mut client, &scenario, |report| out.step(report)).await;
    if let Ok(reports) = &played {
        show_partitions(&mut client, &scenario).await?;
        show_a_movers_history(&mut client, reports).await?;
    }
    let mut code = EXIT_OK;
    if args.keep && played.is_ok() {
        output::line(&format!(
            "\nThe system stays up with the sample data: open {} and sign in with a token file from {} \
             (e.g. 131032.token for a clerk of 131032, operator.token for an operator). Ctrl-C stops it.",
            console.url(),
            kokuho_system::credentials_dir(&dir).display()
        ));
        code = run_until_stopped(&system).await;
    }
    console.stop().await;
    system.stop().await?;
    if args.keep {
        let kept = tmp.keep();
        output::line(&format!("Data kept in {}", kept.display()));
    }
    played?;
    Ok(code)
}
