//! One test per kind pins its columns against formats.md "Result files": the number of fields
//! and what stands in each position.

use kokuho_ids::codes::*;
use kokuho_ids::{Date, Month};

use super::*;

fn d(y: i32, m: u8, day: u8) -> Date {
    Date::from_ymd(y, m, day).unwrap()
}

/// formats.md RE: 区分, コード, 受付番号, ファイル種別, 行番号, 宛名番号, 項目名, 内容, 相手先市区町村コード,
/// 相手先適用開始年月日, 相手先適用終了年月日, 状態 (fields 2–13).
#[test]
fn re_columns() {
    let row = Row::from(Re {
        kubun: Kubun::Anomaly,
        code: "A01",
        receipt: "131016-00000002".into(),
        file_kind: Some(InputKind::Persons),
        line: Some(4),
        resident: "100003".into(),
        field: "適用開始年月日".into(),
        message: AnomalyCode::A01.label().into(),
        counterpart: "131024".into(),
        counterpart_start: Some(d(2026, 5, 20)),
        counterpart_end: None,
        state: AlertState::Closed,
    });
    assert_eq!(row.kind(), ResultKind::Checks);
    assert_eq!(
        row.fields(),
        [
            "A",
            "A01",
            "131016-00000002",
            "KK",
            "4",
            "100003",
            "適用開始年月日",
            "県内異動の前後の適用期間に空白があります",
            "131024",
            "20260520",
            "",
            "2"
        ]
    );
}

/// formats.md RI: 宛名番号, 市区町村被保険者ID, 付番年月日, 訂正.
#[test]
fn ri_columns() {
    let row = Row::from(Ri {
        resident: "100001".into(),
        muni_id: "1000000018".into(),
        assigned_on: d(2026, 4, 1),
        correction: Correction::Replaces,
    });
    assert_eq!(row.kind(), ResultKind::MuniInsuredIds);
    assert_eq!(row.fields(), ["100001", "1000000018", "20260401", "1"]);
}

/// formats.md RS: 宛名番号, 市区町村被保険者ID, 資格取得年月日, 資格取得事由, 資格喪失年月日, 資格喪失事由,
/// 適用開始年月日, 適用終了年月日, 判定区分, 訂正 (fields 2–11).
#[test]
fn rs_columns() {
    let rs = Rs {
        resident: "300002".into(),
        muni_id: "2000000016".into(),
        acquired_on: d(2018, 4, 1),
        acquired_reason: StartReason::LeftEmployeeInsurance,
        lost_on: Some(d(2026, 4, 16)),
        lost_reason: Some(EndReason::JoinedEmployeeInsurance),
        start: d(2018, 4, 1),
        end: Some(d(2026, 4, 15)),
        judgement: Judgement::Lost,
        correction: Correction::Replaces,
    };
    let row = Row::from(rs.clone());
    assert_eq!(row.kind(), ResultKind::Qualification);
    assert_eq!(
        row.fields(),
        ["300002", "2000000016", "20180401", "03", "20260416", "03", "20180401", "20260415", "3", "1"]
    );
    let open = Rs { lost_on: None, lost_reason: None, end: None, judgement: Judgement::NewlyAcquired, ..rs.clone() };
    assert_eq!(Row::from(open).fields()[4..8], ["", "", "20180401", ""]);
    // C9: a withdrawal keeps fields 2–9 and says 9 / 訂正 1; 訂正 alone is no change.
    assert_eq!(Row::from(rs.withdrawal()).fields()[8..], ["9", "1"]);
    let first = Rs { correction: Correction::First, ..rs.clone() };
    assert_eq!(Row::from(first.withdrawal()).fields()[8..], ["9", "1"], "a withdrawal always replaces");
    assert!(rs.same_determination(&Rs { correction: Correction::First, ..rs.clone() }));
    assert!(!rs.same_determination(&Rs { muni_id: String::new(), ..rs.clone() }));
}

/// formats.md RK: 継続候補番号, 転入世帯番号, 転入年月日, 転出元市区町村コード, 転出元世帯番号, 転出元世帯主,
/// 移動世帯員数, 推奨判定, 判定理由, 直近12か月高額該当回数, 訂正 (fields 2–12).
#[test]
fn rk_columns() {
    let row = Row::from(Rk {
        candidate: "K000001".into(),
        household: "2001".into(),
        moved_in_on: d(2026, 5, 10),
        from: "131016".into(),
        from_household: "1001".into(),
        former_householder: FormerHouseholder::IsHouseholder,
        movers: 2,
        recommended: ContinuationDecision::Continue,
        reason: ContinuationReason::SameHouseholder,
        kogaku_count: 3,
        correction: Correction::First,
    });
    assert_eq!(row.kind(), ResultKind::Candidates);
    assert_eq!(row.fields(), ["K000001", "2001", "20260510", "131016", "1001", "1", "2", "1", "11", "3", "0"]);
}

/// formats.md RG: 継続候補番号, 転入世帯番号, 判定, 確定年月日, 引継該当月, 引継後該当回数, 多数回該当, 訂正.
#[test]
fn rg_columns() {
    let m = |y, mo| Month::new(y, mo).unwrap();
    let row = Row::from(Rg {
        candidate: "K000001".into(),
        household: "2001".into(),
        decision: ContinuationDecision::Continue,
        decided_on: d(2026, 6, 1),
        inherited: vec![m(2025, 8), m(2025, 11), m(2026, 2)],
        count: 3,
        many_times: true,
        correction: Correction::First,
    });
    assert_eq!(row.kind(), ResultKind::Handover);
    assert_eq!(row.fields(), ["K000001", "2001", "1", "20260601", "202508 202511 202602", "3", "1", "0"]);
}

/// formats.md RM: 宛名番号, 被保険者証記号, 被保険者証番号, 枝番, 処理区分, 結果, エラーコード, 内容.
#[test]
fn rm_columns() {
    let ok = Rm {
        resident: "100001".into(),
        card_symbol: "千代田".into(),
        card_number: "1001".into(),
        branch: 1,
        processing: RelayProcessing::New,
        error: None,
    };
    assert_eq!(Row::from(ok.clone()).kind(), ResultKind::Relay);
    assert_eq!(Row::from(ok.clone()).fields(), ["100001", "千代田", "1001", "01", "1", "0", "", ""]);
    let rejected =
        Rm { error: Some(("R03".into(), "中間サーバーが受け付けませんでした".into())), ..ok };
    assert_eq!(Row::from(rejected).fields()[5..], ["1", "R03", "中間サーバーが受け付けませんでした"]);
}
