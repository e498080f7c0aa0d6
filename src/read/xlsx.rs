//! XLSX through calamine's streaming cell reader: cells arrive in row order
//! and become batches, so memory holds one batch plus the workbook's shared
//! strings, never the whole sheet as cells.
//!
//! Every cell is read as text: integer-valued numbers without a decimal part
//! or exponent (a phone 420777123456 stays `420777123456`, never
//! `4.20777123456e11`), dates as `YYYY-MM-DD`, date-times as
//! `YYYY-MM-DD HH:MM:SS`. Fully empty rows are skipped and not counted.
//!
//! The workbook is owned by a thread of its own (the cell reader borrows it):
//! the thread sends the head (columns, header decision) first, then batches.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use calamine::{DataRef, Reader, Xlsx, open_workbook_from_rs};

use super::batch::{BadRow, BatchBuilder, raw_schema};
use super::encoding::Encoding;
use super::sniff;
use super::{Detected, Format, Input, RawBatch, ReadOptions, Table, header_columns, numbered_columns};
use crate::error::{Error, Result};

/// Rows per batch for XLSX (a sheet holds at most 1,048,576 rows).
const BATCH_ROWS: usize = 64 * 1024;
/// Rows looked at to decide the header and the width without one.
const HEAD_ROWS: usize = 50;

struct Head {
    columns: Vec<String>,
    header: bool,
    suggested_skip_rows: Option<usize>,
}

pub(super) fn open(input: &Input, reader: Box<dyn Read + Send>, options: &ReadOptions) -> Result<Table> {
    let source = input.to_string();
    let (head_tx, head_rx) = sync_channel::<Result<Head>>(1);
    let (batch_tx, batch_rx) = sync_channel::<Result<RawBatch>>(2);
    let sheet = options.sheet.clone();
    let forced_header = options.header;
    let skip_rows = options.skip_rows;
    let thread_source = source.clone();
    let path = match input {
        Input::Path(p) => Some(p.clone()),
        Input::Stdin => None,
    };
    std::thread::Builder::new()
        .name("kontakt-xlsx".into())
        .spawn(move || {
            let result = match path {
                Some(path) => File::open(&path).map_err(|e| Error::io(&path, e)).and_then(|f| {
                    read_workbook(
                        BufReader::new(f),
                        &thread_source,
                        sheet,
                        forced_header,
                        skip_rows,
                        &head_tx,
                        &batch_tx,
                    )
                }),
                None => {
                    let mut bytes = Vec::new();
                    let mut reader = reader;
                    reader
                        .read_to_end(&mut bytes)
                        .map_err(|e| Error::io("<stdin>", e))
                        .and_then(|_| {
                            read_workbook(
                                Cursor::new(bytes),
                                &thread_source,
                                sheet,
                                forced_header,
                                skip_rows,
                                &head_tx,
                                &batch_tx,
                            )
                        })
                }
            };
            if let Err(e) = result {
                // Errors before the head go to the opener; later ones are
                // sent on the batch channel by read_workbook itself.
                let _ = head_tx.send(Err(e));
            }
        })
        .map_err(|e| Error::input(&source, format!("cannot start the XLSX reader: {e}")))?;

    let head = head_rx
        .recv()
        .map_err(|_| Error::input(&source, "the XLSX reader stopped"))??;
    Ok(Table {
        input: input.clone(),
        detected: Detected {
            format: Format::Xlsx,
            encoding: Encoding::Utf8,
            delimiter: b',',
            quote: b'"',
            header: head.header,
            bom: false,
            skip_rows: options.skip_rows,
            suggested_skip_rows: head.suggested_skip_rows,
        },
        columns: head.columns,
        size: None,
        bytes_read: Default::default(),
        rows_read: Default::default(),
        batches: Box::new(BatchStream { rx: batch_rx }),
    })
}

struct BatchStream {
    rx: Receiver<Result<RawBatch>>,
}

