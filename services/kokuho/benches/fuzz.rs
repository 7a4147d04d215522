//! Fuzzing on stable Rust (issue 12, S9): every input kokuho takes from outside — the files a
//! municipality submits, the protobuf of every event a consumer decodes, the gRPC requests it
//! answers, callers' tokens — fed with `arbitrary`-driven data from `arbtest`, one seeded run
//! at a time, so every failure prints the seed that reproduces it
//! (`KOKUHO_FUZZ_SEED=<seed> cargo bench -p kokuho --bench fuzz`).
//!
//! `just fuzz` runs 10 million executions (`KOKUHO_FUZZ_EXECS`); `just test` a smoke run. A
//! panic anywhere is a crash: the run stops with the target and the seed. The properties also
//! check what must hold of any input: a parsed file's records are within the caps, a decided
//! submission accounts for every record, nothing decodes into an event of another stream.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use arbitrary::Unstructured;
use kokuho_ids::{Date, LocalGovCode, Registry};
use kokuho_intake_domain::csv::MAX_FIELDS;
use kokuho_intake_domain::file;
use kokuho_intake_domain::submission::{self, Facts, FileInput, Input, Outcome};
use prost::Message as _;

type Target = fn(&mut Unstructured<'_>) -> arbitrary::Result<()>;

/// How deep the runs reached (printed at the end): a fuzzer that never gets past the first
/// check tests nothing.
static PARSED: AtomicU64 = AtomicU64::new(0);
static RECORDS: AtomicU64 = AtomicU64::new(0);
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static DECODED: AtomicU64 = AtomicU64::new(0);

/// Bytes that make CSV structure likely: separators, quotes, line ends, digits, kinds.
const ALPHABET: &[u8] = b"0123456789,,,,\"\r\n\n\n12KSKGKTKK 9-/\t\xe3\x81\x82";

fn csv_like(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let n = u.arbitrary_len::<u8>()?;
    (0..n).map(|_| u.choose(ALPHABET).copied()).collect()
}

/// Values a field of some record kind takes, right or nearly right, so that records get past
/// the first check and the record rules run (dates, codes, IDs, names, blanks).
const VALUES: &[&str] = &[
    "",
    "1",
    "2",
    "3",
    "9",
    "0",
    "01",
    "02",
    "03",
    "09",
    "11",
    "21",
    "1001",
    "1002",
    "100001",
    "100002",
    "200001",
    "131016",
    "131024",
    "131032",
    "130013",
    "20200401",
    "20260401",
    "20260501",
    "20260431",
    "R080401",
    "S300820",
    "H010108",
    "202604",
    "202613",
    "123456789018",
    "123456789010",
    "山田 太郎",
    "ヤマダ タロウ",
    "千代田",
    "x",
    "2001/20260510/131016/1001",
    "-1",
    "99999999",
];

/// A data record of `fields` fields (sometimes one more or less), each a plausible value or a
/// fuzzed one.
fn record(u: &mut Unstructured<'_>, fields: usize) -> arbitrary::Result<String> {
    let n = match u.int_in_range(0..=9u8)? {
        0 => fields - 1,
        1 => fields + 1,
        _ => fields,
    };
    let mut out = vec!["2".to_string()];
    for _ in 1..n {
        out.push(if u.ratio(1, 12)? {
            String::from_utf8_lossy(&csv_like(u)?).replace(['\n', '\r', '"', ','], "")
        } else {
            u.choose(VALUES)?.to_string()
        });
    }
    Ok(out.join(","))
}

/// A file with a valid header and trailer around fuzzed records of its kind (or a fuzzed body),
/// so that the file, record and cross-record rules run.
fn framed(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    use kokuho_intake_domain::record::{KG_FIELDS, KK_FIELDS, KS_FIELDS, KT_FIELDS};
    let (kind, fields) = *u.choose(&[
        ("KS", KS_FIELDS.len()),
        ("KK", KK_FIELDS.len()),
        ("KG", KG_FIELDS.len()),
        ("KT", KT_FIELDS.len()),
    ])?;
    let body = if u.ratio(1, 8)? {
        String::from_utf8_lossy(&csv_like(u)?).into_owned()
    } else {
        let n = u.int_in_range(1..=12usize)?;
        (0..n).map(|_| record(u, fields)).collect::<arbitrary::Result<Vec<_>>>()?.join("\n")
    };
    let lines = body.lines().count();
    let muni = *u.choose(&["131016", "131016", "131024", "999999"])?;
    let mut out = format!("1,{kind},{muni},130013,20260401,{}\n", u.int_in_range(1..=3u32)?);
    out.push_str(&body);
    out.push_str(&format!("\n9,{lines}\n"));
    Ok(out.into_bytes())
}

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(kokuho_system::default_registry)
}

