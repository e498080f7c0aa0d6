//! Callback times of a campaign's members (`--callback-column`): the date
//! forms `birth_date` accepts (`2026-12-01`, `01.12.2026`, `1. 12. 2026`,
//! `01/12/2026`) with an optional time `HH:MM[:SS]` after a space or a
//! `T`. A date alone is midnight. Stored as a timestamp without a zone
//! (the wall-clock time the file gave), written back as
//! `2026-12-01T14:30:00`.

use crate::normalize::date;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// The callback time of a cell in microseconds since 1970-01-01 00:00;
/// `None` for an empty cell; why it is no date-time otherwise.
pub fn parse(value: &str) -> Result<Option<i64>, &'static str> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    // The time is the last part after a space or a `T`, when it has a
    // colon (`1. 12. 2026 14:30` has spaces in its date too).
    let (day, time) = match value.rfind([' ', 'T']) {
        Some(at) if value[at + 1..].contains(':') => (value[..at].trim_end(), Some(&value[at + 1..])),
        _ => (value, None),
    };
    let mut iso = String::new();
    date::normalize(day, &mut iso)?;
    let (y, m, d) = (number(&iso[..4])?, number(&iso[5..7])?, number(&iso[8..10])?);
    let seconds = match time {
        Some(time) => clock(time)?,
        None => 0,
    };
    let days = date::days_from_civil(y, m, d);
    Ok(Some((days * SECONDS_PER_DAY + seconds) * MICROS_PER_SECOND))
}

/// `HH:MM` or `HH:MM:SS` as seconds after midnight.
fn clock(time: &str) -> Result<i64, &'static str> {
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next(), parts.next(), parts.next());
    if parts.next().is_some() {
        return Err("not a time (HH:MM or HH:MM:SS)");
    }
    let part = |p: Option<&str>, max: i64| -> Result<i64, &'static str> {
        match p {
            Some(p) if (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                let n = number(p)?;
                if n <= max { Ok(n) } else { Err("no such time") }
            }
            _ => Err("not a time (HH:MM or HH:MM:SS)"),
        }
    };
    let (h, m) = (part(h, 23)?, part(m, 59)?);
    let s = if s.is_some() { part(s, 59)? } else { 0 };
    Ok(h * 3600 + m * 60 + s)
}

fn number(digits: &str) -> Result<i64, &'static str> {
    digits.parse().map_err(|_| "not a date")
}

/// A callback time as written to the row files: `2026-12-01T14:30:00`.
pub fn format(micros: i64) -> String {
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    let (days, in_day) = (seconds.div_euclid(SECONDS_PER_DAY), seconds.rem_euclid(SECONDS_PER_DAY));
    let (y, m, d) = date::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(value: &str) -> String {
        format(parse(value).expect(value).expect("a value"))
    }

    #[test]
    fn accepts_the_date_forms_of_birth_date_with_an_optional_time() {
        assert_eq!(iso("2026-12-01"), "2026-12-01T00:00:00");
        assert_eq!(iso(" 2026-12-01 14:30 "), "2026-12-01T14:30:00");
        assert_eq!(iso("2026-12-01T14:30:05"), "2026-12-01T14:30:05");
        assert_eq!(iso("01.12.2026 9:05"), "2026-12-01T09:05:00");
        assert_eq!(iso("1. 12. 2026 09:05:59"), "2026-12-01T09:05:59");
        assert_eq!(iso("01/12/2026 23:59"), "2026-12-01T23:59:00");
        assert_eq!(iso("29.02.2028"), "2028-02-29T00:00:00");
        assert_eq!(iso("1969-12-31 23:59:59"), "1969-12-31T23:59:59");
        assert_eq!(parse("  "), Ok(None));
        // The epoch itself, and a known instant: 2026-12-01 14:30 UTC.
        assert_eq!(parse("1970-01-01"), Ok(Some(0)));
        assert_eq!(parse("2026-12-01 14:30"), Ok(Some(1_796_135_400_000_000)));
    }

    #[test]
    fn refuses_what_is_no_date_time() {
        for bad in [
            "tomorrow",
            "2026-13-01",
            "31.04.2026",
            "29.02.2027",
            "2026-12-01 24:00",
            "2026-12-01 14:60",
            "2026-12-01 14:30:61",
            "2026-12-01 14",
            "2026-12-01 14:30:00:00",
            "2026-12-01 1430:",
            "12/2026",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