impl Iterator for BatchStream {
    type Item = Result<RawBatch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

fn read_workbook<RS: Read + Seek>(
    rs: RS,
    source: &str,
    sheet: Option<String>,
    forced_header: Option<bool>,
    skip_rows: usize,
    head_tx: &SyncSender<Result<Head>>,
    batch_tx: &SyncSender<Result<RawBatch>>,
) -> Result<()> {
    let mut workbook: Xlsx<RS> = open_workbook_from_rs(rs).map_err(|e| match e {
        // A sound ZIP archive without a workbook's parts: some other archive.
        calamine::XlsxError::FileNotFound(part) => Error::input(
            source,
            format!("looks like a ZIP archive, not an XLSX workbook (it has no {part})"),
        ),
        e => Error::input(source, format!("is not a readable XLSX workbook: {e}")),
    })?;
    let sheet = pick_sheet(&workbook.sheet_names(), sheet, source)?;
    let cells = workbook
        .worksheet_cells_reader(&sheet)
        .map_err(|e| Error::input(source, format!("sheet {sheet:?}: {e}")))?;
    let mut rows = SheetRows {
        cells,
        pending: None,
        done: false,
        skip_rows,
        source,
        sheet: &sheet,
    };
    let (head, head_rows) = read_head(&mut rows, forced_header)?;
    let schema = raw_schema(&head.columns);
    let width = head.columns.len();
    if head_tx.send(Ok(head)).is_err() {
        return Ok(());
    }

    let mut builder = BatchBuilder::new(width, BATCH_ROWS, BATCH_ROWS * width * 16);
    let mut row = 0u64;
    let mut head = head_rows.into_iter();
    loop {
        let values = match head.next() {
            Some(v) => v,
            None => match rows.next_nonempty() {
                Ok(Some((_, v))) => v,
                Ok(None) => break,
                Err(e) => {
                    let _ = batch_tx.send(Err(e));
                    return Ok(());
                }
            },
        };
        row += 1;
        push_row(&mut builder, values, row, width);
        if builder.rows_counted() >= BATCH_ROWS {
            let full = std::mem::replace(
                &mut builder,
                BatchBuilder::new(width, BATCH_ROWS, BATCH_ROWS * width * 16),
            );
            if batch_tx.send(Ok(full.finish(schema.clone()))).is_err() {
                return Ok(());
            }
        }
    }
    if !builder.is_empty() {
        let _ = batch_tx.send(Ok(builder.finish(schema)));
    }
    Ok(())
}

/// The sheet asked for (`--sheet`), or the workbook's first.
fn pick_sheet(names: &[String], sheet: Option<String>, source: &str) -> Result<String> {
    match sheet {
        Some(name) if names.contains(&name) => Ok(name),
        Some(name) => Err(Error::usage(format!(
            "{source}: no sheet named {name:?}; the sheets are {}",
            names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
        ))),
        None => names
            .first()
            .cloned()
            .ok_or_else(|| Error::input(source, "the workbook has no sheets")),
    }
}

/// The rows of a sheet, gathered from its cells as (sheet row, values).
struct SheetRows<'a, 'w, RS: Read + Seek> {
    cells: calamine::XlsxCellReader<'w, RS>,
    /// A cell read ahead: the first of the next row.
    pending: Option<(u32, u32, String)>,
    /// The cell reader must not be asked again once it has said it is done.
    done: bool,
    skip_rows: usize,
    source: &'a str,
    sheet: &'a str,
}

impl<RS: Read + Seek> SheetRows<'_, '_, RS> {
    fn next_row(&mut self) -> Result<Option<(u32, Vec<String>)>> {
        let mut row: Option<(u32, Vec<String>)> = None;
        loop {
            let cell = match self.pending.take() {
                Some(c) => Some(c),
                None if self.done => None,
                None => self
                    .cells
                    .next_cell()
                    .map_err(|e| Error::input(self.source, format!("sheet {:?}: {e}", self.sheet)))?
                    .map(|c| {
                        let (r, col) = c.get_position();
                        (r, col, cell_text(c.get_value()))
                    }),
            };
            let Some((r, col, text)) = cell else {
                self.done = true;
                return Ok(row);
            };
            match &mut row {
                Some((current, _)) if *current != r => {
                    self.pending = Some((r, col, text));
                    return Ok(row);
                }
                Some((_, values)) => set(values, col as usize, text),
                None => {
                    let mut values = Vec::new();
                    set(&mut values, col as usize, text);
                    row = Some((r, values));
                }
            }
        }
    }

