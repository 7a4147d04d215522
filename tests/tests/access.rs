//! security.md S5 at intake: every request carries a credential; a municipality submits,
//! asks for the status of and fetches only its own; only an operator closes the day.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::{Client, ClientError, Code};
use kokuho_runtime::credentials::{Caller, Credentials};
use kokuho_testkit::app::{CHIYODA, MINATO, TestSystem, spawn_system};

fn acting_as(sys: &TestSystem, caller: Caller) -> Client {
    let token = Credentials::token_of(&kokuho_system::credentials_dir(&sys.data_dir()), &caller).unwrap();
    sys.client.with_token(token)
}

fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>, code: Code) -> bool {
    matches!(&r, Err(ClientError::Status(s)) if s.code() == code)
}

const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_a_municipality_acts_only_for_itself_and_only_an_operator_closes_the_day() {
    let mut sys = spawn_system(20260401).await;
    let files = || vec![("KS.csv".to_string(), KS.as_bytes().to_vec())];
    let mut chiyoda = acting_as(&sys, Caller::Municipality(CHIYODA.into()));
    let mut minato = acting_as(&sys, Caller::Municipality(MINATO.into()));
    let mut operator = acting_as(&sys, Caller::Operator);
    let mut anonymous = sys.anonymous().await;

    // Submit: only for oneself, and never without a credential.
    assert!(refused(minato.submit(CHIYODA, files()).await, Code::PermissionDenied));
    assert!(refused(operator.submit(CHIYODA, files()).await, Code::PermissionDenied));
    assert!(refused(anonymous.submit(CHIYODA, files()).await, Code::Unauthenticated));
    let receipt = chiyoda.submit(CHIYODA, files()).await.unwrap().receipt;
    sys.settle().await;

    // Status: the submitter's own receipts, and operators.
    assert!(chiyoda.status(&receipt).await.is_ok());
    assert!(operator.status(&receipt).await.is_ok());
    assert!(refused(minato.status(&receipt).await, Code::PermissionDenied));

    // Result files: only one's own.
    assert!(refused(minato.fetch_files(CHIYODA).await, Code::PermissionDenied));
    assert!(refused(operator.fetch_files(CHIYODA).await, Code::PermissionDenied));
    assert!(refused(minato.acknowledge(CHIYODA, vec!["x".into()]).await, Code::PermissionDenied));
    assert!(chiyoda.fetch_files(CHIYODA).await.is_ok());

    // The calendar: operators only.
    assert!(refused(chiyoda.close_day(20260501).await, Code::PermissionDenied));
    assert!(refused(anonymous.close_day(20260501).await, Code::Unauthenticated));
    assert_eq!(operator.close_day(20260501).await.unwrap().business_date, 20260501);
    sys.stop().await;
}
