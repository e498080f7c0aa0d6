//! `kontakt preview FILE|- [input flags] [--rows N] [--json]`: what was
//! detected, the columns, the first rows as read, and the suggested mapping.

use std::io::{self, Write};

use clap::Args;
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

use super::InputArgs;
use crate::error::{Error, Result};
use crate::map;
use crate::read::{self, BadRow, Input, Table};

/// Inputs up to this size are counted to the end for `total_rows`; larger
/// ones report `null` so a preview stays quick.
const COUNT_LIMIT_BYTES: u64 = 256 << 20;

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Contact file (CSV/TSV/TXT or XLSX), or `-` for a table pasted on standard input.
    pub file: String,

    #[command(flatten)]
    pub input: InputArgs,

    /// How many data rows to show.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub rows: usize,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The preview as SPEC lists it (`--json` prints exactly this).
#[derive(Debug, Serialize)]
struct Preview {
    format: &'static str,
    encoding: &'static str,
    delimiter: String,
    quote: String,
    header: bool,
    /// Records (CSV) or sheet rows (XLSX) skipped above the header.
    skip_rows: usize,
    /// `--skip-rows` that would skip what looks like a title above the table.
    suggested_skip_rows: Option<usize>,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Source row number of each entry of `rows` (for the text view).
    #[serde(skip)]
    row_numbers: Vec<u64>,
    /// Rows among the first N that are not rows of the table (`bad_row`).
    bad_rows: Vec<BadRowView>,
    mapping: serde_json::Map<String, serde_json::Value>,
    total_rows: Option<u64>,
}

#[derive(Debug, Serialize)]
struct BadRowView {
    row: u64,
    detail: String,
    fields: Vec<String>,
}

pub fn run(args: &PreviewArgs) -> Result<()> {
    let options = args.input.resolve()?;
    let input = Input::from_arg(&args.file);
    let table = read::open(&input, &options)?;
    let preview = collect(table, args.rows)?;
    let mut out = io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer(&mut out, &preview)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        print_text(&mut out, &input, &preview)
    };
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| Error::io("<stdout>", e)),
    }
}

fn collect(table: Table, limit: usize) -> Result<Preview> {
    let detected = table.detected.clone();
    let columns = table.columns.clone();
    let count_all = table.size.is_none_or(|s| s <= COUNT_LIMIT_BYTES);
    let mut rows = Vec::new();
    let mut shown = Vec::new();
    let mut bad_rows = Vec::new();
    let mut total = 0u64;
    let mut finished = true;
    for batch in table {
        let batch = batch?;
        let row_numbers = batch.rows();
        for i in 0..batch.num_rows() {
            if row_numbers.value(i) as usize <= limit {
                shown.push(row_numbers.value(i));
                rows.push(
                    (0..columns.len())
                        .map(|c| batch.column(c).value(i).to_string())
                        .collect(),
                );
            }
        }
        bad_rows.extend(batch.bad_rows.iter().filter(|b| b.row as usize <= limit).map(view));
        total += (batch.num_rows() + batch.bad_rows.len()) as u64;
        if !count_all && total as usize >= limit {
            finished = false;
            break;
        }
    }
    let mapping = map::suggest_mapping(&columns)
        .into_iter()
        .map(|(i, target)| (columns[i].clone(), serde_json::Value::from(target.name())))
        .collect();
    Ok(Preview {
        format: detected.format.name(),
        encoding: detected.encoding.name(),
        delimiter: (detected.delimiter as char).to_string(),
        quote: (detected.quote as char).to_string(),
        header: detected.header,
        skip_rows: detected.skip_rows,
        suggested_skip_rows: detected.suggested_skip_rows,
        columns,
        rows,
        row_numbers: shown,
        bad_rows,
        mapping,
        total_rows: finished.then_some(total),
    })
}

fn view(bad: &BadRow) -> BadRowView {
    BadRowView {
        row: bad.row,
        detail: bad.detail.clone(),
        fields: bad.fields.clone(),
    }
}

/// Widest a column is printed in the text view.
const CELL_WIDTH: usize = 24;

