//! Names and other text: trimmed; names also have inner runs of white space
//! collapsed to one space (case is kept: `McDonald`, `van der Berg`).

/// `value` without white space at either end, as `str::trim`: a value
/// that starts and ends with a visible ASCII character (most) is returned
/// after looking at those two bytes, where `trim` decodes a character at
/// each end through its generic pattern search (4% of the normalize stage).
#[inline]
pub fn trim(value: &str) -> &str {
    match value.as_bytes() {
        [first, .., last] if first.is_ascii_graphic() && last.is_ascii_graphic() => value,
        [only] if only.is_ascii_graphic() => value,
        _ => value.trim(),
    }
}

/// Trims and collapses white space runs: `value` itself when it has none
/// to collapse (most names), else the result, written into `out`.
pub fn collapse_whitespace<'a>(value: &'a str, out: &'a mut String) -> &'a str {
    if is_collapsed(value.as_bytes()) {
        return value;
    }
    out.clear();
    for (i, word) in value.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Whether `bytes` certainly has no white space to trim or collapse: no
/// space at either end or next to another, no other ASCII white space,
/// and none of the lead bytes of Unicode's other white space (U+0085,
/// U+00A0, U+1680, U+2000-U+205F, U+3000: 0xC2, 0xE1, 0xE2, 0xE3; text
/// with those bytes, white space or not, takes the general way). One pass
/// over the bytes where the general way decodes every character.
fn is_collapsed(bytes: &[u8]) -> bool {
    if bytes.first() == Some(&b' ') || bytes.last() == Some(&b' ') {
        return false;
    }
    let mut previous = 0u8;
    for &b in bytes {
        match b {
            b'\t'..=b'\r' | 0xC2 | 0xE1..=0xE3 => return false,
            b' ' if previous == b' ' => return false,
            _ => previous = b,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_as_str_trim() {
        for value in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\n",
            "ab",
            "a b",
            "\u{a0}x",
            "x\u{a0}",
            "\u{3000}x\u{2003}",
            "é",
            "é ",
            "Løvås",
            "x\u{85}",
        ] {
            assert_eq!(trim(value), value.trim(), "{value:?}");
        }
    }

    #[test]
    fn collapses() {
        let mut out = String::new();
        assert_eq!(
            collapse_whitespace("  Jan \t  Maria\u{a0} Novák ", &mut out),
            "Jan Maria Novák"
        );
        assert_eq!(collapse_whitespace("   ", &mut out), "");
        assert_eq!(collapse_whitespace("", &mut out), "");
    }

    #[test]
    fn clean_text_is_returned_as_it_is_and_the_rest_collapsed_as_before() {
        let cases = [
            "Jan Novák",
            "Løvås",
            "a",
            "a  b",
            " a",
            "a ",
            "a\tb",
            "a\nb",
            "a\u{85}b",
            "a\u{a0}b",
            "a\u{1680}b",
            "a\u{2003}b",
            "a\u{202f}b",
            "a\u{3000}b",
            "Nguyễn Văn",
            "山田 太郎",
            "a \u{a0}b",
        ];
        for value in cases {
            let mut out = String::new();
            let general: Vec<&str> = value.split_whitespace().collect();
            assert_eq!(collapse_whitespace(value, &mut out), general.join(" "), "{value:?}");
        }
        let mut out = String::from("stale");
        let clean = "Jan Novák";
        assert!(std::ptr::eq(collapse_whitespace(clean, &mut out), clean));
    }
}