/// The file parser on raw bytes and on CSV-like text: never a panic; what parses is within the
/// caps and accounts for its trailer.
fn files(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let bytes = match u.int_in_range(0..=2u8)? {
        0 => u.bytes(u.len())?.to_vec(),
        1 => csv_like(u)?,
        _ => framed(u)?,
    };
    if let Ok(parsed) = file::parse(&bytes) {
        PARSED.fetch_add(1, Relaxed);
        RECORDS.fetch_add(parsed.records.len() as u64, Relaxed);
        assert!(parsed.records.iter().all(|r| r.fields.len() <= MAX_FIELDS && r.fields.len() <= r.count as usize));
        assert!(parsed.header.sequence >= 1);
    }
    Ok(())
}

/// A whole submission decided (file rules, record rules, sequences), from fuzzed files.
fn submissions(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let n = u.int_in_range(1..=3usize)?;
    let mut inputs = Vec::new();
    let mut data_records = 0;
    for i in 0..n {
        let parsed = file::parse(&framed(u)?);
        if let Ok(p) = &parsed {
            data_records += p.records.len();
        }
        inputs.push(FileInput { name: format!("f{i}.csv"), parsed });
    }
    let facts = Facts::default();
    let input = Input { caller: LocalGovCode::parse("131016").unwrap(), registry: registry(), facts: &facts };
    let _ = submission::lookups(&inputs);
    if let Outcome::Accepted(a) = submission::decide(input, &inputs) {
        ACCEPTED.fetch_add(a.accepted as u64, Relaxed);
        assert!(a.accepted as usize + a.rejected as usize <= data_records, "more records decided than sent");
    }
    Ok(())
}

/// Well-formed events of the streams, encoded: the fuzzer mutates them to reach past the first
/// byte of the decoders.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        use kokuho_bus::event::{encode, envelope};
        use kokuho_proto::intake::v1 as ipb;
        let records = ipb::RecordsAccepted {
            receipt: "131016-00000001".into(),
            municipality: "131016".into(),
            chunk: 1,
            records: vec![ipb::ChangeRecord {
                kind: "KK".into(),
                line: 2,
                record: Some(ipb::change_record::Record::Person(ipb::PersonRecord {
                    processing: "1".into(),
                    resident_number: "100001".into(),
                    birth_date: 19550820,
                    start_date: 20200401,
                    ..Default::default()
                })),
            }],
            business_date: 20260401,
            ..Default::default()
        };
        let day = ipb::DayClosed { date: 20260501, previous: 20260401 };
        let audit = kokuho_proto::audit::v1::AccessRecorded { who: "131016".into(), ..Default::default() };
        vec![
            encode(&envelope::<kokuho_intake_contract::Events>(
                kokuho_intake_contract::Event::RecordsAccepted(records),
                "131016",
                "",
                "",
            ))
            .to_vec(),
            encode(&envelope::<kokuho_intake_contract::Events>(
                kokuho_intake_contract::Event::DayClosed(day),
                "",
                "",
                "",
            ))
            .to_vec(),
            encode(&envelope::<kokuho_runtime::audit::Audit>(
                kokuho_proto::audit::v1::audit_event::Event::AccessRecorded(audit),
                "",
                "",
                "",
            ))
            .to_vec(),
        ]
    })
}