    /// The next row below `skip_rows` (0-based row numbers) with a value:
    /// the rows above it and empty rows go unread.
    fn next_nonempty(&mut self) -> Result<Option<(u32, Vec<String>)>> {
        while let Some((r, values)) = self.next_row()? {
            if r as usize >= self.skip_rows && values.iter().any(|v| !v.trim().is_empty()) {
                return Ok(Some((r, values)));
            }
        }
        Ok(None)
    }
}

/// The sheet's first rows: its columns (from the header row, detected or
/// forced, or numbered), the title rows it suggests skipping, and the data
/// rows read so far.
fn read_head<RS: Read + Seek>(
    rows: &mut SheetRows<'_, '_, RS>,
    forced_header: Option<bool>,
) -> Result<(Head, Vec<Vec<String>>)> {
    let mut numbered = Vec::new();
    while numbered.len() < HEAD_ROWS {
        match rows.next_nonempty()? {
            Some(r) => numbered.push(r),
            None => break,
        }
    }
    // A title's row number is the --skip-rows that skips it and the rows
    // between it and the table.
    let head_values: Vec<Vec<String>> = numbered.iter().map(|(_, v)| v.clone()).collect();
    let suggested_skip_rows =
        sniff::title_rows(&head_values[..head_values.len().min(sniff::TITLE_RECORDS)]).map(|k| numbered[k].0 as usize);
    let mut head_rows = head_values;
    let Some(first) = head_rows.first() else {
        let after = if rows.skip_rows > 0 {
            format!(" after the {} rows --skip-rows skips", rows.skip_rows)
        } else {
            String::new()
        };
        return Err(Error::input(
            rows.source,
            format!("sheet {:?} is empty{after}: no header and no data rows", rows.sheet),
        ));
    };
    let header = forced_header.unwrap_or_else(|| sniff::detect_header(first));
    let columns = if header {
        let mut cells = head_rows.remove(0);
        cells.truncate(sniff::filled_width(&cells));
        header_columns(&cells)
    } else {
        numbered_columns(head_rows.iter().map(|r| trimmed_width(r)).max().unwrap_or(1))
    };
    let head = Head {
        columns,
        header,
        suggested_skip_rows,
    };
    Ok((head, head_rows))
}

fn push_row(builder: &mut BatchBuilder, values: Vec<String>, row: u64, width: usize) {
    let found = trimmed_width(&values);
    if found > width {
        builder.push_bad_row(BadRow {
            row,
            detail: format!("expected {width} columns, found a value in column {found}"),
            fields: values,
        });
        return;
    }
    for i in 0..width {
        let value = values.get(i).map_or("", String::as_str);
        builder.values_mut(i).extend_from_slice(value.as_bytes());
        builder.end_field(i);
    }
    builder.end_row(row);
}

/// Width up to the last non-empty cell.
fn trimmed_width(values: &[String]) -> usize {
    values.iter().rposition(|v| !v.is_empty()).map_or(0, |i| i + 1)
}

fn set(values: &mut Vec<String>, col: usize, text: String) {
    if values.len() <= col {
        values.resize(col + 1, String::new());
    }
    values[col] = text;
}

/// A cell as text, the way a person reads it in the sheet.
fn cell_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Empty => String::new(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_string(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => number_text(*f),
        DataRef::Bool(b) => b.to_string(),
        DataRef::Error(e) => e.to_string(),
        DataRef::DateTime(dt) if dt.is_datetime() => {
            let (y, m, d, hh, mm, ss, _) = dt.to_ymd_hms_milli();
            if (hh, mm, ss) == (0, 0, 0) {
                format!("{y:04}-{m:02}-{d:02}")
            } else {
                format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
            }
        }
        DataRef::DateTime(dt) => number_text(dt.as_f64()),
    }
}

/// Integer-valued floats print as integers (exact up to 2^53, beyond any
/// phone number); others in the shortest form that reads back the same.
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_text() {
        assert_eq!(number_text(420777123456.0), "420777123456");
        assert_eq!(number_text(-5.0), "-5");
        assert_eq!(number_text(12.5), "12.5");
        assert_eq!(number_text(0.1), "0.1");
    }
}
