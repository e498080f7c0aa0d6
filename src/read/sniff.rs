//! Dialect sniffing from a sample of the input (the first `SAMPLE_BYTES`).
//!
//! The delimiter is judged by how consistently each candidate splits whole
//! records into the same number of fields, parsing quotes as the reader will
//! (so a `;` file whose quoted fields hold commas is still `;`), never by
//! counting characters in a fixed chunk. The header is judged by the first
//! row's cells alone: it is a header unless it looks like data.

use crate::map;

/// How much of the input the sniffer looks at.
pub const SAMPLE_BYTES: usize = 1 << 20;

/// Records looked at per candidate dialect.
const SAMPLE_RECORDS: usize = 2000;

/// Candidate delimiters, in order of preference on a tie.
pub const DELIMITERS: [u8; 5] = [b',', b';', b'\t', b'|', b':'];
const QUOTES: [u8; 2] = [b'"', b'\''];

/// The share of records with the modal field count above which a candidate
/// counts as consistent (tolerates a few ragged rows).
const CONSISTENT: f64 = 0.9;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Score {
    consistent: bool,
    fields: usize,
    share: f64,
    enclosed: usize,
}

/// Splits `sample` into records of fields the way an RFC 4180 parser does
/// (a quote opens a quoted field only at the field's start; a doubled quote
/// inside is a literal quote), skipping blank lines. When `complete` is false
/// the last record may be cut by the sample's edge and is dropped.
pub(crate) fn split_records(sample: &[u8], delimiter: u8, quote: u8, complete: bool, limit: usize) -> Vec<Vec<&[u8]>> {
    let mut records = Vec::new();
    let mut record: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    let n = sample.len();
    let mut field_start = 0;
    let mut in_quotes = false;
    let mut quoted_field = false;
    while i < n && records.len() < limit {
        let b = sample[i];
        if in_quotes {
            if b == quote {
                if i + 1 < n && sample[i + 1] == quote {
                    i += 2;
                    continue;
                }
                in_quotes = false;
            }
            i += 1;
            continue;
        }
        if i == field_start && b == quote {
            in_quotes = true;
            quoted_field = true;
            i += 1;
            continue;
        }
        if b == delimiter {
            record.push(field(&sample[field_start..i], quoted_field, quote));
            quoted_field = false;
            i += 1;
            field_start = i;
        } else if b == b'\n' || b == b'\r' {
            let end = i;
            if b == b'\r' && i + 1 < n && sample[i + 1] == b'\n' {
                i += 1;
            }
            i += 1;
            if !(record.is_empty() && end == field_start) {
                record.push(field(&sample[field_start..end], quoted_field, quote));
                records.push(std::mem::take(&mut record));
            }
            quoted_field = false;
            field_start = i;
        } else {
            i += 1;
        }
    }
    if complete && records.len() < limit && (field_start < n || !record.is_empty()) && !in_quotes {
        record.push(field(&sample[field_start..n], quoted_field, quote));
        records.push(record);
    }
    records
}

/// A field's content: enclosing quotes removed (doubled quotes are left
/// doubled; the sniffer only needs to recognise values).
fn field(raw: &[u8], quoted: bool, quote: u8) -> &[u8] {
    if quoted && raw.len() >= 2 && raw[0] == quote && raw[raw.len() - 1] == quote {
        &raw[1..raw.len() - 1]
    } else {
        raw
    }
}

fn score(sample: &[u8], delimiter: u8, quote: u8, complete: bool) -> Option<Score> {
    let records = split_records(sample, delimiter, quote, complete, SAMPLE_RECORDS);
    if records.is_empty() {
        return None;
    }
    let mut counts: Vec<usize> = records.iter().map(Vec::len).collect();
    counts.sort_unstable();
    // Modal field count (the larger on a tie).
    let (mut fields, mut best, mut run) = (0, 0, 0);
    for (i, &c) in counts.iter().enumerate() {
        run = if i > 0 && counts[i - 1] == c { run + 1 } else { 1 };
        if run >= best {
            best = run;
            fields = c;
        }
    }
    let share = best as f64 / records.len() as f64;
    let enclosed = count_enclosed(sample, delimiter, quote);
    Some(Score {
        consistent: share >= CONSISTENT,
        fields,
        share,
        enclosed,
    })
}

/// Fields that begin right after a line start or delimiter with the quote
/// character: evidence that this character is the enclosure. A `'` before
/// `= + - @` is the prefix `--excel-safe` writes, not an enclosure.
fn count_enclosed(sample: &[u8], delimiter: u8, quote: u8) -> usize {
    let mut count = 0;
    let mut prev = b'\n';
    for (i, &b) in sample.iter().enumerate() {
        let excel_safe = b == b'\'' && matches!(sample.get(i + 1), Some(b'=' | b'+' | b'-' | b'@'));
        if b == quote && !excel_safe && (prev == delimiter || prev == b'\n' || prev == b'\r') {
            count += 1;
        }
        prev = b;
    }
    count
}

