//! Provision to other institutions (rules.md P1; 別紙2): which institution may be provided
//! which file, on which legal basis. The policy is `config/provision-policy.csv` (shipped in the
//! project, read at start); everything it does not list is denied.

/// The files other institutions may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProvisionFile {
    /// 被保険者台帳ファイル.
    Ledger,
    /// 給付情報ファイル.
    Benefits,
}

impl ProvisionFile {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "被保険者台帳ファイル" => Ok(ProvisionFile::Ledger),
            "給付情報ファイル" => Ok(ProvisionFile::Benefits),
            other => Err(format!("unknown file {other:?}")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ProvisionFile::Ledger => "被保険者台帳ファイル",
            ProvisionFile::Benefits => "給付情報ファイル",
        }
    }
}

/// One row of the policy: (file, target, 主務省令第2条 表 項) with its basis and purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub file: ProvisionFile,
    pub target: String,
    /// The 項; `None` where the source table is not legible (such a row allows nothing until
    /// the operator completes it).
    pub item: Option<u32>,
    pub basis: String,
    pub purpose: String,
}

/// P1: the decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Listed: the row that allows it.
    Allowed(&'a Rule),
    Denied,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

const HEADER: &str = "file,target,basis_item,basis,purpose";

impl Policy {
    /// Parses the policy file (UTF-8, header `file,target,basis_item,basis,purpose`, five
    /// fields per row, no quoting); an error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, h)) if h.trim_start_matches('\u{feff}').trim_end() == HEADER => {}
            _ => return Err(format!("line 1: the header must be {HEADER}")),
        }
        let mut rules = Vec::new();
        for (i, line) in lines {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let at = |what: String| format!("line {}: {what}", i + 1);
            let fields: Vec<&str> = line.split(',').collect();
            let [file, target, item, basis, purpose] = fields[..] else {
                return Err(at(format!("{} fields, not 5", fields.len())));
            };
            if target.is_empty() {
                return Err(at("the target is blank".into()));
            }
            let item = if item.is_empty() {
                None
            } else {
                Some(item.parse::<u32>().map_err(|_| at(format!("basis_item {item:?} is not a number")))?)
            };
            rules.push(Rule {
                file: ProvisionFile::parse(file).map_err(at)?,
                target: target.to_string(),
                item,
                basis: basis.to_string(),
                purpose: purpose.to_string(),
            });
        }
        Ok(Self { rules })
    }

    /// P1: allowed only when (target, 項) is listed for the file; everything else is denied.
    pub fn decide(&self, file: ProvisionFile, target: &str, item: u32) -> Decision<'_> {
        self.rules
            .iter()
            .find(|r| r.file == file && r.target == target && r.item == Some(item))
            .map_or(Decision::Denied, Decision::Allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../../config/provision-policy.csv");

    /// P1 over the shipped policy: listed (file, target, 項) is allowed with its basis; another
    /// target, another 項, the other file, or a row whose 項 is not legible, is denied.
    #[test]
    fn p1_only_what_the_policy_lists() {
        let p = Policy::parse(SHIPPED).unwrap();
        assert_eq!(p.rules.len(), 32);
        let Decision::Allowed(rule) = p.decide(ProvisionFile::Ledger, "厚生労働大臣", 1) else {
            panic!("listed")
        };
        assert!(rule.basis.contains("1項"));
        assert!(matches!(p.decide(ProvisionFile::Benefits, "全国健康保険協会", 2), Decision::Allowed(_)));
        assert_eq!(p.decide(ProvisionFile::Benefits, "厚生労働大臣", 1), Decision::Denied, "not for this file");
        assert_eq!(p.decide(ProvisionFile::Ledger, "厚生労働大臣", 2), Decision::Denied, "another 項");
        assert_eq!(p.decide(ProvisionFile::Ledger, "民間企業", 1), Decision::Denied, "not listed");
        // 都道府県知事 is listed for the ledger under 項 13, 19, 38 and once without a legible 項.
        assert!(matches!(p.decide(ProvisionFile::Ledger, "都道府県知事", 13), Decision::Allowed(_)));
        assert_eq!(p.decide(ProvisionFile::Ledger, "都道府県知事", 0), Decision::Denied);
        assert!(p.rules.iter().any(|r| r.item.is_none()));
    }

    /// A policy that does not parse is refused with its line.
    #[test]
    fn a_bad_policy_names_its_line() {
        assert!(Policy::parse("nope\n").unwrap_err().starts_with("line 1"));
        let bad = format!("{HEADER}\n被保険者台帳ファイル,厚生労働大臣,x,b,p\n");
        assert!(Policy::parse(&bad).unwrap_err().starts_with("line 2"));
        let short = format!("{HEADER}\n被保険者台帳ファイル,厚生労働大臣,1\n");
        assert!(Policy::parse(&short).unwrap_err().contains("3 fields"));
        let unknown = format!("{HEADER}\n年金ファイル,厚生労働大臣,1,b,p\n");
        assert!(Policy::parse(&unknown).unwrap_err().contains("unknown file"));
        let blank = format!("{HEADER}\n給付情報ファイル,,1,b,p\n");
        assert!(Policy::parse(&blank).unwrap_err().contains("target"));
        assert_eq!(ProvisionFile::parse(ProvisionFile::Benefits.name()), Ok(ProvisionFile::Benefits));
    }
}
