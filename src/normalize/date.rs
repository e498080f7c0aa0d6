//! Birth dates to ISO `YYYY-MM-DD` from `YYYY-MM-DD`, `DD.MM.YYYY` (also
//! `D.M.YYYY` and the Czech `14. 3. 1985`) and `DD/MM/YYYY`. A date-time
//! from a spreadsheet (`YYYY-MM-DD HH:MM:SS`) keeps its date. The date must
//! exist (no 31 April, 29 February only in leap years).

/// Writes the ISO date into `out`, or says why the value is not a date.
pub fn normalize(value: &str, out: &mut String) -> Result<(), &'static str> {
    let value = super::text::trim(value);
    let (year, month, day) = match fixed_layout(value) {
        Some(parts) => parts,
        None => split(value)?,
    };
    let number = |s: &str, max_len: usize| -> Result<u32, &'static str> {
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("not a date");
        }
        s.parse().map_err(|_| "not a date")
    };
    if year.len() != 4 {
        return Err("year is not four digits");
    }
    let (y, m, d) = (number(year, 4)?, number(month, 2)?, number(day, 2)?);
    if !(1..=12).contains(&m) {
        return Err("no such month");
    }
    if d == 0 || d > days_in_month(y, m) {
        return Err("no such day");
    }
    // y has four digits, m and d at most two (checked above); written
    // digit by digit, without the formatter.
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    out.clear();
    out.extend([digit(y / 1000), digit(y / 100), digit(y / 10), digit(y), '-']);
    out.extend([digit(m / 10), digit(m), '-', digit(d / 10), digit(d)]);
    Ok(())
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar
/// (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month and day of a count of days since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Year, month and day of the three layouts most files use, written in
/// full (`2001-02-03`, `03.02.2001`, `03/02/2001`), known by where their
/// separators are: no search for them (the searches of [`split`] were half
/// of this module's time). Only digits elsewhere, so [`split`] would give
/// the same parts; anything else goes that way.
fn fixed_layout(value: &str) -> Option<(&str, &str, &str)> {
    let b = value.as_bytes();
    if b.len() != 10 {
        return None;
    }
    let digits_but = |separators: [usize; 2]| {
        b.iter()
            .enumerate()
            .all(|(i, c)| separators.contains(&i) || c.is_ascii_digit())
    };
    match (b[2], b[4], b[5], b[7]) {
        (_, b'-', _, b'-') if digits_but([4, 7]) => Some((&value[..4], &value[5..7], &value[8..])),
        (b'.' | b'/', _, separator, _) if separator == b[2] && digits_but([2, 5]) => {
            Some((&value[6..], &value[3..5], &value[..2]))
        }
        _ => None,
    }
}

/// Year, month and day of a trimmed value, by its separators.
fn split(value: &str) -> Result<(&str, &str, &str), &'static str> {
    let value = value.split_once([' ', 'T']).map_or(value, |(date, time)| {
        // Keep a spreadsheet's date-time date; `14. 3. 1985` has spaces too.
        if time.contains(':') { date } else { value }
    });
    if let Some((y, rest)) = value.split_once('-') {
        let (m, d) = rest.split_once('-').ok_or("not a date")?;
        Ok((y, m, d))
    } else if value.contains('.') {
        let mut parts = value.split('.').map(str::trim);
        let (d, m, y) = (parts.next(), parts.next(), parts.next());
        if parts.next().is_some_and(|p| !p.is_empty()) {
            return Err("not a date");
        }
        Ok((y.ok_or("not a date")?, m.ok_or("not a date")?, d.ok_or("not a date")?))
    } else if let Some((d, rest)) = value.split_once('/') {
        let (m, y) = rest.split_once('/').ok_or("not a date")?;
        Ok((y, m, d))
    } else {
        Err("not a date")
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &str) -> Result<String, &'static str> {
        let mut out = String::new();
        normalize(v, &mut out).map(|()| out)
    }

    #[test]
    fn accepted_forms() {
        for v in [
            "1985-03-14",
            "14.03.1985",
            "14.3.1985",
            "14. 3. 1985",
            "14/03/1985",
            " 1985-03-14 00:00:00",
        ] {
            assert_eq!(norm(v).as_deref(), Ok("1985-03-14"), "{v}");
        }
        assert_eq!(norm("29.02.2000").as_deref(), Ok("2000-02-29"));
    }

    #[test]
    fn fixed_layouts_read_as_the_general_way() {
        for v in [
            "2001-02-03",
            "03.02.2001",
            "03/02/2001",
            "2001-2-003",
            "03.02/2001",
            "03/02.2001",
            "2001.02.03",
            "1a.02.2001",
            "31.04.1990",
            "2000-02-29",
            "03.02.201\u{e9}",
            "2001-02-3 ",
            "1-34-67-90",
            "12.3a.1985",
            "2001-0a-03",
        ] {
            let value = v.trim();
            if let Some(parts) = fixed_layout(value) {
                assert_eq!(split(value), Ok(parts), "{v}");
            }
        }
        // Every other value takes the general way (with its own errors).
        assert_eq!(fixed_layout("1-34-67-90"), None);
        assert_eq!(norm("1-34-67-90"), Err("year is not four digits"));
        assert_eq!(fixed_layout("2001-02-03"), Some(("2001", "02", "03")));
        assert_eq!(fixed_layout("03.02/2001"), None);
        assert_eq!(fixed_layout("03/02/2001"), Some(("2001", "02", "03")));
    }

    #[test]
    fn rejected() {
        for v in [
            "31.04.1990",
            "29.02.1900",
            "1985-13-01",
            "14.03.85",
            "March 14, 1985",
            "14-03",
            "",
            "1985/03/14",
        ] {
            assert!(norm(v).is_err(), "{v}");
        }
    }
}
