//! A person's history and why (issue 13) through the running system: the fixture's person X
//! (rules.md, worked example of C1) end to end with rule ids, for the municipality's clerk and
//! the operator; another municipality's clerk refused and audited (S5, S8); a provisional
//! person's merge (I5) and a held conflict (I3, I6) in the history and in `why --link`.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::scenario::{self, Scenario};
use kokuho_client::{Code, Fact, HistorySubject};
use kokuho_e2e::app::{CHIYODA, MINATO, TestSystem, spawn_system};
use kokuho_e2e::{input_file as file, sample_dir};
use kokuho_runtime::credentials::{Caller, Credentials};

const MINATO_X: HistorySubject<'static> = HistorySubject::Resident { municipality: MINATO, resident: "200001" };

fn with_rules<'a>(facts: &'a [Fact], kind: &str, rules: &[&str]) -> Vec<&'a Fact> {
    facts.iter().filter(|f| f.kind == kind && rules.iter().all(|r| f.rules.iter().any(|g| g == r))).collect()
}

fn clerk_of(sys: &TestSystem, muni: &str) -> kokuho_client::Client {
    let dir = kokuho_system::credentials_dir(&sys.data_dir());
    sys.client.with_token(Credentials::token_of(&dir, &Caller::Municipality(muni.into())).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_of_the_fixtures_person_x_end_to_end() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    sys.settle().await;

    // 港区's clerk: X's record, link and ID, the periods, the RS row with C1/C2/C9 saying
    // 県内継続 from 20200401 (the worked example), the candidate decided, relay's delivery.
    let h = clerk_of(&sys, MINATO).history(MINATO_X, 0, false).await.unwrap();
    assert_eq!(h.persons.len(), 1, "{:?}", h.persons);
    assert!(h.complete, "history has read the whole log");
    let x = h.persons[0].clone();
    let facts = &h.facts;
    assert_eq!(with_rules(facts, "record", &["KK"]).len(), 1, "the KK record as submitted");
    assert_eq!(with_rules(facts, "link", &["I1", "I2"]).len(), 1);
    assert_eq!(with_rules(facts, "id", &["I2"]).len(), 1);
    let rs = with_rules(facts, "row", &["C1", "C2", "C9"]);
    assert!(
        rs.iter().any(|f| f.text.contains("判定区分 2") && f.text.contains("資格取得 20200401(03)")),
        "RS 県内継続 from 20200401: {rs:?}"
    );
    let periods = with_rules(facts, "periods", &["C1", "C2"]);
    assert!(periods.iter().any(|f| f.text.contains("131016 20200401(03)〜20260509(02→131032)")), "{periods:?}");
    let decided = with_rules(facts, "candidate", &["H1", "H2", "H3"]);
    assert!(!decided.is_empty(), "the candidate and 港区's decision (H3)");
    assert!(!with_rules(facts, "relay-delivery", &["R4"]).is_empty(), "delivered to the intermediate server");
    // In order, each with its event; nothing of another municipality's (S5).
    assert!(facts.windows(2).all(|w| w[0].business_date <= w[1].business_date), "in business-date order");
    assert!(facts.iter().all(|f| !f.event_id.is_empty() && f.sequence > 0 && !f.rules.is_empty()));
    assert!(facts.iter().all(|f| f.municipality.is_empty() || f.municipality == MINATO), "only 港区's facts");
    assert!(facts.iter().all(|f| f.resident_number.is_empty() || f.resident_number == "200001"));
    // Masked: the name is not there.
    assert!(facts.iter().all(|f| !f.text.contains("太郎")), "names are masked");

    // The query itself is audited, and the next history shows it (S8).
    sys.settle().await;
    let again = clerk_of(&sys, MINATO).history(MINATO_X, 0, false).await.unwrap();
    assert!(
        with_rules(&again.facts, "access", &["S8"]).iter().any(|f| f.text.contains("history.History")),
        "the earlier history query is in the history"
    );

    // Another municipality's clerk is refused, and the refusal is audited.
    let refused = clerk_of(&sys, CHIYODA).history(MINATO_X, 0, false).await;
    assert!(matches!(refused, Err(kokuho_client::ClientError::Status(ref s)) if s.code() == Code::PermissionDenied));
    let refused = clerk_of(&sys, CHIYODA).history(HistorySubject::Person(&x), 0, false).await;
    assert!(matches!(refused, Err(kokuho_client::ClientError::Status(ref s)) if s.code() == Code::PermissionDenied));
    let bus = sys.nats.bus().await;
    let audit = kokuho_e2e::all_events::<kokuho_runtime::audit::Audit>(&bus, kokuho_runtime::audit::AUDIT.name).await;
    let refusals = audit
        .iter()
        .filter(|e| {
            matches!(e, kokuho_proto::audit::v1::audit_event::Event::AccessRecorded(a)
                if a.action == "history.History" && a.who == CHIYODA && a.outcome == "refused")
        })
        .count();
    assert_eq!(refusals, 2, "both refusals are in the audit log");

    // The operator, by person: both municipalities, and the number's releases to relay (R6).
    let all = sys.client.history(HistorySubject::Person(&x), 0, false).await.unwrap();
    assert!(all.facts.iter().any(|f| f.municipality == CHIYODA && f.resident_number == "100001"));
    assert!(!with_rules(&all.facts, "release", &["R6", "S8"]).is_empty());
    // As of the first business date: only what was known then (X at 千代田区 alone).
    let then = sys.client.history(HistorySubject::Person(&x), 20260401, false).await.unwrap();
    assert!(!then.facts.is_empty() && then.facts.iter().all(|f| f.business_date <= 20260401));
    assert!(then.facts.iter().all(|f| f.municipality != MINATO), "港区 came later");

    // Why: the RS row (C1, C2) and the link (I1, I2).
    let why = clerk_of(&sys, MINATO).explain_periods(MINATO, "200001", Some(0), None).await.unwrap();
    assert_eq!(why.explanations.len(), 1);
    let e = &why.explanations[0];
    assert!(e.rules.iter().any(|r| r == "C2") && e.rules.iter().any(|r| r == "C1"), "{e:?}");
    assert!(e.lines.iter().any(|l| l.contains("資格取得年月日 20200401 資格取得事由 03")), "{:?}", e.lines);
    assert!(e.lines.iter().any(|l| l.contains("判定区分 2")), "{:?}", e.lines);
    let link = clerk_of(&sys, MINATO).explain_link(MINATO, "200001").await.unwrap();
    assert_eq!(link.person, x);
    assert!(link.rules.iter().any(|r| r == "I2"), "{link:?}");
    let refused = clerk_of(&sys, CHIYODA).explain_periods(MINATO, "200001", Some(0), None).await;
    assert!(matches!(refused, Err(kokuho_client::ClientError::Status(ref s)) if s.code() == Code::PermissionDenied));
    sys.stop().await;
}

/// A KK line of household 2001 at 港区 (or 1001 at 千代田区).
fn person(resident: &str, household: &str, number: &str, birth: &str, period: &str) -> String {
    format!("2,1,{resident},{household},1,{number},山田 太郎,ヤマダ タロウ,{birth},1,01,{period}")
}

const X: &str = "123456789018";

/// I5 and I3/I6 in the history: a provisional person at 港区 merged into 千代田区's person when
/// the number arrives; a record with the same number and another 生年月日 held (C01) and then
/// rejected by the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_and_held_conflicts_are_in_the_history_and_in_why_link() {
    let mut sys = spawn_system(20260401).await;
    let ks_a = file("KS", CHIYODA, "130013", 1, &["2,1,1001,20200401,01,100001,0,千代田,1001,09,".into()]);
    let kk_a = file(
        "KK",
        CHIYODA,
        "130013",
        1,
        &[person("100001", "1001", X, "19550820", "20200401,03,20260509,02,,131032,20260509")],
    );
    sys.client.submit(CHIYODA, vec![ks_a, kk_a]).await.unwrap();
    let ks_b = file("KS", MINATO, "130039", 1, &["2,1,2001,20260510,02,200001,0,港,2001,09,131016".into()]);
    let move_in = |number: &str| person("200001", "2001", number, "19550820", "20260510,02,,,131016,,20260510");
    sys.client.submit(MINATO, vec![ks_b, file("KK", MINATO, "130039", 1, &[move_in("")])]).await.unwrap();
    sys.settle().await;
    sys.client.submit(MINATO, vec![file("KK", MINATO, "130039", 2, &[move_in(X)])]).await.unwrap();
    // The same number at 港区 for another resident, born on another day: C01 (I3).
    let other = person("200002", "2001", X, "19600101", "20260510,01,,,,,20260510");
    sys.client.submit(MINATO, vec![file("KK", MINATO, "130039", 3, &[other])]).await.unwrap();
    sys.settle().await;

    let h = sys.client.history(MINATO_X, 0, false).await.unwrap();
    assert_eq!(h.persons.len(), 2, "the provisional person and the survivor: {:?}", h.persons);
    assert!(!with_rules(&h.facts, "person", &["I5"]).is_empty(), "the provisional person made (I5)");
    assert!(!with_rules(&h.facts, "merged", &["I5"]).is_empty(), "the merge (I5)");
    let link = sys.client.explain_link(MINATO, "200001").await.unwrap();
    let survivor = sys.client.lookup_ids(CHIYODA, "100001").await.unwrap().pref_id;
    assert_eq!(link.person, survivor, "the resident resolves to the survivor");
    assert!(link.lines.iter().any(|l| l.contains("統合")), "{:?}", link.lines);

    let held = sys.client.history(HistorySubject::Resident { municipality: MINATO, resident: "200002" }, 0, false);
    let held = held.await.unwrap();
    assert_eq!(with_rules(&held.facts, "held", &["C01", "I3"]).len(), 1, "{:?}", held.facts);
    assert!(held.facts.iter().any(|f| f.kind == "row" && f.rules.iter().any(|r| r == "C01")), "the C row sent");
    let case = sys.client.list_reviews().await.unwrap().into_iter().next().unwrap().case_id;
    sys.client.resolve_review(&case, kokuho_client::ReviewAction::Reject, "別人", "operator").await.unwrap();
    sys.settle().await;
    let why = sys.client.explain_link(MINATO, "200002").await.unwrap();
    assert!(why.person.is_empty(), "not linked");
    assert!(why.facts.iter().any(|f| f.kind == "resolved" && f.rules.iter().any(|r| r == "I6")), "{:?}", why.facts);
    sys.stop().await;
}
