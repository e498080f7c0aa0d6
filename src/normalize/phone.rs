//! Phone and mobile numbers: digits, `--phone-transform` rules,
//! `--phone-valid` rules, and E.164 when a country is known (SPEC).
//!
//! Validity with a known country follows libphonenumber's metadata (the
//! `phonenumber` crate's copy): a number is valid when its national number
//! matches one of its region's number types (fixed line, mobile, toll free,
//! ...). The hot path reads the metadata once per thread into our own
//! lazy DFAs ([`Pattern`]), because the crate keeps its regexes behind one
//! global mutex, which serialises rayon threads. Resolution follows
//! libphonenumber's order: a leading `+` or `00` gives the country code;
//! otherwise the row's or the default country, its trunk prefix stripped
//! (`0151…` in Germany), or its country code written without `+`
//! (`420777123456` in Czechia).
//! What this path cannot make valid is asked of the crate's full parser
//! (carrier codes, national-prefix transforms), so they agree on the rest.

use std::cell::RefCell;
use std::rc::Rc;

use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, Type};
use regex_automata::{Anchored, Input, hybrid};

/// The libphonenumber metadata version the `phonenumber` crate carries
/// (reported as `phone_metadata` in summary.json).
pub const METADATA_VERSION: &str = "9.0.33";

/// `[N]/-P+Q`: for N-digit numbers starting with P, replace P with Q.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    digits: Option<usize>,
    remove: String,
    add: String,
}

/// `[N]` or `[N-M]`: numbers of that many digits are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidRule {
    min: usize,
    max: usize,
}

/// A digit-count range `[N]`/`[N-M]` as `(min, max)`, if the rule starts with one.
type Count = Option<(usize, usize)>;

fn parse_count(rule: &str) -> Result<(Count, &str), String> {
    let Some(rest) = rule.strip_prefix('[') else {
        return Ok((None, rule));
    };
    let (inside, rest) = rest.split_once(']').ok_or("`[` without `]`")?;
    let number = |s: &str| -> Result<usize, String> {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=20).contains(n))
            .ok_or_else(|| format!("{s:?} is not a digit count from 1 to 20"))
    };
    let range = match inside.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => (number(inside)?, number(inside)?),
    };
    if range.0 > range.1 {
        return Err(format!("[{inside}] is an empty range"));
    }
    Ok((Some(range), rest))
}

impl Transform {
    /// Parses `[11]/-7+8`, `[10]/+7`, `-00`, `[9]/+420`.
    pub fn parse(rule: &str) -> Result<Self, String> {
        let explain =
            |why: String| format!("--phone-transform {rule:?}: {why} (expected e.g. '[11]/-7+8' or '[10]/+7')");
        let (count, rest) = parse_count(rule.trim()).map_err(explain)?;
        if count.is_some_and(|(a, b)| a != b) {
            return Err(explain("a transform takes one digit count, not a range".into()));
        }
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let (remove, add) = match rest.split_once('+') {
            Some((remove, add)) => (remove, add),
            None => (rest, ""),
        };
        let remove = match remove {
            "" => "",
            r => r
                .strip_prefix('-')
                .ok_or_else(|| explain(format!("{r:?} should be -DIGITS")))?,
        };
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !digits_only(remove) || !digits_only(add) || (remove.is_empty() && add.is_empty()) {
            return Err(explain("-P and +Q must be digits, and one of them given".into()));
        }
        Ok(Transform {
            digits: count.map(|(n, _)| n),
            remove: remove.to_string(),
            add: add.to_string(),
        })
    }

    fn apply(&self, digits: &str) -> Option<String> {
        if self.digits.is_some_and(|n| n != digits.len()) || !digits.starts_with(&self.remove) {
            return None;
        }
        Some(format!("{}{}", self.add, &digits[self.remove.len()..]))
    }
}

impl ValidRule {
    pub fn parse(rule: &str) -> Result<Self, String> {
        let explain = |why: String| format!("--phone-valid {rule:?}: {why} (expected e.g. '[11]' or '[9-12]')");
        match parse_count(rule.trim()).map_err(explain)? {
            (Some((min, max)), "") => Ok(ValidRule { min, max }),
            _ => Err(explain("expected only [N] or [N-M]".into())),
        }
    }
}

/// Everything phone normalization needs besides the value and the row.
#[derive(Debug, Clone, Default)]
pub struct PhoneSettings {
    pub transforms: Vec<Transform>,
    pub valid: Vec<ValidRule>,
    /// `--default-country`, a region code.
    pub default_region: Option<&'static str>,
}