/// Picks the delimiter and quote: among candidates that split records into
/// at least two fields, consistent ones beat inconsistent ones, then more
/// fields beat fewer, then a higher share of modal records. The quote is `"`
/// unless `'` encloses fields and `"` encloses none. A file where nothing
/// splits is a one-column table (delimiter `,`).
pub fn detect_dialect(sample: &[u8], complete: bool, delimiter: Option<u8>, quote: Option<u8>) -> (u8, u8) {
    let quote = quote.unwrap_or_else(|| {
        let double = DELIMITERS
            .iter()
            .map(|&d| count_enclosed(sample, d, b'"'))
            .sum::<usize>();
        let single = DELIMITERS
            .iter()
            .map(|&d| count_enclosed(sample, d, b'\''))
            .sum::<usize>();
        if double == 0 && single > 0 { b'\'' } else { QUOTES[0] }
    });
    if let Some(delimiter) = delimiter {
        return (delimiter, quote);
    }
    let mut best: Option<(u8, Score)> = None;
    for &candidate in &DELIMITERS {
        let Some(s) = score(sample, candidate, quote, complete) else {
            continue;
        };
        if s.fields < 2 {
            continue;
        }
        let better = match &best {
            None => true,
            Some((_, b)) => (s.consistent, s.fields, s.share) > (b.consistent, b.fields, b.share),
        };
        if better {
            best = Some((candidate, s));
        }
    }
    (best.map_or(b',', |(d, _)| d), quote)
}

