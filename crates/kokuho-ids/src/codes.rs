//! The code sets of formats.md, each a closed enum with its code and Japanese label.

use crate::IdError;

macro_rules! code_set {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal => $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $(#[doc = $label] $variant),+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Parses the exact code (no trimming, leading zeros count).
            pub fn parse(s: &str) -> Result<Self, IdError> {
                match s {
                    $($code => Ok($name::$variant),)+
                    _ => Err(IdError::NotInCodeSet),
                }
            }

            pub fn code(self) -> &'static str {
                match self {
                    $($name::$variant => $code),+
                }
            }

            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

code_set!(
    /// 処理区分 of KS, KK and KG.
    ProcessingKind { Register = "1" => "登録", Delete = "3" => "削除" }
);

code_set!(
    /// 世帯異動事由 (KS field 5).
    HouseholdChangeReason {
        New = "01" => "新規",
        MoveInWithinPrefecture = "02" => "県内転入",
        MoveInFromOutside = "03" => "県外転入",
        HouseholderChange = "04" => "世帯主変更",
        Split = "05" => "世帯分離",
        Merge = "06" => "世帯合併",
        MemberChange = "07" => "構成員増減",
        MoveOutWithinPrefecture = "08" => "県内転出",
        MoveOutOfPrefecture = "09" => "県外転出",
        Dissolved = "10" => "消滅",
        Other = "99" => "その他",
    }
);

code_set!(
    /// 擬制世帯主区分 (KS field 7).
    DeemedHouseholder { Insured = "0" => "世帯主が被保険者", Deemed = "1" => "擬制世帯主" }
);

code_set!(
    /// 所得区分 (KS field 10).
    IncomeCategory {
        A = "01" => "ア",
        I = "02" => "イ",
        U = "03" => "ウ",
        E = "04" => "エ",
        O = "05" => "オ",
        ActiveIII = "06" => "現役並みⅢ",
        ActiveII = "07" => "現役並みⅡ",
        ActiveI = "08" => "現役並みⅠ",
        General = "09" => "一般",
        LowIncomeII = "10" => "低所得Ⅱ",
        LowIncomeI = "11" => "低所得Ⅰ",
    }
);

code_set!(
    /// 被保険者区分 (KK field 5).
    InsuredKind { Insured = "1" => "被保険者", DeemedHouseholder = "2" => "擬制世帯主" }
);

code_set!(
    /// 性別.
    Sex { Male = "1" => "男", Female = "2" => "女" }
);

code_set!(
    /// 続柄 (relation to the householder).
    Relation {
        Householder = "01" => "世帯主",
        Spouse = "02" => "配偶者",
        Child = "03" => "子",
        Parent = "04" => "父母",
        OtherRelative = "05" => "その他親族",
        Other = "06" => "その他",
    }
);

code_set!(
    /// 適用開始事由 (KK field 13).
    StartReason {
        MoveInFromOutside = "01" => "県外転入",
        MoveInWithinPrefecture = "02" => "県内転入",
        LeftEmployeeInsurance = "03" => "社保離脱",
        Birth = "04" => "出生",
        WelfareEnded = "05" => "生保廃止",
        Other = "99" => "その他",
    }
);

code_set!(
    /// 適用終了事由 (KK field 15).
    EndReason {
        MoveOutOfPrefecture = "01" => "県外転出",
        MoveOutWithinPrefecture = "02" => "県内転出",
        JoinedEmployeeInsurance = "03" => "社保加入",
        Death = "04" => "死亡",
        WelfareStarted = "05" => "生保開始",
        LateElderly = "06" => "後期高齢者医療移行",
        Other = "99" => "その他",
    }
);

code_set!(
    /// 該当区分 (KG field 5).
    KogakuKind { Household = "1" => "世帯の高額療養費", ElderlyOutpatientOnly = "2" => "70歳以上外来特例のみ" }
);

code_set!(
    /// 判定 (KT field 3, RG field 4).
    ContinuationDecision { Continue = "1" => "継続", Discontinue = "2" => "非継続" }
);

code_set!(
    /// File kinds a municipality sends (header field 2).
    InputKind {
        Households = "KS" => "資格情報(世帯)",
        Persons = "KK" => "資格情報(個人)",
        KogakuMonths = "KG" => "高額該当情報",
        ContinuationDecisions = "KT" => "継続世帯確定指示",
    }
);

code_set!(
    /// File kinds the system sends back.
    ResultKind {
        Qualification = "RS" => "資格取得喪失年月日連携ファイル",
        MuniInsuredIds = "RI" => "市区町村被保険者ID連携ファイル",
        Checks = "RE" => "異動チェック結果ファイル",
        Candidates = "RK" => "継続候補世帯リスト",
        Handover = "RG" => "高額該当引継情報連携ファイル",
        Relay = "RM" => "中間サーバー連携結果",
    }
);

code_set!(
    /// 区分 of an RE row (formats.md RE field 2).
    Kubun {
        Error = "E" => "エラー",
        Warning = "W" => "警告",
        Anomaly = "A" => "継続性異常",
        Conflict = "C" => "識別子不整合",
        Relay = "R" => "中間サーバー連携",
    }
);

code_set!(
    /// 状態 of an RE row (field 13): A, C and R rows open with 1 and close with 2; E and W rows
    /// are always 1.
    AlertState { Raised = "1" => "発生", Closed = "2" => "解消" }
);

code_set!(
    /// 訂正 of RS, RI, RK and RG rows (RK also uses 2 取消).
    Correction {
        First = "0" => "初回",
        Replaces = "1" => "訂正",
        Withdrawn = "2" => "取消",
    }
);

code_set!(
    /// 判定区分 of an RS row (field 10, rules.md C9).
    Judgement {
        NewlyAcquired = "1" => "新規取得",
        Continued = "2" => "県内継続",
        Lost = "3" => "喪失",
        Withdrawn = "9" => "取消",
    }
);

code_set!(
    /// Continuity and household anomalies (rules.md C3–C7, H5); the label is the RE message.
    AnomalyCode {
        A01 = "A01" => "県内異動の前後の適用期間に空白があります",
        A02 = "A02" => "県内異動の前後の適用期間が重複しています",
        A03 = "A03" => "県内転出先の転入が届いていません",
        A04 = "A04" => "県内転入元の転出が届いていません",
        A05 = "A05" => "県内転出の処理がされていません",
        A06 = "A06" => "二重加入の適用期間があります",
        A07 = "A07" => "死亡後に始まる適用期間があります",
        A08 = "A08" => "継続世帯の確定後に事実が変更されました",
    }
);

code_set!(
    /// 転出元世帯主 of an RK row (field 7).
    FormerHouseholder {
        IsHouseholder = "1" => "この世帯の世帯主",
        IsMember = "2" => "この世帯の世帯員",
        NotMember = "3" => "この世帯に属さない",
    }
);

code_set!(
    /// 判定理由 of an RK row (field 10, rules.md H2).
    ContinuationReason {
        SameHouseholder = "11" => "世帯主同一",
        HouseholderChanged = "12" => "同一世帯内の世帯主変更",
        SplitWithoutHouseholder = "13" => "分離(旧世帯主のいない側)",
        MergedNotHouseholder = "14" => "合併(旧世帯主が世帯主でない側)",
        NeedsReview = "99" => "要確認",
    }
);

code_set!(
    /// 処理区分 of an RM row.
    RelayProcessing { New = "1" => "新規", Change = "2" => "変更", Delete = "3" => "削除" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_exactly() {
        for r in StartReason::ALL {
            assert_eq!(StartReason::parse(r.code()), Ok(*r));
        }
        assert_eq!(StartReason::parse("2"), Err(IdError::NotInCodeSet));
        assert_eq!(StartReason::parse(" 02"), Err(IdError::NotInCodeSet));
        assert_eq!(Sex::parse("3"), Err(IdError::NotInCodeSet));
        assert_eq!(IncomeCategory::ALL.len(), 11);
        assert_eq!(EndReason::ALL.len(), 7);
        assert_eq!(HouseholdChangeReason::ALL.len(), 11);
        assert_eq!(InputKind::parse("KK"), Ok(InputKind::Persons));
        assert_eq!(InputKind::parse("kk"), Err(IdError::NotInCodeSet));
    }
}