/// Every event a consumer decodes: the envelope and each stream's message, from raw bytes, from
/// mutated well-formed events, and from a well-formed envelope around a fuzzed payload.
fn events(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    use kokuho_bus::event::decode;
    let mut mutated = u.choose(corpus())?.clone();
    for _ in 0..u.int_in_range(0..=4u8)? {
        let at = u.choose_index(mutated.len())?;
        mutated[at] = u.arbitrary()?;
    }
    if decode::<kokuho_intake_contract::Events>(&mutated).is_ok()
        || decode::<kokuho_runtime::audit::Audit>(&mutated).is_ok()
    {
        DECODED.fetch_add(1, Relaxed);
    }
    let _ = decode::<kokuho_identity_contract::Events>(&mutated);
    let bytes = u.bytes(u.len())?;
    let _ = kokuho_proto::events::v1::Envelope::decode(bytes);
    let _ = decode::<kokuho_intake_contract::Events>(bytes);
    let _ = decode::<kokuho_identity_contract::Events>(bytes);
    let _ = decode::<kokuho_continuity_contract::Events>(bytes);
    let _ = decode::<kokuho_kogaku_contract::Events>(bytes);
    let _ = decode::<kokuho_relay_contract::Events>(bytes);
    let _ = decode::<kokuho_outbox::Results>(bytes);
    let _ = decode::<kokuho_runtime::audit::Audit>(bytes);
    let event_type = *u.choose(&[
        "intake.RecordsAccepted",
        "identity.ChunkLinked",
        "continuity.PersonsEvaluated",
        "kogaku.CandidatesEvaluated",
        "relay.RecordsPlanned",
        "audit.AccessRecorded",
    ])?;
    let envelope = kokuho_proto::events::v1::Envelope {
        event_id: "x".into(),
        event_type: event_type.into(),
        event_version: 1,
        payload: u.bytes(u.len())?.to_vec(),
        ..Default::default()
    };
    let encoded = envelope.encode_to_vec();
    // A payload may decode only as the stream its type names.
    let intake = decode::<kokuho_intake_contract::Events>(&encoded).is_ok();
    let identity = decode::<kokuho_identity_contract::Events>(&encoded).is_ok();
    assert!(!(intake && identity), "one envelope decoded as two streams' events");
    let _ = decode::<kokuho_continuity_contract::Events>(&encoded);
    let _ = decode::<kokuho_kogaku_contract::Events>(&encoded);
    let _ = decode::<kokuho_relay_contract::Events>(&encoded);
    let _ = decode::<kokuho_runtime::audit::Audit>(&encoded);
    Ok(())
}