/// A region's metadata, compiled for this thread.
struct Region {
    country_code: u16,
    /// The country code as text, for building E.164 without formatting.
    code: String,
    /// No national-prefix parsing pattern beyond the plain trunk prefix:
    /// resolving numbers here is exactly libphonenumber's, so the fast path
    /// decides invalid numbers too. Otherwise (44 regions: GB, AR, BR, ...)
    /// what it cannot make valid goes to the crate's full parser.
    simple: bool,
    national_prefix: Option<String>,
    general: Pattern,
    /// Every number type's pattern (fixed line, mobile, toll free, ...) as
    /// one anchored alternation: one DFA search instead of up to ten.
    any_type: Option<Pattern>,
}

/// A pattern that must match a whole number, as a lazy DFA (states built
/// as numbers reach them, kept in this thread's cache) walked over the
/// number's bytes: a table lookup per byte. The hot path asks several of
/// these per number; through `Regex::is_match` (the same lazy DFA behind a
/// search set-up for any haystack) they were a tenth of the normalize
/// stage's time. A fully built DFA walks a little faster but takes up to
/// 30 ms per region to build (and code 1 alone has 25 regions).
struct Pattern {
    dfa: hybrid::dfa::DFA,
    cache: RefCell<hybrid::dfa::Cache>,
}

impl Pattern {
    /// `pattern` anchored at both ends; `None` if it does not compile.
    fn new(pattern: &str) -> Option<Pattern> {
        let anchored = format!("^(?:{})$", strip_layout(pattern));
        let dfa = hybrid::dfa::DFA::new(&anchored).ok()?;
        let cache = RefCell::new(dfa.create_cache());
        Some(Pattern { dfa, cache })
    }

    fn is_match(&self, text: &str) -> bool {
        let cache = &mut self.cache.borrow_mut();
        let input = Input::new(text).anchored(Anchored::Yes);
        let walked = (|| {
            let mut state = self.dfa.start_state_forward(cache, &input).ok()?;
            for &b in text.as_bytes() {
                state = self.dfa.next_state(cache, state, b).ok()?;
                if state.is_dead() {
                    return Some(false);
                }
                if state.is_quit() {
                    return None;
                }
            }
            // A DFA reports a match one step late: after the end.
            Some(self.dfa.next_eoi_state(cache, state).ok()?.is_match())
        })();
        // Configured as it is, a lazy DFA never gives up (a full cache is
        // cleared and the walk goes on) and quits only on the bytes a
        // Unicode word boundary needs, which no phone pattern has: the walk
        // always decides. Should it not, the full search is asked.
        walked.unwrap_or_else(|| matches!(self.dfa.try_search_fwd(cache, &input), Ok(Some(_))))
    }
}

impl Region {
    /// libphonenumber's `isValidNumber` for a national number: it matches
    /// one of the region's number types (which the metadata keeps within
    /// the general pattern; patterns are anchored, so they decide the
    /// length too).
    fn is_valid(&self, national: &str) -> bool {
        self.any_type.as_ref().is_some_and(|t| t.is_match(national))
    }
}

/// The metadata keeps the XML's layout (newlines and indentation inside
/// patterns), which libphonenumber strips before compiling; so do we.
fn strip_layout(pattern: &str) -> String {
    pattern.chars().filter(|c| !c.is_whitespace()).collect()
}

fn load_region(meta: &phonenumber::Metadata) -> Option<Region> {
    let d = meta.descriptors();
    let types = [
        Type::FixedLine,
        Type::Mobile,
        Type::TollFree,
        Type::PremiumRate,
        Type::SharedCost,
        Type::PersonalNumber,
        Type::Voip,
        Type::Pager,
        Type::Uan,
        Type::Voicemail,
    ]
    .into_iter()
    .filter_map(|t| d.get(t))
    .map(|desc| strip_layout(desc.national_number().as_str()))
    // "NA" marks a type the region does not have.
    .filter(|p| !p.is_empty() && p != "NA")
    .collect::<Vec<_>>();
    let any_type = (!types.is_empty()).then(|| Pattern::new(&types.join("|"))).flatten();
    let national_prefix = meta.national_prefix().map(str::to_string);
    let simple = meta
        .national_prefix_for_parsing()
        .is_none_or(|p| Some(p.as_str().trim()) == national_prefix.as_deref());
    Some(Region {
        country_code: meta.country_code(),
        code: meta.country_code().to_string(),
        simple,
        national_prefix,
        general: Pattern::new(d.general().national_number().as_str())?,
        any_type,
    })
}

/// The regions sharing one country calling code, main region first.
type RegionList = Vec<Rc<Region>>;

