//! identity through the running system: IDs are facts in the log (a rebuild gives every person
//! the same IDs), and a key rotation keeps old data readable and everyone findable (S3).
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::scenario::{self, Scenario};
use kokuho_e2e::sample_dir;
use kokuho_testkit::app::{CHIYODA, MINATO, TestSystem, spawn_system};

const RESIDENTS: [(&str, &str); 8] = [
    ("131016", "100001"),
    ("131016", "100002"),
    ("131016", "100003"),
    ("131016", "100004"),
    ("131032", "200001"),
    ("131032", "200002"),
    ("131024", "300001"),
    ("131024", "300002"),
];

fn links(sys: &TestSystem) -> Vec<Option<kokuho_identity::LinkView>> {
    let state = sys.system().identity().unwrap().state();
    RESIDENTS.iter().map(|(m, r)| kokuho_identity::link_of(state, m, r).unwrap()).collect()
}

fn read(name: &str) -> (String, Vec<u8>) {
    (name.to_string(), std::fs::read(sample_dir().join(name)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_from_the_log_gives_everyone_the_same_ids() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let before = links(&sys);
    assert!(before.iter().all(Option::is_some), "{before:?}");
    // X is one person in both wards, with a municipal ID in each (I1, I2).
    assert_eq!(before[0].as_ref().unwrap().pref_id, before[4].as_ref().unwrap().pref_id);
    assert_ne!(before[0].as_ref().unwrap().muni_id, before[4].as_ref().unwrap().muni_id);
    let held = kokuho_identity::held_cases(sys.system().identity().unwrap().state()).unwrap();
    assert_eq!(held.len(), 1, "the C01 of 300009 is on the review queue");
    assert_eq!((held[0].code.as_str(), held[0].resident_number.as_str()), ("C01", "300009"));

    sys.stop_services().await;
    std::fs::remove_dir_all(sys.data_dir().join("store").join("identity")).unwrap();
    sys.start_services().await;
    sys.settle().await;
    assert_eq!(links(&sys), before);
    assert_eq!(kokuho_identity::held_cases(sys.system().identity().unwrap().state()).unwrap(), held);
    sys.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_key_rotation_old_persons_are_still_found_by_number() {
    let mut sys = spawn_system(20260401).await;
    let step1 = vec![read("01_131016_KS.csv"), read("01_131016_KK.csv")];
    sys.client.submit(CHIYODA, step1).await.unwrap();
    sys.settle().await;
    let x = links(&sys)[0].clone().unwrap();

    // Rotate: the old private key is kept under another name, a new pair becomes current.
    sys.stop_services().await;
    let keys = sys.data_dir().join("keys");
    std::fs::rename(keys.join("identity.key"), keys.join("identity-2026-04.key")).unwrap();
    std::fs::remove_file(keys.join("identity.pub")).unwrap();
    kokuho_crypto::generate_key_pair(&keys).unwrap();
    sys.start_services().await;

    // 港区 sends X and Y, sealed under the new key: they link to the persons of 千代田区.
    sys.client.submit(MINATO, vec![read("06_131032_KS.csv"), read("06_131032_KK.csv")]).await.unwrap();
    sys.settle().await;
    let after = links(&sys);
    assert_eq!(after[0].as_ref().unwrap().pref_id, x.pref_id, "old data readable after the rotation");
    assert_eq!(after[4].as_ref().unwrap().pref_id, x.pref_id, "found by number through the new index");
    sys.stop().await;
}