/// The gRPC requests the services answer, as their decoders see them (every request message of
/// every service), and the identifiers and dates a request names.
fn requests(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    use kokuho_proto::{continuity, identity, intake, kogaku, midserver, relay, results};
    let bytes = u.bytes(u.len())?;
    let _ = intake::v1::SubmitRequest::decode(bytes);
    let _ = intake::v1::GetStatusRequest::decode(bytes);
    let _ = intake::v1::CloseDayRequest::decode(bytes);
    let _ = results::v1::FetchFilesRequest::decode(bytes);
    let _ = results::v1::AcknowledgeFilesRequest::decode(bytes);
    let _ = identity::v1::LookupIdsRequest::decode(bytes);
    let _ = identity::v1::ReleaseNumbersRequest::decode(bytes);
    let _ = identity::v1::ResolveReviewRequest::decode(bytes);
    let _ = identity::v1::VerifyAuditRequest::decode(bytes);
    let _ = continuity::v1::QueryPersonRequest::decode(bytes);
    let _ = kogaku::v1::DecideRequest::decode(bytes);
    let _ = kogaku::v1::ListCandidatesRequest::decode(bytes);
    let _ = kogaku::v1::CountMonthsRequest::decode(bytes);
    let _ = relay::v1::ProvideRequest::decode(bytes);
    let _ = relay::v1::StatusRequest::decode(bytes);
    let _ = midserver::v1::ApplyBatchRequest::decode(bytes);
    let _ = midserver::v1::EligibilityRequest::decode(bytes);
    let text: String = u.arbitrary()?;
    let _ = Date::parse(&text);
    let _ = kokuho_ids::Month::parse(&text);
    let _ = LocalGovCode::parse(&text);
    let _ = kokuho_ids::IndividualNumber::parse(&text);
    let _ = kokuho_ids::PrefInsuredId::parse(&text);
    let _ = kokuho_ids::MuniInsuredId::parse(&text);
    Ok(())
}

/// Callers' tokens: any header value is refused or names a caller, never a panic.
fn tokens(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    static CREDENTIALS: std::sync::OnceLock<(tempfile::TempDir, kokuho_runtime::credentials::Credentials)> =
        std::sync::OnceLock::new();
    let (_, credentials) = CREDENTIALS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        kokuho_runtime::credentials::Credentials::ensure(dir.path(), ["131016".to_string()]).unwrap();
        let c = kokuho_runtime::credentials::Credentials::load(dir.path()).unwrap();
        (dir, c)
    });
    let header: String = u.arbitrary()?;
    assert!(credentials.caller(Some(&format!("Bearer {header}"))).is_none() || header.matches('.').count() == 2);
    Ok(())
}

const TARGETS: &[(&str, Target)] =
    &[("files", files), ("submissions", submissions), ("events", events), ("requests", requests), ("tokens", tokens)];

/// A run's seed: arbtest takes the input size from the low 32 bits and its random state from
/// the high ones.
fn seed(i: u64) -> u64 {
    // splitmix64 of the run number: reproducible, well spread.
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let size = [16u64, 64, 256, 1024, 4096][(i % 5) as usize];
    (((z ^ (z >> 31)) & 0xFFFF_FFFF) << 32) | size
}

fn main() {
    let execs: u64 = std::env::var("KOKUHO_FUZZ_EXECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    if let Some(seed) = std::env::var("KOKUHO_FUZZ_SEED").ok().and_then(|v| v.parse::<u64>().ok()) {
        for (name, target) in TARGETS {
            println!("replaying seed {seed} on {name}");
            arbtest::arbtest(*target).seed(seed).run();
        }
        return;
    }
    // The tokens target signs nothing and checks a signature per run: fewer of them.
    let per_target = execs / TARGETS.len() as u64;
    let started = Instant::now();
    let mut total = 0u64;
    println!("kokuho fuzz: {execs} executions over {} targets", TARGETS.len());
    for (t, (name, target)) in TARGETS.iter().enumerate() {
        let t0 = Instant::now();
        for i in 0..per_target {
            let s = seed(i.wrapping_mul(TARGETS.len() as u64) + t as u64);
            // A panic inside is reported by arbtest with this seed, and ends the run: a crash.
            arbtest::arbtest(*target).seed(s).run();
        }
        total += per_target;
        println!("| {name} | {per_target} executions | {:.1} s | 0 crashes |", t0.elapsed().as_secs_f64());
    }
    println!(
        "reached: {} files parsed ({} records), {} records accepted in decided submissions, {} fuzzed payloads decoded as events",
        PARSED.load(Relaxed),
        RECORDS.load(Relaxed),
        ACCEPTED.load(Relaxed),
        DECODED.load(Relaxed)
    );
    println!("fuzz: {total} executions in {:.1} s, 0 crashes", started.elapsed().as_secs_f64());
}
