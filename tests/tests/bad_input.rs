//! Bad input (security.md S9, formats.md): damaged files get a clear answer and change
//! nothing else; no input stops the service; size limits are enforced with a clear error.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::{ClientError, Code, SubmissionStatus};
use kokuho_e2e::app::{CHIYODA, CHUO, spawn_system};
use kokuho_e2e::sample_dir;

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn damage(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    match rng.below(5) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(bytes.len());
                bytes[i] = rng.next() as u8;
            }
        }
        1 => bytes.truncate(rng.below(bytes.len())),
        2 => {
            let i = rng.below(bytes.len());
            bytes.insert(i, b'"');
        }
        3 => {
            let i = rng.below(bytes.len());
            bytes.splice(i..i, b"\n2,1,,,,\n".iter().copied());
        }
        _ => bytes = (0..rng.below(2048)).map(|_| rng.next() as u8).collect(),
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_are_answered_and_change_nothing_else() {
    let mut sys = spawn_system(20260401).await;
    let names = ["01_131016_KS.csv", "01_131016_KK.csv", "01_131016_KG.csv"];
    let originals: Vec<Vec<u8>> = names.iter().map(|n| std::fs::read(sample_dir().join(n)).unwrap()).collect();
    let mut rng = Rng(0x5eed_cafe);
    let mut accepted_any = false;
    for _ in 0..150 {
        let files: Vec<(String, Vec<u8>)> = names
            .iter()
            .zip(&originals)
            .map(|(n, b)| {
                let bytes = if rng.below(3) == 0 { damage(&mut rng, b.clone()) } else { b.clone() };
                (n.to_string(), bytes)
            })
            .collect();
        match sys.client.submit(CHIYODA, files).await {
            Ok(r) => accepted_any |= r.status() != SubmissionStatus::Rejected,
            Err(ClientError::Status(s)) => {
                assert!(matches!(s.code(), Code::InvalidArgument | Code::ResourceExhausted), "{s:?}")
            }
            Err(e) => panic!("the service did not answer: {e}"),
        }
    }
    assert!(accepted_any, "some submissions were accepted");
    // The service still works, and rejected submissions used up no 送信通番.
    let ok = std::fs::read(sample_dir().join("02_131024_KS.csv")).unwrap();
    let r = sys.client.submit(CHUO, vec![("KS".into(), ok)]).await.unwrap();
    assert_eq!(r.status(), SubmissionStatus::Accepted);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_callers() {
    let mut sys = spawn_system(20260401).await;
    // Another municipality's file: F04, and nothing is accepted.
    let theirs = std::fs::read(sample_dir().join("02_131024_KS.csv")).unwrap();
    let r = sys.client.submit(CHIYODA, vec![("KS".into(), theirs.clone())]).await.unwrap();
    assert_eq!((r.status(), r.code.as_str()), (SubmissionStatus::Rejected, "F04"));
    // A line longer than the limit: refused before a receipt.
    let long = format!("1,KS,131024,130021,20260401,1\n2,{}\n9,1\n", "x".repeat(70_000)).into_bytes();
    let err = sys.client.submit(CHUO, vec![("KS".into(), long)]).await.unwrap_err();
    assert!(matches!(&err, ClientError::Status(s) if s.code() == Code::ResourceExhausted), "{err}");
    // Too many files.
    let many = (0..9).map(|i| (format!("f{i}"), theirs.clone())).collect();
    assert!(sys.client.submit(CHUO, many).await.is_err());
    // Not a municipality of the prefecture.
    assert!(sys.client.submit("011002", vec![("KS".into(), theirs.clone())]).await.is_err());
    // None of it used up 中央区's 通番 1.
    let r = sys.client.submit(CHUO, vec![("KS".into(), theirs)]).await.unwrap();
    assert_eq!(r.status(), SubmissionStatus::Accepted);
    sys.stop().await;
}
