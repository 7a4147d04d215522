//! The sample scenario (the hand-checked public fixture) through the running system: what each
//! municipality gets back from intake, identity, continuity, kogaku and relay equals expected.json.
#![allow(clippy::unwrap_used)] // Tests may panic on what cannot happen.

use kokuho_client::scenario::{self, Scenario};
use kokuho_e2e::app::spawn_system;
use kokuho_e2e::{continuity_view, expected, identity_view, intake_view, kogaku_view, relay_view, sample_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_scenario_gives_the_expected_results() {
    let scenario = Scenario::load(&sample_dir()).unwrap();
    let mut sys = spawn_system(scenario.first_business_date().unwrap()).await;
    let reports = scenario::play(&mut sys.client, &scenario, |_| {}).await.unwrap();
    let (intake, identity, continuity) = (intake_view(&reports), identity_view(&reports), continuity_view(&reports));
    let (kogaku, relay) = (kogaku_view(&reports), relay_view(&reports));
    let expected = expected();
    for (muni, sections) in expected["municipalities"].as_object().unwrap() {
        assert_eq!(intake[muni], sections["intake"], "intake results of {muni}");
        assert_eq!(identity[muni], sections["identity"], "identity results of {muni}");
        assert_eq!(continuity[muni], sections["continuity"], "continuity results of {muni}");
        // continuity's list of the municipality's open anomalies says the same as its RE rows.
        let listed = sys.client.list_anomalies(muni, "", 0).await.unwrap();
        let day = |d: u32| if d == 0 { String::new() } else { d.to_string() };
        let mut listed: Vec<String> = listed
            .anomalies
            .into_iter()
            .map(|a| {
                let v = a.anomaly.unwrap();
                format!(
                    "{}/{}/{}/{}/{}",
                    v.code,
                    a.resident_number,
                    v.counterpart,
                    day(v.counterpart_start),
                    day(v.counterpart_end)
                )
            })
            .collect();
        listed.sort();
        assert_eq!(serde_json::json!(listed), sections["continuity"]["open"], "open anomalies listed for {muni}");
        let empty = serde_json::json!({ "RK": {}, "RG": {}, "open": [] });
        let got = if kogaku[muni].is_null() { &empty } else { &kogaku[muni] };
        assert_eq!(*got, sections["kogaku"], "kogaku results of {muni}");
        let empty = serde_json::json!({ "RM": {}, "open": [] });
        let got = if relay[muni].is_null() { &empty } else { &relay[muni] };
        assert_eq!(*got, sections["relay"], "relay results of {muni}");
    }
    sys.stop().await;
}
