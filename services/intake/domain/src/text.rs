//! Encoding detection (formats.md): valid UTF-8 (a BOM is dropped) is read as UTF-8; anything
//! else must decode as CP932 under the WHATWG Shift_JIS decoder, or the file is F01.

/// The decoded text, or `None` (F01). UTF-8 is read in place (no copy: S9, a file at the size
/// limit costs its bytes once); CP932 is decoded into new text.
pub fn decode(bytes: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(s) = std::str::from_utf8(body) {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    encoding_rs::SHIFT_JIS.decode_without_bom_handling_and_without_replacement(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_bom_cp932_and_garbage() {
        assert_eq!(decode(b"\xEF\xBB\xBF1,KK").as_deref(), Some("1,KK"));
        assert_eq!(decode("山田".as_bytes()).as_deref(), Some("山田"));
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("山田 太郎,ヤマダ");
        assert_eq!(decode(&sjis).as_deref(), Some("山田 太郎,ヤマダ"));
        // 0x82 followed by 0x20 is not a valid Shift_JIS sequence and not UTF-8.
        assert_eq!(decode(b"\x82\x20abc"), None);
        assert_eq!(decode(b"\xFF\xFF"), None);
    }
}
