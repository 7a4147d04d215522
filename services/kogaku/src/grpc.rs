//! gRPC glue of kogaku: the caller, the request, the answer (audited, S6, S8). The rules are
//! the domain's; decisions go through the same evaluation as KT records.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kokuho_bus::{Append, BusErrorKind};
use kokuho_ids::codes::{ContinuationDecision, Correction};
use kokuho_ids::{Date, Month};
use kokuho_kogaku_contract::{EVALUATIONS_SUBJECT, Event, Events, STREAM};
use kokuho_kogaku_domain::candidate::{Candidate, DecidedBy};
use kokuho_proto::kogaku::v1 as pb;
use kokuho_proto::kogaku::v1::kogaku_service_server::{KogakuService, KogakuServiceServer};
use kokuho_runtime::audit::Auditor;
use kokuho_runtime::credentials::Credentials;
use tonic::{Request, Response, Status};

use crate::convert::{Order, Work};
use crate::evaluate::{self, Context};
use crate::{KogakuError, candidates, state};

pub type KogakuServer = KogakuServiceServer<KogakuGrpc>;

const PATIENCE: Duration = Duration::from_secs(60);

pub struct KogakuGrpc {
    context: Arc<Context>,
    credentials: Credentials,
    auditor: Auditor,
}

pub(crate) fn server(context: Arc<Context>, credentials: Credentials, auditor: Auditor) -> KogakuServer {
    KogakuServiceServer::new(KogakuGrpc { context, credentials, auditor })
}

fn status(e: KogakuError) -> Status {
    kokuho_runtime::errors::status(&e)
}

fn unavailable(e: impl std::fmt::Display) -> KogakuError {
    KogakuError::Unavailable(e.to_string())
}

impl KogakuGrpc {
    /// Waits until kogaku has evaluated everything in its own stream, on facts as new as the
    /// input streams hold.
    async fn caught_up(&self) -> Result<(), KogakuError> {
        self.context.inputs.caught_up(&self.context.bus).await.map_err(unavailable)?;
        let last = self.context.bus.last_seq(STREAM.name).await.map_err(unavailable)?;
        if self.context.state.wait_for(last, PATIENCE).await {
            Ok(())
        } else {
            Err(unavailable("kogaku is catching up"))
        }
    }

    /// The business date now (rules.md T1): intake's calendar as kogaku has read it, once it
    /// has read everything in intake's stream.
    async fn business_date(&self) -> Result<Date, KogakuError> {
        self.caught_up().await?;
        let date = state::business_date(self.context.inputs.households.store())?;
        Date::from_yyyymmdd(date).ok_or_else(|| KogakuError::Refused("the log has no business date yet".into()))
    }

