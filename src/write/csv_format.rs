//! CSV records formatted by hand (RFC 4180, byte for byte as the `csv`
//! crate writes them), and the category files' row loop: most of what an
//! import writes, so written for speed.

use arrow::array::{Array, StringArray};

use super::{RowOut, WriteJob, is_formula_bytes, safe_cell, write_matched_ids};
use crate::error::Result;
use crate::matching::MatchedBy;

/// Appends one CSV field (RFC 4180, as the `csv` crate writes it): quoted,
/// with `"` doubled, only when it holds a delimiter, a quote or a line end.
/// (Formatting here instead of through `csv::Writer`, whose per-byte state
/// machine was the writer thread's main cost.)
pub(crate) fn push_csv_field(buf: &mut Vec<u8>, field: &[u8]) {
    if !needs_quoting(field) {
        buf.extend_from_slice(field);
        return;
    }
    buf.push(b'"');
    for part in field.split_inclusive(|&b| b == b'"') {
        buf.extend_from_slice(part);
        if part.last() == Some(&b'"') {
            buf.push(b'"');
        }
    }
    buf.push(b'"');
}

/// Whether bytes hold a delimiter, a quote or a line end (a field that does
/// is quoted).
pub(super) fn needs_quoting(bytes: &[u8]) -> bool {
    memchr::memchr3(b',', b'"', b'\n', bytes).is_some() || memchr::memchr(b'\r', bytes).is_some()
}

/// What the cells of a batch's category rows are made of.
pub(super) struct Cells<'a> {
    pub(super) job: &'a WriteJob,
    /// The contact ids of [`WriteJob::matched`].
    pub(super) matched_ids: &'a [i64],
    /// The normalized field columns.
    pub(super) columns: &'a [&'a StringArray],
    /// Each field's name and whether it is a phone.
    pub(super) fields: &'a [(String, bool)],
    /// Per field column: nothing in it needs quoting.
    pub(super) plain: &'a [bool],
    pub(super) excel_safe: bool,
    /// The file has the `matched_ids` and `matched_by` columns.
    pub(super) matches: bool,
}

/// Formats the rows of one category file as CSV: the cells of
/// [`Outputs::write_category`], in a loop of its own (the category files
/// are most of what an import writes, and a generic record of optional
/// cells cost a fifth of the writer's time). `flush` is called after each
/// row.
pub(super) fn csv_rows(
    buf: &mut Vec<u8>,
    mut flush: impl FnMut(&mut Vec<u8>) -> Result<()>,
    rows: &[RowOut],
    cells: &Cells,
) -> Result<()> {
    let Cells {
        job,
        matched_ids,
        columns,
        fields,
        plain,
        excel_safe,
        matches,
    } = *cells;
    let row_numbers = job.norm.row_numbers();
    let mut number = itoa::Buffer::new();
    for (k, out) in rows.iter().enumerate() {
        // The cells of the rows a block ahead: each column is read in a
        // run of its own (offsets and bytes), which the CPU's own
        // prefetcher does not follow for a dozen columns at once.
        if k % PREFETCH_ROWS == 0 {
            let ahead = &rows[(k + PREFETCH_ROWS).min(rows.len())..(k + 2 * PREFETCH_ROWS).min(rows.len())];
            // Rows come in batch order; a block that did not would only
            // go without its prefetch.
            if let (Some(first), Some(last)) = (ahead.first(), ahead.last())
                && first.index <= last.index
            {
                let (first, last) = (first.index as usize, last.index as usize + 1);
                for column in columns {
                    let offsets = column.value_offsets();
                    crate::prefetch::slice(&offsets[first..=last]);
                    let data = column.value_data();
                    crate::prefetch::slice(&data[offsets[first] as usize..offsets[last] as usize]);
                }
            }
        }
        let i = out.index as usize;
        buf.extend_from_slice(number.format(row_numbers.value(i)).as_bytes());
        buf.push(b',');
        buf.extend_from_slice(out.action.as_str().as_bytes());
        if matches {
            buf.push(b',');
            write_matched_ids(buf, out.matched(matched_ids));
            buf.push(b',');
            buf.extend_from_slice(out.matched_by.map_or("", MatchedBy::as_str).as_bytes());
        }
        for ((column, (_, is_phone)), &plain) in columns.iter().zip(fields).zip(plain) {
            buf.push(b',');
            if column.is_valid(i) {
                let (data, offsets) = (column.value_data(), column.value_offsets());
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                if plain && !(excel_safe && !is_phone && is_formula_bytes(&data[start..end])) {
                    push_short(buf, data, start, end);
                } else {
                    let cell = safe_cell(excel_safe && !is_phone, column.value(i));
                    push_csv_field(buf, cell.as_bytes());
                }
            }
        }
        buf.push(b'\n');
        flush(buf)?;
    }
    Ok(())
}

/// Rows of a category file whose cells are prefetched together, a block
/// ahead of the row being written (the writer's own samples at 10M x 10M:
/// 4.9% -> 3.9% of the import's; 64 rows: 4.2%).
const PREFETCH_ROWS: usize = 32;

/// Appends `data[start..end]`. Most cells are short, and a copy of a
/// length known only at run time is a call to `memcpy` each; a cell of up
/// to [`SHORT`] bytes with that many bytes after its start is copied as a
/// block of [`SHORT`] bytes (a couple of vector moves) and the excess cut
/// off. (The writer's row loop was a tenth of a 10M-row import's CPU, a
/// third of it in those calls; what this saves alone was inside the
/// machine's noise.)
#[inline]
fn push_short(buf: &mut Vec<u8>, data: &[u8], start: usize, end: usize) {
    match data.get(start..start + SHORT) {
        Some(block) if end - start <= SHORT => {
            let len = buf.len() + (end - start);
            buf.extend_from_slice(block);
            buf.truncate(len);
        }
        _ => buf.extend_from_slice(&data[start..end]),
    }
}

/// The block [`push_short`] copies.
const SHORT: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_cells_are_copied_exactly_wherever_they_are_in_the_buffer() {
        // Cells of every length up to past SHORT, starting everywhere, so
        // some end at the buffer's end with fewer than SHORT bytes after
        // their start (the plain copy) and some have more (the block copy).
        let data: Vec<u8> = (0..100u8).map(|b| b'a' + b % 26).collect();
        for start in 0..data.len() {
            for end in start..=data.len().min(start + SHORT + 3) {
                let mut buf = b"x,".to_vec();
                push_short(&mut buf, &data, start, end);
                assert_eq!(&buf[2..], &data[start..end], "{start}..{end}");
                assert_eq!(&buf[..2], b"x,");
            }
        }
    }

    #[test]
    fn csv_fields_are_written_as_the_csv_crate_writes_them() {
        let fields = [
            "plain",
            "",
            "a,b",
            "say \"hi\"",
            "\"",
            "line one\nline two",
            "cr\r",
            "=1+2",
            " spaced ",
            "Ødegård",
        ];
        let mut ours = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                ours.push(b',');
            }
            push_csv_field(&mut ours, f.as_bytes());
        }
        ours.push(b'\n');
        let mut theirs = csv::Writer::from_writer(Vec::new());
        theirs.write_record(fields).expect("write");
        assert_eq!(
            String::from_utf8(ours).expect("utf-8"),
            String::from_utf8(theirs.into_inner().expect("flush")).expect("utf-8")
        );
    }
}
