//! The operator's anchor file (security.md S8): the heads of the audit chains, one JSON line per
//! chain and moment, appended at every day close and by `kokuho audit anchor`, kept outside
//! NATS. `kokuho audit verify` sends every line back: each anchored entry must still be there,
//! unchanged, so a tail cut off after it is found.

use std::io::Write as _;
use std::path::Path;

use kokuho_proto::identity::v1::AuditAnchor;

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    subject: String,
    position: u64,
    seq: u64,
    hash: String,
    /// Unix seconds when it was anchored (for the reader; not checked).
    at: i64,
}

/// Appends `heads` (and fsyncs: an anchor is worth keeping only once it is on disk).
pub fn append(path: &Path, heads: &[AuditAnchor]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    for h in heads {
        let line = Line { subject: h.subject.clone(), position: h.position, seq: h.seq, hash: h.hash.clone(), at };
        writeln!(f, "{}", serde_json::to_string(&line).map_err(std::io::Error::other)?)?;
    }
    f.sync_all()
}

/// Every anchor of the file (none if there is no file yet). A line that is not an anchor is an
/// error naming its line: the file is evidence, not something to skip over.
pub fn read(path: &Path) -> std::io::Result<Vec<AuditAnchor>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let l: Line = serde_json::from_str(line)
            .map_err(|e| std::io::Error::other(format!("line {}: not an anchor: {e}", i + 1)))?;
        out.push(AuditAnchor { subject: l.subject, position: l.position, seq: l.seq, hash: l.hash });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_round_trip_and_a_damaged_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/anchors.jsonl");
        assert!(read(&path).unwrap().is_empty());
        let h = AuditAnchor { subject: "kokuho.audit.intake".into(), position: 3, seq: 9, hash: "ab".into() };
        append(&path, std::slice::from_ref(&h)).unwrap();
        append(&path, std::slice::from_ref(&h)).unwrap();
        assert_eq!(read(&path).unwrap(), vec![h.clone(), h]);
        std::fs::write(&path, "{}\n").unwrap();
        assert!(read(&path).unwrap_err().to_string().contains("line 1"));
    }
}