    /// Decides (or reverses) one candidate: evaluated as a KT record would be, appended on the
    /// state it was decided on.
    async fn decide(&self, mut order: Order) -> Result<Candidate, KogakuError> {
        order.on = self.business_date().await?;
        loop {
            let bus = &self.context.bus;
            let expected = bus.last_subject_seq(STREAM.name, EVALUATIONS_SUBJECT).await.map_err(unavailable)?;
            self.caught_up().await?;
            let work = Work { orders: vec![order.clone()], ..Work::default() };
            let store = self.context.state.store();
            let evaluated =
                evaluate::evaluate(store, &self.context.inputs, work, ("api", expected), self.context.auto_confirm)
                    .map_err(|e| KogakuError::Internal(e.to_string()))?;
            if let Some(refusal) = evaluated.refusals.first() {
                return Err(KogakuError::Refused(format!("E011 {}", refusal.message())));
            }
            let Some(event) = evaluated.event else {
                return Err(KogakuError::Internal("a decision that changed nothing".into()));
            };
            let envelope = kokuho_bus::event::envelope::<Events>(Event::CandidatesEvaluated(event), "", "", "");
            match bus.append(Append::event(EVALUATIONS_SUBJECT, &envelope).expect_last_subject_seq(expected)).await {
                Ok(a) => {
                    self.context.state.wait_for(a.seq, PATIENCE).await;
                    return candidates::candidate(self.context.state.store(), &order.municipality, &order.number)?
                        .ok_or_else(|| KogakuError::Internal("the decided candidate is gone".into()));
                }
                Err(e) if e.kind() == BusErrorKind::WrongLastSequence => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    fn candidate(&self, municipality: &str, number: &str) -> Result<Candidate, KogakuError> {
        candidates::candidate(self.context.state.store(), municipality, number)?.ok_or_else(|| {
            KogakuError::NotFound(format!("E011 {}", kokuho_kogaku_domain::candidate::Refusal::Unknown.message()))
        })
    }
}

/// A candidate as RK and RG show it.
fn summary(c: &Candidate) -> pb::CandidateSummary {
    let fields = c.facts.as_ref().map(|f| f.rk_fields()).or(match c.sent {
        Some(
            kokuho_kogaku_domain::candidate::SentRk::Row(f) | kokuho_kogaku_domain::candidate::SentRk::Withdrawn(f),
        ) => Some(f),
        None => None,
    });
    let mut s = pb::CandidateSummary {
        number: c.number.clone(),
        municipality: c.key.group.to.clone(),
        household: c.key.group.household.clone(),
        moved_in_on: c.key.group.moved_in_on.to_yyyymmdd(),
        from_municipality: c.key.from.clone(),
        from_household: c.key.from_household.clone(),
        withdrawn: c.facts.is_none(),
        changed: c.changed,
        ..Default::default()
    };
    if let Some(f) = fields {
        s.former_householder = f.former_householder.code().into();
        s.movers = f.movers;
        s.recommended = f.recommendation.decision.code().into();
        s.reason = f.recommendation.reason.code().into();
        s.kogaku_count = f.kogaku_count;
    }
    if let Some(d) = &c.decided {
        s.decision = d.decision.code().into();
        s.decided_on = d.on.to_yyyymmdd();
        s.decided_by = match &d.by {
            DecidedBy::File { .. } => "file",
            DecidedBy::Api => "api",
            DecidedBy::Auto => "auto",
            DecidedBy::Operator { .. } => "operator",
        }
        .into();
    }
    if let Some(g) = &c.reported {
        s.inherited = g.inherited.iter().map(|m| m.to_yyyymm()).collect();
        s.handover_count = g.count;
        s.many_times = g.many_times;
    }
    s
}

#[tonic::async_trait]
impl KogakuService for KogakuGrpc {
    async fn count_months(
        &self,
        request: Request<pb::CountMonthsRequest>,
    ) -> Result<Response<pb::CountMonthsResponse>, Status> {
        const ACTION: &str = "kogaku.CountMonths";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let purpose = format!("{} {} {}", r.municipality, r.household_number, r.month);
        self.auditor.require(&caller, caller.is_municipality(&r.municipality), ACTION, &purpose).await?;
        let x = Month::from_yyyymm(r.month)
            .ok_or_else(|| status(KogakuError::Invalid(format!("{} is not a month (YYYYMM)", r.month))))?;
        let household = (r.municipality.clone(), r.household_number.clone());
        let (records, inherited) =
            evaluate::household_months(self.context.state.store(), &self.context.inputs, &household)
                .map_err(|e| status(KogakuError::Internal(e.to_string())))?;
        let (months, count, many_times) = kokuho_kogaku_domain::months::query(&records, &inherited, x);
        self.auditor.allowed(&caller, ACTION, Vec::new(), &purpose).await?;
        Ok(Response::new(pb::CountMonthsResponse {
            months: months
                .into_iter()
                .map(|(m, inherited)| pb::CountedMonth { month: m.to_yyyymm(), inherited })
                .collect(),
            count,
            many_times,
        }))
    }

    async fn decide(&self, request: Request<pb::DecideRequest>) -> Result<Response<pb::DecideResponse>, Status> {
        const ACTION: &str = "kogaku.Decide";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let reversal = caller.is_operator();
        let purpose = if reversal {
            format!("{} {} {} reversal by {}: {}", r.municipality, r.candidate, r.decision, r.operator, r.reason)
        } else {
            format!("{} {} {}", r.municipality, r.candidate, r.decision)
        };
        self.auditor.require(&caller, reversal || caller.is_municipality(&r.municipality), ACTION, &purpose).await?;
        let decision = ContinuationDecision::parse(&r.decision).map_err(|_| {
            status(KogakuError::Invalid(format!("判定 is 1 (継続) or 2 (非継続), not {:?}", r.decision)))
        })?;
        if reversal && (r.operator.trim().is_empty() || r.reason.trim().is_empty()) {
            return Err(status(KogakuError::Invalid("a reversal needs the operator and a reason".into())));
        }
        let by = if reversal {
            DecidedBy::Operator { operator: r.operator.trim().into(), reason: r.reason.trim().into() }
        } else {
            DecidedBy::Api
        };
        let order = Order {
            municipality: r.municipality.clone(),
            number: r.candidate.clone(),
            decision,
            // Set by `decide` from the business date.
            on: Date::MAX,
            by,
        };
        let decided = self.decide(order).await.map_err(status)?;
        let persons = decided.facts.as_ref().map(|f| f.movers.iter().cloned().collect()).unwrap_or_default();
        self.auditor.allowed(&caller, ACTION, persons, &purpose).await?;
        tracing::info!(candidate = %decided.number, reversal, "Candidate decided");
        Ok(Response::new(pb::DecideResponse { candidate: Some(summary(&decided)) }))
    }

    async fn list_candidates(
        &self,
        request: Request<pb::ListCandidatesRequest>,
    ) -> Result<Response<pb::ListCandidatesResponse>, Status> {
        const ACTION: &str = "kogaku.ListCandidates";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let allowed = caller.is_operator() || caller.is_municipality(&r.municipality);
        self.auditor.require(&caller, allowed, ACTION, &r.municipality).await?;
        let to = (!r.municipality.is_empty()).then_some(r.municipality.as_str());
        let store = self.context.state.store();
        let found = if r.changed_only { candidates::changed(store, to) } else { candidates::all(store, to) };
        let candidates: Vec<pb::CandidateSummary> = found.map_err(|e| status(e.into()))?.iter().map(summary).collect();
        self.auditor.allowed(&caller, ACTION, Vec::new(), &r.municipality).await?;
        Ok(Response::new(pb::ListCandidatesResponse { candidates }))
    }

    async fn explain(&self, request: Request<pb::ExplainRequest>) -> Result<Response<pb::ExplainResponse>, Status> {
        const ACTION: &str = "kogaku.Explain";
        let caller = self.credentials.caller_of(&request)?;
        let r = request.into_inner();
        let purpose = format!("{} {}", r.municipality, r.candidate);
        let allowed = caller.is_operator() || caller.is_municipality(&r.municipality);
        self.auditor.require(&caller, allowed, ACTION, &purpose).await?;
        let c = self.candidate(&r.municipality, &r.candidate).map_err(status)?;
        let answer = explain(&self.context.inputs, &c).map_err(|e| status(e.into()))?;
        let persons = c.facts.as_ref().map(|f| f.movers.iter().cloned().collect()).unwrap_or_default();
        self.auditor.allowed(&caller, ACTION, persons, &purpose).await?;
        Ok(Response::new(answer))
    }
}

/// What the H2 rules say, in the caller's language.
fn rule_line(rule: u8) -> &'static str {
    match rule {
        1 => "H2 規則1: 転出元世帯の世帯主(転入日の前日)と転入世帯の世帯主(転入日)が同一人です → 継続(11 世帯主同一)",
        2 => {
            "H2 規則2: 転出元世帯の世帯主はこの世帯の世帯員で、この世帯の世帯主は転出元世帯の世帯員でした → 継続(12 同一世帯内の世帯主変更)"
        }
        3 => {
            "H2 規則3: 転出元世帯の世帯主は転入日の前日までに死亡し、他の被保険者の世帯員は全員この世帯に転入しました → 継続(12)"
        }
        4 => "H2 規則4: この世帯への転入は複数の転出元世帯からです(合併) → 非継続(14)",
        5 => "H2 規則5: 転出元世帯の世帯主はこの世帯に属していません(分離) → 非継続(13)",
        _ => "H2 規則6: 規則1〜5のいずれにも当たりません。世帯の状況を確認してください → 非継続(99)",
    }
}

/// The explanation of a candidate for B: persons by B's 宛名番号 only.
fn explain(inputs: &evaluate::Inputs, c: &Candidate) -> Result<pb::ExplainResponse, kokuho_store::StoreError> {
    let b = &c.key.group.to;
    let members = inputs.members.store();
    let resident_at_b = |person: &str| -> Result<Option<String>, kokuho_store::StoreError> {
        Ok(state::residents_of_person(members, person)?.into_iter().find(|(m, _)| m == b).map(|(_, r)| r))
    };
    let mut lines = Vec::new();
    let mut out = pb::ExplainResponse { candidate: Some(summary(c)), ..Default::default() };
    let d = c.key.group.moved_in_on;
    match &c.facts {
        None => lines.push("この継続候補は取り消されました(移動世帯員の転出・転入の組がなくなりました)".to_string()),
        Some(f) => {
            out.rule = u32::from(f.rule);
            lines.push(rule_line(f.rule).to_string());
            let movers: BTreeSet<String> = f.movers.iter().filter_map(|p| resident_at_b(p).ok().flatten()).collect();
            out.movers = movers.iter().cloned().collect();
            lines.push(format!("移動世帯員({}人): 宛名番号 {}", f.movers.len(), out.movers.join(", ")));
            if let Some(p) = &f.householder_person {
                out.householder = resident_at_b(p)?.unwrap_or_default();
            }
            lines.push(format!(
                "転入世帯 {} の世帯主({d}): {}",
                c.key.group.household,
                if out.householder.is_empty() {
                    "不明".to_string()
                } else {
                    format!("宛名番号 {}", out.householder)
                }
            ));
            let former = match &f.former_householder_person {
                None => "不明(転出元世帯の世帯主の記録がありません)".to_string(),
                Some(p) => match resident_at_b(p)? {
                    Some(r) if f.householder_person.as_deref() == Some(p.as_str()) => {
                        out.former_householder = r.clone();
                        format!("この世帯の世帯主と同一人(宛名番号 {r})")
                    }
                    Some(r) if f.former_householder == kokuho_ids::codes::FormerHouseholder::IsMember => {
                        out.former_householder = r.clone();
                        format!("この世帯の世帯員(宛名番号 {r})")
                    }
                    _ => "この世帯に属していません".to_string(),
                },
            };
            lines.push(format!("転出元 {} 世帯 {} の世帯主(転入日の前日): {former}", c.key.from, c.key.from_household));
            let m = d.month();
            lines.push(format!(
                "K2 転出元世帯の高額該当回数({}〜{}): {}",
                Month::from_index(m.index() - 11).to_yyyymm(),
                m.to_yyyymm(),
                f.kogaku_count
            ));
        }
    }
    match &c.decided {
        None => lines.push("判定: 未確定(H3: 確定まで高額該当回数は引き継ぎません)".to_string()),
        Some(dec) => {
            let by = match &dec.by {
                DecidedBy::File { receipt, line } => format!("KT 受付番号 {receipt} {line}行"),
                DecidedBy::Api => "kokuho decide".to_string(),
                DecidedBy::Auto => "自動確定(世帯主同一)".to_string(),
                DecidedBy::Operator { operator, reason } => format!("運用者 {operator} による変更: {reason}"),
            };
            lines.push(format!("判定: {} 確定年月日 {} ({by})", dec.decision.label(), dec.on));
            if c.changed {
                lines.push("A08: 確定後に事実が変わりました(確定は取り消されていません)".to_string());
            }
        }
    }
    if let Some(g) = &c.reported {
        let months: Vec<String> = g.inherited.iter().map(|m| m.to_yyyymm().to_string()).collect();
        lines.push(format!(
            "K3 引継該当月: {} / 引継後該当回数: {} / 多数回該当: {}{}",
            if months.is_empty() { "なし".to_string() } else { months.join(" ") },
            g.count,
            u8::from(g.many_times),
            if g.correction == Correction::Replaces { " (訂正)" } else { "" }
        ));
    }
    out.lines = lines;
    Ok(out)
}