/// Slots of the per-thread region cache: two-letter region codes `AA`..`ZZ`.
const LETTER_SLOTS: usize = 26 * 26;
/// Country calling codes have at most three digits.
const CODE_SLOTS: usize = 1000;

/// Regions compiled on this thread (each thread has its own DFA caches,
/// so rayon workers never wait on each other). Looked up for every number,
/// so by array index, not by hashing: region codes by their two letters,
/// country codes by value.
struct RegionCache {
    by_letters: Vec<Option<Option<Rc<Region>>>>,
    by_code: Vec<Option<Rc<RegionList>>>,
}

thread_local! {
    static CACHE: RefCell<RegionCache> = RefCell::new(RegionCache {
        by_letters: vec![None; LETTER_SLOTS],
        by_code: vec![None; CODE_SLOTS],
    });
}

fn letter_slot(id: &str) -> Option<usize> {
    match id.as_bytes() {
        &[a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => Some(usize::from(a - b'A') * 26 + usize::from(b - b'A')),
        _ => None,
    }
}

fn region(id: &str) -> Option<Rc<Region>> {
    let load = || DATABASE.by_id(id).and_then(load_region).map(Rc::new);
    // Non-geographic entities ("001": +800, +882, ...) are rare enough to be
    // compiled each time they are reached by their country code.
    let Some(slot) = letter_slot(id) else {
        return load();
    };
    CACHE.with(|cache| {
        if let Some(region) = &cache.borrow().by_letters[slot] {
            return region.clone();
        }
        let region = load();
        cache.borrow_mut().by_letters[slot] = Some(region.clone());
        region
    })
}

fn regions_for_code(code: u16) -> Rc<RegionList> {
    let slot = usize::from(code);
    if slot >= CODE_SLOTS {
        return Rc::default();
    }
    CACHE.with(|cache| {
        if let Some(regions) = &cache.borrow().by_code[slot] {
            return regions.clone();
        }
        let ids = DATABASE.region(&code).unwrap_or_default();
        let regions: Rc<RegionList> = Rc::new(ids.iter().filter_map(|id| region(id)).collect());
        cache.borrow_mut().by_code[slot] = Some(regions.clone());
        regions
    })
}

/// The region code if libphonenumber's metadata knows it (`CZ` -> `CZ`).
pub fn known_region(code: &str) -> Option<&'static str> {
    DATABASE.by_id(code).map(|m| m.id()).and_then(|id| {
        // The database lives for the whole program, so its ids do too.
        let id: &'static str = DATABASE.by_id(id).map(|m| m.id())?;
        Some(id)
    })
}

/// Most digits a phone number may have (E.164 allows 15; longer input is
/// not a phone number).
const MAX_DIGITS: usize = 24;