/// Decides whether the first record is a header, as a CRM import wizard
/// does with "header row" ticked: it is, unless it looks like data (SPEC):
/// one of its cells is a value (an email, a phone number, a date, a
/// number), or it has an empty or a repeated cell. Empty cells at its end
/// (a trailing delimiter) are no cells, as in every record.
pub fn detect_header(first: &[String]) -> bool {
    let cells = &first[..filled_width(first)];
    if cells.iter().any(|c| c.trim().is_empty() || looks_like_value(c)) {
        return false;
    }
    let mut distinct: Vec<String> = cells.iter().map(|c| c.trim().to_lowercase()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    !cells.is_empty() && distinct.len() == cells.len()
}

/// The cells of a row up to its last filled one: empty cells at its end
/// (a trailing delimiter, a sheet's unused columns) are no cells.
pub fn filled_width(cells: &[String]) -> usize {
    cells.iter().rposition(|c| !c.trim().is_empty()).map_or(0, |i| i + 1)
}

/// Records looked at for title lines above a table.
pub const TITLE_RECORDS: usize = 10;

/// How many leading records are plainly a title above the table, not the
/// table: a first filled record of one cell (not a value, not a field name)
/// and any more such or empty records, then a record with two filled cells
/// or more. `records` are the first records of the input, empty ones
/// included (as an empty record or one of empty cells), as `--skip-rows`
/// counts them. `None` when the table starts at once, or nothing wider
/// follows within the records given.
pub fn title_rows(records: &[Vec<String>]) -> Option<usize> {
    let mut titled = false;
    for (i, record) in records.iter().enumerate() {
        let filled: Vec<&str> = record.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect();
        match filled.as_slice() {
            [] => {}
            [cell] if !looks_like_value(cell) && map::suggest_field(cell).is_none() => titled = true,
            [_] => return None,
            _ => return titled.then_some(i),
        }
    }
    None
}

/// A cell that is data, not a column name: has an `@`, or is made of digits
/// and number/phone/date punctuation (`1`, `-5`, `12.5`, `+420 777 123 456`,
/// `14.3.1985`, `2024-01-02 13:45`).
pub(crate) fn looks_like_value(cell: &str) -> bool {
    let cell = cell.trim();
    if cell.contains('@') {
        return true;
    }
    cell.bytes().any(|b| b.is_ascii_digit()) && cell.bytes().all(|b| b.is_ascii_digit() || b" +-()./:,".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect(text: &str) -> (char, char) {
        let (d, q) = detect_dialect(text.as_bytes(), true, None, None);
        (d as char, q as char)
    }

    #[test]
    fn splits_rfc4180_records() {
        let records = split_records(b"a,\"b,\"\"c\"\"\"\r\n\r\n\"x\ny\",z", b',', b'"', true, 10);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0], vec![&b"a"[..], &b"b,\"\"c\"\""[..]]);
        assert_eq!(records[1], vec![&b"x\ny"[..], &b"z"[..]]);
        // An incomplete sample drops its cut last record.
        assert_eq!(split_records(b"a,b\nc,d", b',', b'"', false, 10).len(), 1);
    }

    #[test]
    fn semicolon_file_with_quoted_commas() {
        let text = "name;address;email\n\"Novák, Jan\";\"Dlouhá 5, Praha\";jan@x.cz\n\"Svoboda, Petr\";\"Krátká 1, Brno\";petr@y.cz\n";
        assert_eq!(dialect(text), (';', '"'));
    }

    #[test]
    fn excel_safe_prefix_is_not_an_enclosure() {
        let text = "row,note,company\n1,'=1+2,'@acme\n2,'-5,'+plus\n";
        assert_eq!(dialect(text), (',', '"'));
    }

    #[test]
    fn comma_file_with_quoted_semicolons() {
        let text = "name,tags,email\nJan,\"a;b;c\",jan@x.cz\nPetr,\"d;e\",petr@y.cz\nEva,x,eva@z.cz\n";
        assert_eq!(dialect(text), (',', '"'));
    }

    #[test]
    fn unquoted_commas_in_a_semicolon_file() {
        let text =
            "name;address;city\nJan;Dlouhá 5, vchod B;Praha\nPetr;Krátká 1;Brno\nEva;Nová 3, 2. patro, byt 4;Olomouc\n";
        assert_eq!(dialect(text), (';', '"'));
    }

    #[test]
    fn tab_pipe_colon_and_single_quotes() {
        assert_eq!(dialect("a\tb\tc\n1\t2\t3\n"), ('\t', '"'));
        assert_eq!(dialect("a|b\n1|2\n3|4\n"), ('|', '"'));
        assert_eq!(dialect("a:b:c\n1:2:3\n"), (':', '"'));
        assert_eq!(dialect("'a,b',c\n'd,e',f\n"), (',', '\''));
        // Apostrophes inside names do not make ' the quote.
        assert_eq!(dialect("name,email\nO'Brien,o@x.ie\n\"Doe, J\",j@x.com\n"), (',', '"'));
    }

    #[test]
    fn one_column_file() {
        assert_eq!(dialect("email\na@x.cz\nb@y.cz\n"), (',', '"'));
    }

    #[test]
    fn flags_override() {
        assert_eq!(detect_dialect(b"a;b\n", true, Some(b'|'), Some(b'\'')), (b'|', b'\''));
    }

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn title_lines_above_a_table() {
        let records = |rows: &[&[&str]]| -> Vec<Vec<String>> { rows.iter().map(|r| strings(r)).collect() };
        let title = records(&[&["Export 2026-11-30"], &[], &["name", "email"], &["Jan", "j@x.cz"]]);
        assert_eq!(title_rows(&title), Some(2));
        // Excel writes the title's row as wide as the table.
        let excel = records(&[&["Kontakty", "", ""], &["", "", ""], &["a", "b", "c"]]);
        assert_eq!(title_rows(&excel), Some(2));
        let two = records(&[&["Leads"], &["exported by Eva"], &["name", "email"]]);
        assert_eq!(title_rows(&two), Some(2));
        // The table at once, a one-column table, a lone value, a lone field name.
        assert_eq!(title_rows(&records(&[&["name", "email"], &["Jan", "j@x.cz"]])), None);
        assert_eq!(title_rows(&records(&[&["email"], &["j@x.cz"]])), None);
        assert_eq!(title_rows(&records(&[&["j@x.cz", ""], &["a@x.cz", "Jan"]])), None);
        assert_eq!(title_rows(&records(&[&["email", ""], &["a@x.cz", "Jan"]])), None);
        // Nothing wider below: no table to be above.
        assert_eq!(title_rows(&records(&[&["Export"], &[]])), None);
    }

    #[test]
    fn header_detection() {
        assert!(detect_header(&strings(&["Jméno", "E-mail", "Telefon"])));
        assert!(detect_header(&strings(&["who", "where", "how"])));
        // Words above small numbers: the wizard's default, a header.
        assert!(detect_header(&strings(&["a", "b", "c"])));
        assert!(detect_header(&strings(&["alpha", "beta"])));
        // Empty cells at the end (a trailing delimiter) are no cells.
        assert!(detect_header(&strings(&["name", "email", "", " "])));
        assert!(!detect_header(&strings(&["Jan", "jan@x.cz", "+420 777 123 456"])));
        assert!(!detect_header(&strings(&["Jan", "Novák", "1985-02-03"])));
        assert!(!detect_header(&strings(&["1", "2", "3"])));
        assert!(!detect_header(&strings(&["Jan", "12.5"])));
        assert!(!detect_header(&strings(&["x", "x", "y"])));
        assert!(!detect_header(&strings(&["who", "", "how"])));
        assert!(!detect_header(&strings(&["", "", ""])));
        // SPEC's rule holds for field names too: a repeated, an empty or
        // a value cell makes the row data.
        assert!(!detect_header(&strings(&["email", "Email", "city"])));
        assert!(!detect_header(&strings(&["Name", "Email", "", "City"])));
        assert!(!detect_header(&strings(&["Email", "Phone", "2024"])));
    }
}
