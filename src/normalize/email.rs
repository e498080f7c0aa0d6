//! Email: trimmed, lower-cased, and plausible (SPEC): exactly one `@`, a
//! non-empty local part, a domain with a dot and no empty label, no spaces.
//! A copied `<a@x.cz>`, `Jan Novák <a@x.cz>` (a display name before it,
//! as mail programs and Outlook exports write it) or `mailto:a@x.cz` is
//! the address inside, so it matches the same contact. Neither part may
//! start or end with a dot or hold `..`, and none of `<>()[],;:"` may
//! appear: such values are pasted lists or quoted names, not one address.

/// The normalized email: the trimmed input itself when it is already
/// lower-case ASCII (most are: no copy), else written into `out`. Or why it
/// is not plausible. One pass over the bytes checks everything.
pub fn normalize_into<'a>(value: &'a str, out: &'a mut String) -> Result<&'a str, &'static str> {
    let value = unwrap(value);
    if value.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        check(value)?;
        return Ok(value);
    }
    normalize(value, out)?;
    Ok(out.as_str())
}

/// Writes the normalized email into `out`, or says why it is not plausible.
pub fn normalize(value: &str, out: &mut String) -> Result<(), &'static str> {
    let value = unwrap(value);
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

/// The address inside one closing `<...>` (after nothing, a display name
/// without `@`, `<` or `>`, or the address itself) and behind a leading
/// `mailto:` (any case), trimmed.
fn unwrap(value: &str) -> &str {
    let mut value = super::text::trim(value);
    if let Some(open) = value.strip_suffix('>').and_then(|v| v.rfind('<')) {
        let name = &value[..open];
        let inner = super::text::trim(&value[open + 1..value.len() - 1]);
        // Outlook writes `"a@x.cz" <a@x.cz>` for a contact without a name.
        let quoted = name.trim().trim_matches(['"', '\'']).trim();
        if !name.contains(['@', '<', '>']) || quoted.eq_ignore_ascii_case(inner) {
            value = inner;
        }
    }
    if value.len() >= 7 && value.as_bytes()[..7].eq_ignore_ascii_case(b"mailto:") {
        value = super::text::trim(&value[7..]);
    }
    value
}

/// Bytes that never belong in an address (outside quoted local parts,
/// which contact data does not use).
const FORBIDDEN: [bool; 256] = {
    let mut table = [false; 256];
    let bytes = b"<>()[],;:\"";
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
};

/// A dot at either end, or two in a row.
fn bad_dots(part: &[u8]) -> bool {
    let double = part
        .iter()
        .zip(part.iter().skip(1))
        .fold(false, |double, (&a, &b)| double | (a == b'.' && b == b'.'));
    part.first() == Some(&b'.') || part.last() == Some(&b'.') || double
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
    if bytes.iter().fold(false, |bad, &b| bad | FORBIDDEN[b as usize]) {
        return Err("contains one of < > ( ) [ ] , ; : \"");
    }
    if bad_dots(&bytes[..at]) {
        return Err("local part starts or ends with a dot or has two in a row");
    }
    let domain = &bytes[at + 1..];
    if memchr::memchr(b'.', domain).is_none() {
        return Err("domain without a dot");
    }
    if bad_dots(domain) {
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
    fn unwraps_angle_brackets_and_mailto() {
        for v in [
            "<a@x.cz>",
            " < A@X.cz > ",
            "mailto:a@x.cz",
            "MailTo: a@x.cz",
            "<mailto:a@x.cz>",
        ] {
            assert_eq!(norm(v).as_deref(), Ok("a@x.cz"), "{v}");
        }
        // A display name before the address, as mail programs write it.
        for v in [
            "Jan Novák <a@x.cz>",
            "\"Novák, Jan\" <A@x.cz>",
            "Jan<mailto:a@x.cz> ",
            "\"a@x.cz\" <a@x.cz>",
            "'A@x.cz' <a@x.cz>",
        ] {
            assert_eq!(norm(v).as_deref(), Ok("a@x.cz"), "{v}");
        }
        // Only one surrounding pair, and only a leading mailto:; a name
        // holding an address is two addresses.
        assert!(norm("<<a@x.cz>>").is_err());
        assert!(norm("b@y.cz <a@x.cz>").is_err());
        assert!(norm("Jan <a@x.cz>, Eva <e@x.cz>").is_err());
        assert!(norm("a@x.cz mailto:").is_err());
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
            (".a@x.cz", "local part starts or ends with a dot or has two in a row"),
            ("a.@x.cz", "local part starts or ends with a dot or has two in a row"),
            ("a..b@x.cz", "local part starts or ends with a dot or has two in a row"),
            ("a@x.cz.", "domain with an empty label"),
            ("Jan <a@x.cz", "contains a space"),
            ("a,b@x.cz", "contains one of < > ( ) [ ] , ; : \""),
            ("a@x.cz;b", "contains one of < > ( ) [ ] , ; : \""),
            ("\"jan\"@x.cz", "contains one of < > ( ) [ ] , ; : \""),
            ("a(b)@x.cz", "contains one of < > ( ) [ ] , ; : \""),
            ("a@[1.2.3.4]", "contains one of < > ( ) [ ] , ; : \""),
            ("a:b@x.cz", "contains one of < > ( ) [ ] , ; : \""),
            ("a\tb@x.cz", "contains a space"),
        ] {
            assert_eq!(norm(bad), Err(why), "{bad}");
        }
    }
}
