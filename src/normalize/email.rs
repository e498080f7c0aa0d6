//! Email: trimmed, lower-cased, and plausible (SPEC): exactly one `@`, a
//! non-empty local part, a domain with a dot and no empty label, no spaces.

/// The normalized email: the trimmed input itself when it is already
/// lower-case ASCII (most are: no copy), else written into `out`. Or why it
/// is not plausible. One pass over the bytes checks everything.
pub fn normalize_into<'a>(value: &'a str, out: &'a mut String) -> Result<&'a str, &'static str> {
    let value = super::text::trim(value);
    if value.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        check(value)?;
        return Ok(value);
    }
    normalize(value, out)?;
    Ok(out.as_str())
}

/// Writes the normalized email into `out`, or says why it is not plausible.
pub fn normalize(value: &str, out: &mut String) -> Result<(), &'static str> {
    let value = super::text::trim(value);
    out.clear();
    out.push_str(value);
    if value.is_ascii() {
        out.make_ascii_lowercase();
    } else {
        out.clear();
        out.extend(value.chars().flat_map(char::to_lowercase));
        if out.chars().any(|c| c.is_whitespace() && !c.is_ascii()) {
            return Err("contains a space");
        }
    }
    check(out)
}

/// The plausibility rules on an already lower-cased email. Searches
/// (`memchr`) and branch-free folds rather than one loop deciding per
/// byte, which was a tenth of the normalize stage.
fn check(email: &str) -> Result<(), &'static str> {
    let bytes = email.as_bytes();
    let Some(at) = memchr::memchr(b'@', bytes) else {
        return Err("no @");
    };
    if memchr::memrchr(b'@', bytes) != Some(at) {
        return Err("more than one @");
    }
    if at == 0 {
        return Err("empty local part");
    }
    if bytes.iter().fold(false, |space, b| space | b.is_ascii_whitespace()) {
        return Err("contains a space");
    }
    let domain = &bytes[at + 1..];
    if memchr::memchr(b'.', domain).is_none() {
        return Err("domain without a dot");
    }
    let empty_label = domain
        .iter()
        .zip(&domain[1..])
        .fold(false, |empty, (&a, &b)| empty | (a == b'.' && b == b'.'));
    if domain.first() == Some(&b'.') || domain.last() == Some(&b'.') || empty_label {
        return Err("domain with an empty label");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &str) -> Result<String, &'static str> {
        let mut out = String::new();
        let slow = normalize(v, &mut out).map(|()| out.clone());
        let mut scratch = String::new();
        let fast = normalize_into(v, &mut scratch).map(str::to_string);
        assert_eq!(fast, slow, "both paths agree on {v:?}");
        slow
    }

    #[test]
    fn normalizes_real_world_emails() {
        assert_eq!(norm(" Jan.Novak@Seznam.CZ ").as_deref(), Ok("jan.novak@seznam.cz"));
        assert_eq!(norm("ŽOFIE@příklad.cz").as_deref(), Ok("žofie@příklad.cz"));
        assert_eq!(norm("a+tag@x.co.uk").as_deref(), Ok("a+tag@x.co.uk"));
        assert_eq!(norm(" already.lower@x.cz").as_deref(), Ok("already.lower@x.cz"));
    }

    #[test]
    fn rejects_implausible_emails() {
        for (bad, why) in [
            ("jan.novak.seznam.cz", "no @"),
            ("jan@@seznam.cz", "more than one @"),
            ("@seznam.cz", "empty local part"),
            ("jan novak@seznam.cz", "contains a space"),
            ("jan@seznam", "domain without a dot"),
            ("jan@seznam.", "domain with an empty label"),
            ("jan@.cz", "domain with an empty label"),
            ("jan@x..cz", "domain with an empty label"),
            ("jan@x.cz ok", "contains a space"),
            ("@jan@x.cz", "more than one @"),
            ("@jan x.cz", "empty local part"),
            ("jan @x", "contains a space"),
            ("jan@x", "domain without a dot"),
        ] {
            assert_eq!(norm(bad), Err(why), "{bad}");
        }
    }
}
