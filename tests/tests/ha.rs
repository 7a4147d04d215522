//! High availability (issue 13): two instances of the system on one log. Both keep their
//! projections; only the holder of each service's lease runs its workflows, so the standby does
//! nothing but follow. When the first dies (its leases are not given up, they lapse), the standby
//! takes over and carries on: what was submitted to either comes out once.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use std::time::Duration;

use kokuho_e2e::app::{CHIYODA, CHUO, spawn_system};
use kokuho_system::{System, SystemConfig};

const KS: &str = "1,KS,131016,130013,20260401,1\n2,1,1001,20200401,01,100001,0,千代田,1001,09,\n9,1\n";
const KK: &str = "1,KK,131016,130013,20260401,1\n2,1,100001,1001,1,123456789018,山田 太郎,ヤマダ タロウ,S300820,1,01,20200401,03,,,,,20200401\n9,1\n";
const KS2: &str = "1,KS,131024,130021,20260401,1\n2,1,3001,20200401,01,300001,0,中央,3001,09,\n9,1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_follows_acts_only_when_the_first_dies_and_nothing_comes_twice() {
    let mut first = spawn_system(20260401).await;
    // The second instance: its own data dir and stores, the same log, keys and credentials (as
    // a second replica mounts the same Secrets).
    let keys = first.data_dir().join("keys");
    let mut config = SystemConfig {
        nats_url: Some(first.nats.url()),
        credentials_dir: Some(kokuho_system::credentials_dir(&first.data_dir())),
        ..SystemConfig::embedded(
            first.nats.dir().join("standby"),
            std::sync::Arc::new(kokuho_system::default_registry()),
        )
    };
    for (key, value) in [
        ("identity_keys", keys.clone()),
        ("identity_public_key", keys.join("identity.pub")),
        (kokuho_system::AUDIT_SIGNING_KEYS, keys.join("audit")),
        (kokuho_system::AUDIT_PUBLIC_KEYS, keys.join("audit")),
        (kokuho_system::NATS_CREDENTIALS, first.nats.users().unwrap().to_path_buf()),
    ] {
        config.settings.set(key, value.display().to_string());
    }
    let standby = System::start(config).await.unwrap();
    let mut to_standby = kokuho_client::Client::connect_trusting(standby.endpoint(), standby.client_tls())
        .await
        .unwrap()
        .with_dev_credentials(kokuho_system::credentials_dir(&first.data_dir()));

    // The first acts; the standby follows with its projections and acts on nothing.
    let files = vec![("KS.csv".to_string(), KS.as_bytes().to_vec()), ("KK.csv".to_string(), KK.as_bytes().to_vec())];
    first.client.submit(CHIYODA, files).await.unwrap();
    first.settle().await;
    assert!(first.system().acts("identity") && !standby.acts("identity"));
    assert!(first.system().applied("identity-link-records") >= 1);
    kokuho_testkit::eventually("the standby follows", Duration::from_secs(30), || async {
        (standby.applied("identity-state") >= 1 && standby.applied("continuity-state") >= 1).then_some(())
    })
    .await;
    for workflow in ["identity-link-records", "continuity-evaluate", "intake-forward-rows", "relay-from-identity"] {
        assert_eq!(standby.applied(workflow), 0, "the standby ran {workflow}");
    }

    // The first dies without a word; its leases lapse and the standby takes over.
    first.crash_services().await;
    let number = kokuho_testkit::individual_number(23_456_789_012);
    let kk2 = format!(
        "1,KK,131024,130021,20260401,1\n2,1,300001,3001,1,{number},鈴木 一郎,スズキ イチロウ,S400101,1,01,20200401,03,,,,,20200401\n9,1\n"
    );
    let files = vec![("KS.csv".to_string(), KS2.as_bytes().to_vec()), ("KK.csv".to_string(), kk2.into_bytes())];
    to_standby.submit(CHUO, files).await.unwrap();
    kokuho_testkit::eventually("the standby acts", Duration::from_secs(60), || async {
        standby.acts("identity").then_some(())
    })
    .await;
    kokuho_testkit::eventually("the standby settles", Duration::from_secs(60), || {
        let mut c = to_standby.clone();
        async move { c.wait_idle(Duration::from_secs(5)).await.ok().filter(|r| r.idle) }
    })
    .await;
    assert!(standby.applied("identity-link-records") >= 1, "the standby linked the second submission");

    // Each municipality's rows once: one RI per person, one RS per period.
    for (muni, resident) in [(CHIYODA, "100001"), (CHUO, "300001")] {
        let files = to_standby.fetch_files(muni).await.unwrap();
        for kind in ["RI", "RS"] {
            let rows: Vec<String> = files
                .iter()
                .filter(|f| f.kind == kind)
                .flat_map(|f| String::from_utf8_lossy(&f.content).lines().map(str::to_string).collect::<Vec<_>>())
                .filter(|l| l.starts_with("2,") && l.contains(resident))
                .collect();
            assert_eq!(rows.len(), 1, "{muni} {kind}: {rows:?}");
        }
    }
    standby.stop().await.unwrap();
}
