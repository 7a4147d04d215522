//! Fuzzing the gRPC handlers of a running system (security.md S9; `just fuzz`, a short run in
//! `just fuzz-smoke`): every request of every service, built from fuzzed bytes (each field from
//! plausible values — real codes, receipts, dates, IDs — or anything at all; the decoders of
//! raw bytes are fuzzed by `services/kokuho/benches/fuzz.rs`), sent
//! over the real mutual-TLS channel with a valid credential of a random role, to a system with
//! data in it. A handler may refuse anything; it may not crash its service, hang, or stop the
//! system from answering. A failure prints the seed that replays it (`KOKUHO_FUZZ_SEED`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // A benchmark prints; its failures are its findings.

use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use kokuho_e2e::app::{CHIYODA, spawn_system};
use kokuho_proto::continuity::v1::{self as cpb, continuity_service_client::ContinuityServiceClient};
use kokuho_proto::identity::v1::{self as ipb, identity_service_client::IdentityServiceClient};
use kokuho_proto::intake::v1::{self as pb, intake_service_client::IntakeServiceClient};
use kokuho_proto::kogaku::v1::{self as kpb, kogaku_service_client::KogakuServiceClient};
use kokuho_proto::midserver::v1::{self as mpb, mid_server_service_client::MidServerServiceClient};
use kokuho_proto::relay::v1::{self as rpb, relay_service_client::RelayServiceClient};
use kokuho_proto::results::v1::{self as spb, result_service_client::ResultServiceClient};
use kokuho_runtime::credentials::{AUTHORIZATION, Caller, Credentials};
use tonic::transport::Channel;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The longest a refused or answered request may take before it counts as a hang.
const PATIENCE: Duration = Duration::from_secs(20);

const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";
const KK: &str = "1,KK,131016,130013,20260401,1\n2,1,100001,1001,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,1,01,20200401,03,,,,,20200401\n9,1\n";

/// The methods fuzzed: every one a caller may send, except the simulator's fault switch (it
/// is the test's, not a caller's) and the idle wait (it waits by design).
const METHODS: &[&str] = &[
    "intake.Submit",
    "intake.GetStatus",
    "intake.CloseDay",
    "results.FetchFiles",
    "results.AcknowledgeFiles",
    "results.ListFiles",
    "results.GetFile",
    "identity.LookupIds",
    "identity.ListReviews",
    "identity.ResolveReview",
    "identity.ReleaseNumber",
    "identity.ReleaseNumbers",
    "identity.VerifyAudit",
    "identity.AuditHeads",
    "continuity.QueryPerson",
    "continuity.ListAnomalies",
    "kogaku.CountMonths",
    "kogaku.Decide",
    "kogaku.ListCandidates",
    "kogaku.Explain",
    "relay.Status",
    "relay.Provide",
    "relay.ProvisionLog",
    "midserver.Apply",
    "midserver.ApplyBatch",
    "midserver.Eligibility",
    "midserver.ListPartition",
];