/// Normalizes one phone value into `out` (E.164, or digits when no country
/// is known), or says why it is not a valid number.
pub fn normalize(
    value: &str,
    row_region: Option<&str>,
    settings: &PhoneSettings,
    out: &mut String,
) -> Result<(), &'static str> {
    let value = super::text::trim(value);
    let mut plus = false;
    let mut words = false;
    let mut note = false;
    let mut buf = [0u8; MAX_DIGITS];
    let mut len = 0;
    for b in value.bytes() {
        match b {
            b'0'..=b'9' => {
                if note {
                    // `777 123 456 ext. 12`, `602 111 222 or 603 …`: two
                    // numbers' worth, never one.
                    return Err("words between digits");
                }
                if len == MAX_DIGITS {
                    return Err("too many digits");
                }
                buf[len] = b;
                len += 1;
            }
            b'+' if len == 0 => plus = true,
            b' ' | b'-' | b'(' | b')' | b'.' | b'/' | b'+' => {}
            // U+00A0 (no-break space) as UTF-8.
            0xC2 | 0xA0 => {}
            // SPEC: the digits are the value with every non-digit removed
            // (`Tel. 777 123 456`, `777123456 (mobil)`); words are a label
            // before the number or a note after it.
            _ => {
                words = true;
                note = len > 0;
            }
        }
    }
    if len == 0 {
        return Err("no digits");
    }
    // Only ASCII digits were copied into buf.
    let digits = std::str::from_utf8(&buf[..len]).map_err(|_| "not a phone number")?;
    // The crate's parser (below) reads letters as a vanity number's digits
    // and `ext.` as an extension; it gets what this path read instead.
    let cleaned;
    let value = if words {
        cleaned = format!("{}{digits}", if plus { "+" } else { "" });
        cleaned.as_str()
    } else {
        value
    };
    let transformed = settings.transforms.iter().find_map(|t| t.apply(digits));
    let digits = transformed.as_deref().unwrap_or(digits);
    let international = plus || digits.starts_with("00");
    let number = if plus {
        digits
    } else {
        digits.strip_prefix("00").unwrap_or(digits)
    };
    let region_id = row_region.or(settings.default_region);
    out.clear();

    if !settings.valid.is_empty() {
        if !settings.valid.iter().any(|r| (r.min..=r.max).contains(&digits.len())) {
            return Err("digit count not allowed by --phone-valid");
        }
        match (international, region_id.and_then(region)) {
            (true, _) => {
                out.push('+');
                out.push_str(number);
            }
            (false, Some(r)) => with_country(&r, number, out),
            (false, None) => out.push_str(digits),
        }
        return Ok(());
    }

    if international {
        let Some((code_len, regions)) = (1..=3.min(number.len())).find_map(|len| {
            let code = number[..len].parse::<u16>().ok()?;
            let regions = regions_for_code(code);
            (!regions.is_empty()).then_some((len, regions))
        }) else {
            return Err("unknown country code");
        };
        if let Some(national) = valid_national(&regions, &number[code_len..]) {
            out.push('+');
            out.push_str(&number[..code_len]);
            out.push_str(national);
            return Ok(());
        }
        // libphonenumber parses an international number with the metadata
        // of its country code's main region (listed first).
        if regions.first().is_some_and(|r| r.simple) {
            return Err("not a valid number for its country");
        }
        return slow_path(value, region_id, out);
    }
    let Some(id) = region_id else {
        if (6..=15).contains(&digits.len()) {
            out.push_str(digits);
            return Ok(());
        }
        return Err("not 6 to 15 digits, and no country known");
    };
    let Some(home) = region(id) else {
        return slow_path(value, region_id, out);
    };
    let national = national_number(&home, number);
    // The row's own region first; other regions of its country code (such
    // as SJ for NO) only when that fails.
    if home.is_valid(national) || regions_for_code(home.country_code).iter().any(|r| r.is_valid(national)) {
        out.push('+');
        out.push_str(&home.code);
        out.push_str(national);
        return Ok(());
    }
    if home.simple {
        return Err("not a valid number for its country");
    }
    slow_path(value, region_id, out)
}

/// The national number of a number written without `+`, as libphonenumber
/// takes it: the country code written without `+` is dropped when the whole
/// does not fit the general pattern but the rest does (`420777123456`);
/// the trunk prefix is dropped unless only the number with it fits.
fn national_number<'a>(home: &Region, number: &'a str) -> &'a str {
    let mut national = number;
    if let Some(rest) = number.strip_prefix(home.code.as_str())
        && !home.general.is_match(number)
        && home.general.is_match(rest)
    {
        national = rest;
    }
    if let Some(stripped) = home.national_prefix.as_deref().and_then(|p| national.strip_prefix(p))
        && (!home.general.is_match(national) || home.general.is_match(stripped))
    {
        national = stripped;
    }
    national
}

/// The national number if any region of the country code accepts it (with
/// its trunk prefix stripped when that is what makes it valid, as in
/// `+49 0151…`).
fn valid_national<'a>(regions: &[Rc<Region>], national: &'a str) -> Option<&'a str> {
    if regions.iter().any(|r| r.is_valid(national)) {
        return Some(national);
    }
    regions.iter().find_map(|r| {
        let stripped = national.strip_prefix(r.national_prefix.as_deref()?)?;
        r.is_valid(stripped).then_some(stripped)
    })
}

/// E.164 for `--phone-valid` numbers: the country code is taken as written
/// when the number starts with it, else the trunk prefix is dropped.
fn with_country(region: &Region, number: &str, out: &mut String) {
    let code = region.code.as_str();
    let national = if number.starts_with(code) && number.len() > code.len() + 6 {
        &number[code.len()..]
    } else {
        region
            .national_prefix
            .as_deref()
            .and_then(|p| number.strip_prefix(p))
            .unwrap_or(number)
    };
    out.push('+');
    out.push_str(code);
    out.push_str(national);
}

/// The `phonenumber` crate's full parser, for what the fast path could not
/// make valid.
fn slow_path(value: &str, region_id: Option<&str>, out: &mut String) -> Result<(), &'static str> {
    let country = region_id.and_then(|id| id.parse::<phonenumber::country::Id>().ok());
    match phonenumber::parse(country, value) {
        Ok(number) if phonenumber::is_valid(&number) => {
            out.clear();
            out.push_str(&number.format().mode(Mode::E164).to_string());
            Ok(())
        }
        Ok(_) => Err("not a valid number for its country"),
        Err(_) => Err("not a phone number"),
    }
}

#[cfg(test)]
mod tests;