fn print_text(out: &mut impl Write, input: &Input, p: &Preview) -> io::Result<()> {
    let delimiter = match p.delimiter.as_str() {
        "\t" => "tab".to_string(),
        d => format!("'{d}'"),
    };
    writeln!(out, "file:      {input}")?;
    if p.format == "xlsx" {
        writeln!(out, "format:    xlsx   header: {}", yes_no(p.header))?;
    } else {
        writeln!(
            out,
            "format:    {}   encoding: {}   delimiter: {delimiter}   quote: '{}'   header: {}",
            p.format,
            p.encoding,
            p.quote,
            yes_no(p.header)
        )?;
    }
    if p.skip_rows > 0 {
        writeln!(out, "skipped:   {} rows above the header (--skip-rows)", p.skip_rows)?;
    }
    match p.total_rows {
        Some(n) => writeln!(out, "rows:      {n}")?,
        None => writeln!(out, "rows:      not counted (large input)")?,
    }
    if let Some(n) = p.suggested_skip_rows {
        writeln!(out, "note:      {}", title_note(n))?;
    }
    writeln!(out, "\ncolumns and suggested mapping:")?;
    let name_width = p.columns.iter().map(|c| clip(c, 40).width()).max().unwrap_or(0);
    for (i, column) in p.columns.iter().enumerate() {
        let target = p
            .mapping
            .get(column)
            .and_then(|v| v.as_str())
            .map_or_else(|| "(not mapped)".to_string(), |f| format!("-> {f}"));
        writeln!(
            out,
            "  {:>3}  {}  {target}",
            i + 1,
            super::pad(&clip(column, 40), name_width, false)
        )?;
    }
    writeln!(out, "\nfirst {} rows:", p.rows.len())?;
    let widths: Vec<usize> = p
        .columns
        .iter()
        .enumerate()
        .map(|(c, name)| {
            p.rows
                .iter()
                .map(|r| clip(&r[c], CELL_WIDTH).width())
                .chain(std::iter::once(clip(name, CELL_WIDTH).width()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| -> String {
        let mut s = String::from("  row  ");
        for (cell, w) in cells.iter().zip(&widths) {
            s.push_str(&super::pad(cell, *w, false));
            s.push_str("  ");
        }
        s.trim_end().to_string()
    };
    writeln!(out, "{}", line(p.columns.iter().map(|c| clip(c, CELL_WIDTH)).collect()))?;
    for (row, number) in p.rows.iter().zip(&p.row_numbers) {
        let cells: Vec<String> = row.iter().map(|v| clip(v, CELL_WIDTH)).collect();
        let text = line(cells);
        writeln!(out, "  {number:>3}{}", &text["  row".len()..])?;
    }
    if !p.bad_rows.is_empty() {
        writeln!(out, "\nrows that are not rows of the table (bad_row):")?;
        for bad in &p.bad_rows {
            writeln!(out, "  row {}: {}", bad.row, bad.detail)?;
        }
    }
    // Again last, where the eye lands after a preview gone wrong.
    if let Some(n) = p.suggested_skip_rows {
        writeln!(out, "\n{}", title_note(n))?;
    }
    Ok(())
}

fn title_note(n: usize) -> String {
    let lines = if n == 1 { "line" } else { "lines" };
    format!("looks like {n} title {lines} above the table: try --skip-rows {n}")
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// A cell fit for one line of at most `width` terminal columns: control
/// characters shown as spaces, cut with `…`.
fn clip(text: &str, width: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if clean.width() <= width {
        return clean;
    }
    let mut cut = String::new();
    let mut used = 0;
    for c in clean.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        used += w;
        cut.push(c);
    }
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::clip;
    use unicode_width::UnicodeWidthStr;

    #[test]
    fn a_cell_is_clipped_to_the_columns_it_takes_on_a_terminal() {
        assert_eq!(clip("Jiří", 4), "Jiří");
        // Each CJK character takes two columns.
        assert_eq!(clip("李小龙李小龙", 5), "李小…");
        assert_eq!(clip("李小龙李小龙", 6), "李小…");
        assert!(clip("李小龙李小龙", 6).width() <= 6);
        assert_eq!(clip("a\tb", 5), "a b");
    }
}
