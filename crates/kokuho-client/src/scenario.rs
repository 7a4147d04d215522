//! Scenarios: a folder with `scenario.json` and its input files (the shape of the fixture in
//! `scenarios/sample/`), played through the API step by step. `kokuho demo` and the tests use
//! it. Serde is used here because scenario.json is a file format of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::{Client, ClientError, ResultFile, SubmitResponse};

#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    #[serde(skip)]
    pub dir: PathBuf,
    pub business_date: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Step {
    Submit { submit: SubmitStep },
    CloseDay { close_day: String },
    Decide { decide: DecideStep },
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubmitStep {
    pub municipality: String,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DecideStep {
    pub municipality: String,
    pub candidate_ref: BTreeMap<String, String>,
    pub decision: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{path}: {what}")]
    File { path: String, what: String },
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl Scenario {
    pub fn load(dir: &Path) -> Result<Self, ScenarioError> {
        let path = dir.join("scenario.json");
        let err = |what: String| ScenarioError::File { path: path.display().to_string(), what };
        let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let mut s: Scenario = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
        s.dir = dir.to_path_buf();
        Ok(s)
    }

    /// The business date as a number.
    pub fn first_business_date(&self) -> Option<u32> {
        self.business_date.parse().ok()
    }

    /// Every municipality the scenario names, in order of appearance.
    pub fn municipalities(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in &self.steps {
            let m = match s {
                Step::Submit { submit } => &submit.municipality,
                Step::Decide { decide } => &decide.municipality,
                Step::CloseDay { .. } => continue,
            };
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }
}

/// What one step did.
#[derive(Debug, Clone)]
pub enum Outcome {
    Submitted {
        municipality: String,
        files: Vec<String>,
        response: SubmitResponse,
    },
    /// The call was refused (the status says why).
    Refused {
        what: String,
        status: tonic::Status,
    },
    DayClosed {
        date: u32,
    },
    /// A 継続世帯確定指示 (H3), with the candidate as decided.
    Decided {
        municipality: String,
        candidate: crate::CandidateSummary,
        /// Why the candidate says what it says (`kokuho why`), after the decision.
        why: Vec<String>,
    },
    /// A step that could not be played (the candidate it names does not exist).
    Skipped {
        what: String,
    },
}

/// One step and the files each municipality fetched after it.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub index: usize,
    pub outcome: Outcome,
    pub fetched: BTreeMap<String, Vec<ResultFile>>,
}

/// Finds the candidate a decide step names (RK fields 3–6: 転入世帯番号, 転入年月日, 転出元,
/// 転出元世帯番号) among the municipality's candidates, and decides it.
async fn play_decision(client: &mut Client, decide: &DecideStep) -> Result<Outcome, ScenarioError> {
    let field = |k: &str| decide.candidate_ref.get(k).cloned().unwrap_or_default();
    let (household, date, from, from_household) =
        (field("household"), field("date"), field("from_municipality"), field("from_household"));
    let decision = match &decide.decision {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let what = format!("decide {decision} at {} on {household}/{date}/{from}/{from_household}", decide.municipality);
    let candidates = client.list_candidates(Some(&decide.municipality), false).await?;
    let Some(c) = candidates.iter().find(|c| {
        c.household == household
            && c.moved_in_on.to_string() == date
            && c.from_municipality == from
            && c.from_household == from_household
    }) else {
        return Ok(Outcome::Skipped { what: format!("{what}: no such candidate") });
    };
    match client.decide(&decide.municipality, &c.number, &decision).await {
        Ok(candidate) => {
            let why = client.explain_candidate(&decide.municipality, &candidate.number).await?.lines;
            Ok(Outcome::Decided { municipality: decide.municipality.clone(), candidate, why })
        }
        Err(ClientError::Status(status)) => Ok(Outcome::Refused { what, status }),
        Err(e) => Err(e.into()),
    }
}

/// Plays every step, waits for the system to settle after each, and fetches (and
/// acknowledges) every municipality's result files after each step.
pub async fn play(
    client: &mut Client,
    scenario: &Scenario,
    mut on_step: impl FnMut(&StepReport),
) -> Result<Vec<StepReport>, ScenarioError> {
    let munis = scenario.municipalities();
    let mut reports = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let outcome = match step {
            Step::Submit { submit } => {
                let mut files = Vec::new();
                for f in &submit.files {
                    let path = scenario.dir.join(f);
                    let bytes = std::fs::read(&path)
                        .map_err(|e| ScenarioError::File { path: path.display().to_string(), what: e.to_string() })?;
                    files.push((f.clone(), bytes));
                }
                match client.submit(&submit.municipality, files).await {
                    Ok(response) => Outcome::Submitted {
                        municipality: submit.municipality.clone(),
                        files: submit.files.clone(),
                        response,
                    },
                    Err(ClientError::Status(status)) => {
                        Outcome::Refused { what: format!("submit {}", submit.municipality), status }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Step::CloseDay { close_day } => {
                let date: u32 = close_day.parse().map_err(|_| ScenarioError::File {
                    path: scenario.dir.join("scenario.json").display().to_string(),
                    what: format!("close_day {close_day} is not YYYYMMDD"),
                })?;
                match client.close_day(date).await {
                    Ok(_) => Outcome::DayClosed { date },
                    Err(ClientError::Status(status)) => Outcome::Refused { what: format!("close-day {date}"), status },
                    Err(e) => return Err(e.into()),
                }
            }
            Step::Decide { decide } => play_decision(client, decide).await?,
        };
        client.wait_idle(Duration::from_secs(60)).await?;
        let mut fetched = BTreeMap::new();
        for m in &munis {
            let files = client.fetch_files(m).await?;
            if !files.is_empty() {
                client.acknowledge(m, files.iter().map(|f| f.name.clone()).collect()).await?;
            }
            fetched.insert(m.clone(), files);
        }
        let report = StepReport { index: i + 1, outcome, fetched };
        on_step(&report);
        reports.push(report);
    }
    Ok(reports)
}
