//! Names and other text: trimmed; names also have inner runs of white space
//! collapsed to one space (case is kept: `McDonald`, `van der Berg`).

/// Trims and collapses white space runs into `out`.
pub fn collapse_whitespace(value: &str, out: &mut String) {
    out.clear();
    for (i, word) in value.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses() {
        let mut out = String::new();
        collapse_whitespace("  Jan \t  Maria\u{a0} Novák ", &mut out);
        assert_eq!(out, "Jan Maria Novák");
        collapse_whitespace("   ", &mut out);
        assert_eq!(out, "");
    }
}