/// splitmix64: the bytes of run `i`, reproducible from its seed.
fn bytes_of(seed: u64, len: usize) -> Vec<u8> {
    let mut z = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(x ^ (x >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn request<M>(message: M, token: &str) -> tonic::Request<M> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut().insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    r
}

/// A text a caller might send: a real code, a receipt, a date, an ID, or anything at all.
fn text(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    const PLAUSIBLE: &[&str] = &[
        "131016",
        "131024",
        "999999",
        "",
        "100001",
        "1001",
        "20260401",
        "19000101",
        "13000000000001",
        "131016-00000001",
        "131016-00000001:2",
        "link",
        "continue",
        "discontinue",
        "operator",
        "kokuho.audit.intake",
        "06131016",
        "0613101600001",
        "S300820",
        "123456789018",
        "山田 太郎",
        "ヤマダ タロウ",
        "\u{0}",
        "../../etc/passwd",
    ];
    Ok(match u.int_in_range(0..=3)? {
        0 => u.arbitrary()?,
        _ => (*u.choose(PLAUSIBLE)?).to_string(),
    })
}

fn number(u: &mut Unstructured<'_>) -> arbitrary::Result<u32> {
    Ok(match u.int_in_range(0..=2)? {
        0 => u.arbitrary()?,
        1 => *u.choose(&[0, 1, 202604, 20260401, 20260331, 99991231, u32::MAX])?,
        _ => u.int_in_range(0..=100)?,
    })
}

fn list<T>(
    u: &mut Unstructured<'_>,
    f: impl Fn(&mut Unstructured<'_>) -> arbitrary::Result<T>,
) -> arbitrary::Result<Vec<T>> {
    let n = u.int_in_range(0..=4)?;
    (0..n).map(|_| f(u)).collect()
}

fn subscriber(u: &mut Unstructured<'_>) -> arbitrary::Result<mpb::Subscriber> {
    Ok(mpb::Subscriber {
        insurer: text(u)?,
        symbol: text(u)?,
        number: text(u)?,
        branch: number(u)?,
        individual_number: text(u)?,
        name: text(u)?,
        kana: text(u)?,
        birth_date: number(u)?,
        sex: text(u)?,
        acquired_on: number(u)?,
        lost_on: number(u)?,
        pref_acquired_on: number(u)?,
        pref_lost_on: number(u)?,
    })
}

fn apply(u: &mut Unstructured<'_>) -> arbitrary::Result<mpb::ApplyRequest> {
    Ok(mpb::ApplyRequest {
        partition: text(u)?,
        idempotency_key: text(u)?,
        processing: text(u)?,
        subscriber: if u.arbitrary()? { Some(subscriber(u)?) } else { None },
    })
}

/// Sends one fuzzed request of `method`, built from `u` (every field of its message, from
/// plausible values and anything at all), and waits for the answer, whatever it is.
async fn send(
    channel: &Channel,
    method: &str,
    u: &mut Unstructured<'_>,
    token: &str,
) -> arbitrary::Result<tonic::Code> {
    macro_rules! call {
        ($client:ident, $rpc:ident, $message:expr) => {{
            let message = $message;
            match $client::new(channel.clone()).$rpc(request(message, token)).await {
                Ok(_) => tonic::Code::Ok,
                Err(status) => status.code(),
            }
        }};
    }
    Ok(match method {
        "intake.Submit" => {
            let mut parts = vec![pb::SubmitRequest {
                part: Some(pb::submit_request::Part::Header(pb::SubmitHeader {
                    municipality: text(u)?,
                    file_names: list(u, text)?,
                })),
            }];
            for _ in 0..u.int_in_range(0..=3)? {
                let data = match u.int_in_range(0..=2)? {
                    0 => KS.as_bytes().to_vec(),
                    1 => KK.as_bytes().to_vec(),
                    _ => u.arbitrary()?,
                };
                let chunk = pb::FileChunk { file_index: u.int_in_range(0..=3)?, data };
                parts.push(pb::SubmitRequest { part: Some(pb::submit_request::Part::Chunk(chunk)) });
            }
            call!(IntakeServiceClient, submit, futures::stream::iter(parts))
        }
        "intake.GetStatus" => call!(IntakeServiceClient, get_status, pb::GetStatusRequest { receipt: text(u)? }),
        "intake.CloseDay" => call!(IntakeServiceClient, close_day, pb::CloseDayRequest { date: number(u)? }),
        "results.FetchFiles" => {
            call!(ResultServiceClient, fetch_files, spb::FetchFilesRequest { municipality: text(u)? })
        }
        "results.AcknowledgeFiles" => call!(
            ResultServiceClient,
            acknowledge_files,
            spb::AcknowledgeFilesRequest { municipality: text(u)?, names: list(u, text)? }
        ),
        "results.ListFiles" => call!(
            ResultServiceClient,
            list_files,
            spb::ListFilesRequest { municipality: text(u)?, before: number(u)?, limit: number(u)? }
        ),
        "results.GetFile" => {
            call!(ResultServiceClient, get_file, spb::GetFileRequest { municipality: text(u)?, name: text(u)? })
        }
        "identity.LookupIds" => call!(
            IdentityServiceClient,
            lookup_ids,
            ipb::LookupIdsRequest { municipality: text(u)?, resident_number: text(u)? }
        ),
        "identity.ListReviews" => call!(IdentityServiceClient, list_reviews, ipb::ListReviewsRequest {}),
        "identity.ResolveReview" => call!(
            IdentityServiceClient,
            resolve_review,
            ipb::ResolveReviewRequest {
                case_id: text(u)?,
                action: u.int_in_range(0..=4)?,
                reason: text(u)?,
                operator: text(u)?,
            }
        ),
        "identity.ReleaseNumber" => call!(
            IdentityServiceClient,
            release_number,
            ipb::ReleaseNumberRequest { pref_id: text(u)?, purpose: text(u)? }
        ),
        "identity.ReleaseNumbers" => {
            let releases = list(u, |u| Ok(ipb::ReleaseNumberRequest { pref_id: text(u)?, purpose: text(u)? }))?;
            call!(IdentityServiceClient, release_numbers, ipb::ReleaseNumbersRequest { releases })
        }
        "identity.VerifyAudit" => {
            let anchors = list(u, |u| {
                Ok(ipb::AuditAnchor {
                    subject: text(u)?,
                    position: u.arbitrary()?,
                    seq: u.arbitrary()?,
                    hash: text(u)?,
                })
            })?;
            call!(IdentityServiceClient, verify_audit, ipb::VerifyAuditRequest { anchors })
        }
        "identity.AuditHeads" => call!(IdentityServiceClient, audit_heads, ipb::AuditHeadsRequest {}),
        "continuity.QueryPerson" => call!(
            ContinuityServiceClient,
            query_person,
            cpb::QueryPersonRequest { municipality: text(u)?, resident_number: text(u)? }
        ),
        "continuity.ListAnomalies" => call!(
            ContinuityServiceClient,
            list_anomalies,
            cpb::ListAnomaliesRequest { municipality: text(u)?, limit: number(u)?, after: text(u)? }
        ),
        "kogaku.CountMonths" => call!(
            KogakuServiceClient,
            count_months,
            kpb::CountMonthsRequest { municipality: text(u)?, household_number: text(u)?, month: number(u)? }
        ),
        "kogaku.Decide" => call!(
            KogakuServiceClient,
            decide,
            kpb::DecideRequest {
                municipality: text(u)?,
                candidate: text(u)?,
                decision: text(u)?,
                operator: text(u)?,
                reason: text(u)?,
            }
        ),
        "kogaku.ListCandidates" => call!(
            KogakuServiceClient,
            list_candidates,
            kpb::ListCandidatesRequest { municipality: text(u)?, changed_only: u.arbitrary()? }
        ),
        "kogaku.Explain" => {
            call!(KogakuServiceClient, explain, kpb::ExplainRequest { municipality: text(u)?, candidate: text(u)? })
        }
        "relay.Status" => call!(
            RelayServiceClient,
            status,
            rpb::StatusRequest { municipality: text(u)?, waiting_records: u.arbitrary()?, waiting_after: text(u)? }
        ),
        "relay.Provide" => call!(
            RelayServiceClient,
            provide,
            rpb::ProvideRequest {
                requester: text(u)?,
                target: text(u)?,
                item: number(u)?,
                file: text(u)?,
                person: text(u)?,
            }
        ),
        "relay.ProvisionLog" => call!(RelayServiceClient, provision_log, rpb::ProvisionLogRequest {}),
        "midserver.Apply" => call!(MidServerServiceClient, apply, apply(u)?),
        "midserver.ApplyBatch" => {
            call!(MidServerServiceClient, apply_batch, mpb::ApplyBatchRequest { requests: list(u, apply)? })
        }
        "midserver.Eligibility" => call!(
            MidServerServiceClient,
            eligibility,
            mpb::EligibilityRequest {
                insurer: text(u)?,
                symbol: text(u)?,
                number: text(u)?,
                branch: number(u)?,
                date: number(u)?,
            }
        ),
        "midserver.ListPartition" => {
            call!(MidServerServiceClient, list_partition, mpb::ListPartitionRequest { partition: text(u)? })
        }
        other => unreachable!("method {other}"),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let execs: u64 = std::env::var("KOKUHO_FUZZ_SERVER_EXECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let only: Option<u64> = std::env::var("KOKUHO_FUZZ_SEED").ok().and_then(|v| v.parse().ok());
    let mut sys = spawn_system(20260401).await;
    let files = vec![("KS.csv".to_string(), KS.as_bytes().to_vec()), ("KK.csv".to_string(), KK.as_bytes().to_vec())];
    let receipt = sys.client.submit(CHIYODA, files).await.unwrap().receipt;
    sys.settle().await;
    let dir = kokuho_system::credentials_dir(&sys.data_dir());
    let tokens: Vec<String> = [
        Caller::Municipality(CHIYODA.into()),
        Caller::Municipality("131024".into()),
        Caller::operator(),
        Caller::Relay,
    ]
    .iter()
    .map(|c| Credentials::token_of(&dir, c).unwrap())
    .collect();
    let channel = kokuho_runtime::tls::endpoint(sys.system().endpoint(), sys.system().client_tls())
        .unwrap()
        .connect()
        .await
        .unwrap();

    let started = Instant::now();
    let mut sent = 0u64;
    let mut codes = std::collections::BTreeMap::new();
    let runs: Box<dyn Iterator<Item = u64>> = match only {
        Some(seed) => Box::new(std::iter::once(seed)),
        None => Box::new(0..execs),
    };
    println!("kokuho fuzz (running system): {execs} requests over {} methods", METHODS.len());
    for seed in runs {
        let raw = bytes_of(seed, [16usize, 64, 256, 1024][(seed % 4) as usize]);
        let mut u = Unstructured::new(&raw);
        let method = METHODS[u.choose_index(METHODS.len()).unwrap_or(0)];
        let token = &tokens[u.choose_index(tokens.len()).unwrap_or(0)];
        let answered = tokio::time::timeout(PATIENCE, send(&channel, method, &mut u, token)).await;
        let Ok(answer) = answered else {
            panic!("{method} did not answer within {PATIENCE:?}: replay with KOKUHO_FUZZ_SEED={seed}");
        };
        if let Ok(code) = answer {
            *codes.entry(format!("{code:?}")).or_insert(0u64) += 1;
        }
        sent += 1;
        // A task that failed for good stops the system (S9): a crash.
        if let Ok(why) = tokio::time::timeout(Duration::ZERO, sys.system().failed()).await {
            panic!("a service failed after {method}: {why}; replay with KOKUHO_FUZZ_SEED={seed}");
        }
    }
    // Still answering, with the data it had.
    let status = sys.client.status(&receipt).await.expect("the system still answers");
    assert_eq!(status.receipt, receipt);
    sys.settle().await;
    println!(
        "fuzz (running system): {sent} requests answered in {:.1} s, 0 crashes, 0 hangs; answers: {codes:?}",
        started.elapsed().as_secs_f64()
    );
    sys.stop().await;
}
