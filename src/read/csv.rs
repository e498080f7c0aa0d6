//! CSV/TSV/TXT and pasted tables, parsed in parallel in bounded memory.
//!
//! ```text
//! producer thread                 rayon pool                 consumer (Iterator)
//! read ~CHUNK_BYTES, cut at the   parse_chunk: records       receives chunk results in
//! last record boundary (quote-    (record.rs) -> columns     source order, numbers rows,
//! aware), send chunk ---------->  (UTF-8 check, decoding) -> finishes RawBatch
//! ```
//! Order is kept by sending, for each chunk, the receiving end of its own
//! one-shot channel through a bounded channel: the consumer waits on chunks in
//! the order they were cut, and the bound caps the chunks in flight.

mod boundary;

use std::io::{self, Cursor, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow::datatypes::SchemaRef;

use boundary::last_record_boundary;

use super::batch::{BadRow, BatchBuilder, QuoteProblem, raw_schema};
use super::encoding::{self, Encoding};
use super::record::RecordParser;
use super::sniff::{self, SAMPLE_BYTES};
use super::{Detected, Format, Input, RawBatch, ReadOptions, Table, header_columns, numbered_columns, read_up_to};
use crate::error::{Error, Result};

/// How the chunks of one input are parsed; shared by every parse job.
#[derive(Debug)]
struct ParseConfig {
    source: String,
    delimiter: u8,
    quote: u8,
    encoding: Encoding,
    columns: usize,
    schema: SchemaRef,
}

pub(super) fn open(input: &Input, mut reader: Box<dyn Read + Send>, options: &ReadOptions) -> Result<Table> {
    let mut sample = vec![0u8; SAMPLE_BYTES];
    let n = read_up_to(&mut reader, &mut sample).map_err(|e| Error::io(super::path_of(input), e))?;
    sample.truncate(n);
    let complete = n < SAMPLE_BYTES;

    let bom = sample.starts_with(b"\xEF\xBB\xBF");
    let text_start = if bom { 3 } else { 0 };
    let skip = options.skip_rows;
    let body_start = text_start + skipped_bytes(input, &sample[text_start..], complete, options)?;
    let body = &sample[body_start..];
    let encoding = match options.encoding {
        Some(e) => e,
        None if bom => Encoding::Utf8,
        None => encoding::detect(body, complete),
    };
    let (delimiter, quote, title) = dialect_below_title(body, complete, options, encoding);

    // The first record through the same parser the chunks use, so the data
    // starts exactly where the parser says the header ends. Leading blank
    // and fully empty rows are skipped, as everywhere.
    let mut first = RecordParser::new(delimiter, quote);
    let mut first_end = 0;
    let first_start = loop {
        match first.next(body, first_end) {
            None if skip > 0 => {
                return Err(Error::input(
                    input,
                    format!("is empty after the {skip} records --skip-rows skips: no header and no data rows"),
                ));
            }
            None => return Err(Error::input(input, "is empty: no header and no data rows")),
            Some((start, next)) => {
                first_end = next;
                if !first.is_blank(body) {
                    break start;
                }
            }
        }
    };
    if !complete && first_end >= body.len() {
        return Err(Error::input(
            input,
            format!(
                "the first row is longer than {} MiB; is the delimiter or quote wrong?",
                SAMPLE_BYTES >> 20
            ),
        ));
    }

    let sample_records = sniff::split_records(body, delimiter, quote, complete, 50);
    let first_cells: Vec<String> = first.fields(body).map(|c| encoding.decode_lossy(c)).collect();
    let header = options.header.unwrap_or_else(|| sniff::detect_header(&first_cells));

    if header
        && first_end >= body.len()
        && let Some(column) = super::record::unclosed_quote(&body[first_start..], delimiter, quote)
    {
        return Err(Error::input(
            input,
            format!(
                "header row, column {}: a quote opened here is never closed (a stray {} in the value?); \
                 fix the file or pass --quote with another character",
                column + 1,
                quote as char
            ),
        ));
    }
    let (columns, data_start) = if header {
        // Empty cells at the header's end name columns only where the
        // rows below fill them (a header `Jmeno,Mesto,` above `Jan,Praha`
        // has two columns).
        let filled = sniff::filled_width(&first_cells);
        let width = modal_width(sample_records.get(1..).unwrap_or_default()).map_or(filled, |w| w.max(filled));
        let mut cells = first_cells;
        cells.resize(width, String::new());
        (header_columns(&cells), body_start + first_end)
    } else {
        // The modal width of the sample, not the first row's: one ragged
        // first row must not make every other row a bad row.
        let width = modal_width(&sample_records).unwrap_or(first_cells.len());
        (numbered_columns(width), body_start)
    };

    let config = Arc::new(ParseConfig {
        source: input.to_string(),
        delimiter,
        quote,
        encoding,
        columns: columns.len(),
        schema: raw_schema(&columns),
    });
    let rest_of_sample = sample.split_off(data_start);
    let stream: Box<dyn Read + Send> = Box::new(Cursor::new(rest_of_sample).chain(reader));
    let batches = ChunkedBatches::start(stream, data_start as u64, options.chunk_bytes, config)
        .map_err(|e| Error::input(input, format!("cannot start the reader thread: {e}")))?;
    let bytes_taken = batches.taken.clone();
    Ok(Table {
        input: input.clone(),
        detected: Detected {
            format: Format::Csv,
            encoding,
            delimiter,
            quote,
            header,
            bom,
            skip_rows: skip,
            suggested_skip_rows: title.map(|k| skip + k),
        },
        columns,
        size: None,
        bytes_read: bytes_taken,
        rows_read: Default::default(),
        batches: Box::new(batches),
    })
}

/// The bytes of `text` (the sample after any BOM) that `--skip-rows`
/// skips. Detection looks only at what follows the skipped records, so a
/// title line cannot sway the delimiter or the encoding.
fn skipped_bytes(input: &Input, text: &[u8], complete: bool, options: &ReadOptions) -> Result<usize> {
    let skip = options.skip_rows;
    if skip == 0 {
        return Ok(0);
    }
    let lines = skip_lines(text, skip);
    let (delimiter, quote) = sniff::detect_dialect(&text[lines..], complete, options.delimiter, options.quote);
    let records = leading_records(text, delimiter, quote, skip);
    let end = records.last().map_or(0, |(_, end)| *end);
    if !complete && (records.len() < skip || end >= text.len()) {
        return Err(Error::input(
            input,
            format!(
                "--skip-rows {skip}: the first {skip} records are longer than {} MiB",
                SAMPLE_BYTES >> 20
            ),
        ));
    }
    Ok(end)
}

/// The delimiter and quote of `body`, and the title rows above its table
/// if it seems to have some (see [`sniff::title_rows`]).
fn dialect_below_title(
    body: &[u8],
    complete: bool,
    options: &ReadOptions,
    encoding: Encoding,
) -> (u8, u8, Option<usize>) {
    let decode = |cells: &[Vec<u8>]| -> Vec<String> { cells.iter().map(|c| encoding.decode_lossy(c)).collect() };
    let title_rows = |delimiter: u8, quote: u8| {
        let records: Vec<Vec<String>> = leading_records(body, delimiter, quote, sniff::TITLE_RECORDS)
            .iter()
            .map(|(cells, _)| decode(cells))
            .collect();
        sniff::title_rows(&records)
    };
    let (mut delimiter, mut quote) = sniff::detect_dialect(body, complete, options.delimiter, options.quote);
    let title = title_rows(delimiter, quote);
    if let Some(k) = title {
        // Read the dialect off the table below the title, as --skip-rows
        // would; keep it when the title still reads as one there.
        let after = leading_records(body, delimiter, quote, k)
            .last()
            .map_or(0, |(_, end)| *end);
        let (d, q) = sniff::detect_dialect(&body[after..], complete, options.delimiter, options.quote);
        if title_rows(d, q) == Some(k) {
            (delimiter, quote) = (d, q);
        }
    }
    (delimiter, quote, title)
}

/// The position after the first `n` lines of `text` (LF, CRLF or a lone
/// CR each end one), or its end.
fn skip_lines(text: &[u8], n: usize) -> usize {
    let mut pos = 0;
    for _ in 0..n {
        match memchr::memchr2(b'\n', b'\r', &text[pos..]) {
            Some(at) => {
                pos += at + 1;
                if text[pos - 1] == b'\r' && text.get(pos) == Some(&b'\n') {
                    pos += 1;
                }
            }
            None => return text.len(),
        }
    }
    pos
}

/// Up to `limit` records from the start of `text`, each with the position
/// after it, counted as `--skip-rows` counts them: a blank line is a record
/// (of no fields) too.
fn leading_records(text: &[u8], delimiter: u8, quote: u8, limit: usize) -> Vec<(Vec<Vec<u8>>, usize)> {
    let mut parser = RecordParser::new(delimiter, quote);
    let mut records = Vec::new();
    let mut pos = 0;
    while records.len() < limit && pos < text.len() {
        match text[pos] {
            b'\n' => pos += 1,
            b'\r' => pos += if text.get(pos + 1) == Some(&b'\n') { 2 } else { 1 },
            _ => {
                let Some((_, next)) = parser.next(text, pos) else { break };
                pos = next;
                // csv_core may leave a CRLF's LF for the next record.
                if text[pos - 1] == b'\r' && text.get(pos) == Some(&b'\n') {
                    pos += 1;
                }
                records.push((parser.fields(text).map(<[u8]>::to_vec).collect(), pos));
                continue;
            }
        }
        records.push((Vec::new(), pos));
    }
    records
}

/// The most common field count among sample records (the larger on a tie).
fn modal_width(records: &[Vec<&[u8]>]) -> Option<usize> {
    let mut counts = std::collections::HashMap::new();
    for r in records {
        *counts.entry(r.len()).or_insert(0usize) += 1;
    }
    counts.into_iter().max_by_key(|&(width, n)| (n, width)).map(|(w, _)| w)
}

type ChunkResult = Result<BatchBuilder>;

/// The consumer side: chunk results in source order.
struct ChunkedBatches {
    pending: Receiver<Receiver<ChunkResult>>,
    config: Arc<ParseConfig>,
    rows_before: u64,
    /// The source's bytes up to the end of the rows taken so far.
    taken: Arc<AtomicU64>,
}

impl ChunkedBatches {
    fn start(
        reader: Box<dyn Read + Send>,
        offset: u64,
        chunk_bytes: usize,
        config: Arc<ParseConfig>,
    ) -> io::Result<Self> {
        let in_flight = rayon::current_num_threads() * 2;
        let (tx, rx) = sync_channel(in_flight);
        let producer_config = Arc::clone(&config);
        std::thread::Builder::new()
            .name("kontakt-csv-split".into())
            .spawn(move || produce_chunks(reader, offset, chunk_bytes.max(1024), &producer_config, &tx))?;
        Ok(ChunkedBatches {
            pending: rx,
            config,
            rows_before: 0,
            taken: Arc::new(AtomicU64::new(offset)),
        })
    }
}

impl Iterator for ChunkedBatches {
    type Item = Result<RawBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let job = self.pending.recv().ok()?;
            let mut builder = match job.recv() {
                Ok(Ok(builder)) => builder,
                Ok(Err(e)) => return Some(Err(e)),
                Err(_) => return Some(Err(Error::input(&self.config.source, "a parser thread stopped"))),
            };
            self.taken.fetch_max(builder.end_offset, Ordering::Relaxed);
            builder.offset_rows(self.rows_before);
            self.rows_before += builder.rows_counted() as u64;
            if let Some((row, column, problem)) = builder.quote_error {
                return Some(Err(quote_error(&self.config, row, column, problem)));
            }
            if !builder.is_empty() {
                return Some(Ok(builder.finish(Arc::clone(&self.config.schema))));
            }
        }
    }
}

/// Reads the stream in chunks cut at record boundaries and hands each chunk
/// to the rayon pool. Stops when the input ends, on an I/O error (sent on as
/// the next result), or when the consumer has gone.
fn produce_chunks(
    mut reader: Box<dyn Read + Send>,
    mut offset: u64,
    chunk_bytes: usize,
    config: &Arc<ParseConfig>,
    tx: &SyncSender<Receiver<ChunkResult>>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes + (chunk_bytes >> 2));
    let mut target = chunk_bytes;
    let mut eof = false;
    loop {
        if let Err(e) = fill(&mut reader, &mut buf, target, &mut eof) {
            let (job_tx, job_rx) = sync_channel(1);
            let _ = job_tx.send(Err(Error::io(&config.source, e)));
            let _ = tx.send(job_rx);
            return;
        }
        if buf.is_empty() {
            return;
        }
        let cut = if eof {
            buf.len()
        } else {
            match last_record_boundary(&buf, config.delimiter, config.quote) {
                Some(cut) => cut,
                None => {
                    // One record larger than the chunk: read more.
                    target = target.saturating_mul(2);
                    continue;
                }
            }
        };
        target = chunk_bytes;
        let tail = buf[cut..].to_vec();
        buf.truncate(cut);
        let chunk = std::mem::replace(&mut buf, {
            let mut next = Vec::with_capacity(chunk_bytes + (chunk_bytes >> 2));
            next.extend_from_slice(&tail);
            next
        });
        let (job_tx, job_rx) = sync_channel(1);
        if tx.send(job_rx).is_err() {
            return;
        }
        let job_config = Arc::clone(config);
        let chunk_offset = offset;
        rayon::spawn(move || {
            let _ = job_tx.send(Ok(parse_chunk(&chunk, chunk_offset, &job_config)));
        });
        offset += cut as u64;
        if eof && buf.is_empty() {
            return;
        }
    }
}

/// Reads until `buf` holds `target` bytes or the input ends.
fn fill(reader: &mut dyn Read, buf: &mut Vec<u8>, target: usize, eof: &mut bool) -> io::Result<()> {
    while !*eof && buf.len() < target {
        let start = buf.len();
        buf.resize(target, 0);
        match reader.read(&mut buf[start..]) {
            Ok(0) => {
                buf.truncate(start);
                *eof = true;
            }
            Ok(n) => buf.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Parses one chunk of whole records into a batch builder. Rows are numbered
/// from 1 within the chunk; the consumer shifts them into place.
fn parse_chunk(chunk: &[u8], offset: u64, config: &ParseConfig) -> BatchBuilder {
    let columns = config.columns;
    // UTF-8 is checked once for the whole chunk; only a chunk that fails is
    // checked field by field to find its bad rows.
    let chunk_is_text = match config.encoding {
        Encoding::Utf8 => simdutf8::basic::from_utf8(chunk).is_ok(),
        _ => true,
    };
    let table = config.encoding.table();
    let mut builder = BatchBuilder::new(columns, chunk.len() / 48, chunk.len() + chunk.len() / 16);
    builder.end_offset = offset + chunk.len() as u64;
    let mut parser = RecordParser::new(config.delimiter, config.quote);
    let mut pos = 0;
    let mut row = 0u64;
    while let Some((start, next)) = parser.next(chunk, pos) {
        pos = next;
        // Chunks end at record boundaries, so only the input's last record
        // can run into the end of a chunk inside quotes: a stray quote that
        // swallowed the rest of the file. That is an input error, not a row.
        if next == chunk.len()
            && let Some(column) = super::record::unclosed_quote(&chunk[start..], config.delimiter, config.quote)
        {
            builder.quote_error = Some((row + 1, column, QuoteProblem::NeverClosed));
            break;
        }
        // A quoted value over a thousand lines or a mebibyte is no contact's
        // value but a stray quote that a later one happened to close. Only
        // long records are looked at, so the check costs nothing per row.
        if next - start > MAX_QUOTED_LINES
            && let Some((column, problem)) = absurd_field(&parser, chunk)
        {
            builder.quote_error = Some((row + 1, column, problem));
            break;
        }
        if parser.is_blank(chunk) {
            continue;
        }
        row += 1;
        let at = offset + start as u64;
        // Trailing empty fields past the last column carry nothing (a
        // trailing delimiter); anything else of the wrong width is a bad row.
        let mut width = parser.len();
        while width > columns && parser.field(chunk, width - 1).is_empty() {
            width -= 1;
        }
        if width != columns {
            let detail = format!("expected {columns} fields, found {width} (row starts at byte {at})");
            builder.push_bad_row(bad_row(&parser, chunk, row, detail, config.encoding));
            continue;
        }
        if !chunk_is_text
            && let Some(column) = (0..columns).find(|&i| simdutf8::basic::from_utf8(parser.field(chunk, i)).is_err())
        {
            let detail = format!(
                "bytes that are not UTF-8 in column {} (row starts at byte {at})",
                column + 1
            );
            builder.push_bad_row(bad_row(&parser, chunk, row, detail, config.encoding));
            continue;
        }
        for i in 0..columns {
            match table {
                None => builder.push_field(i, parser.field(chunk, i), parser.field_padded(chunk, i)),
                Some(table) => {
                    table.decode_into(parser.field(chunk, i), builder.values_mut(i));
                    builder.end_field(i);
                }
            }
        }
        builder.end_row(row);
    }
    debug_assert_eq!(builder.num_columns(), columns);
    builder
}

/// Lines and bytes past which one quoted value is taken for a stray quote.
const MAX_QUOTED_LINES: usize = 1000;
const MAX_QUOTED_BYTES: usize = 1 << 20;

/// The first field of the current record that spans too many lines or
/// bytes (only a quoted field can hold a line end).
fn absurd_field(parser: &RecordParser, chunk: &[u8]) -> Option<(usize, QuoteProblem)> {
    (0..parser.len()).find_map(|i| {
        let field = parser.field(chunk, i);
        if field.len() <= MAX_QUOTED_LINES {
            return None;
        }
        let lines = memchr::memchr_iter(b'\n', field).count() + 1;
        (lines > MAX_QUOTED_LINES || field.len() > MAX_QUOTED_BYTES).then_some((
            i,
            QuoteProblem::Spans {
                lines,
                bytes: field.len(),
            },
        ))
    })
}

fn quote_error(config: &ParseConfig, row: u64, column: usize, problem: QuoteProblem) -> Error {
    // Field 0 of the schema is the row number.
    let column = match config.schema.fields().get(column + 1) {
        Some(field) => field.name().clone(),
        None => format!("{}", column + 1),
    };
    let q = config.quote as char;
    let what = match problem {
        QuoteProblem::NeverClosed => format!("a quote opened here is never closed (a stray {q} in the value?)"),
        QuoteProblem::Spans { lines, bytes } => format!(
            "a quoted value opened here spans {lines} lines and {bytes} bytes \
             (a stray {q} in the value, closed by another one much later?)"
        ),
    };
    Error::input(
        &config.source,
        format!("row {row}, column {column}: {what}; fix the file or pass --quote with another character"),
    )
}

fn bad_row(parser: &RecordParser, chunk: &[u8], row: u64, detail: String, encoding: Encoding) -> BadRow {
    BadRow {
        row,
        fields: parser.fields(chunk).map(|f| encoding.decode_lossy(f)).collect(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_lines_count_blank_ones() {
        let text = b"Title\r\n\r\n\"a\r\nb\",c\r\n,,\nx,y";
        assert_eq!(skip_lines(text, 2), 9);
        assert_eq!(skip_lines(text, 9), text.len());
        let records = leading_records(text, b',', b'"', 10);
        let ends: Vec<usize> = records.iter().map(|r| r.1).collect();
        assert_eq!(ends, vec![7, 9, 19, 22, 25]);
        assert_eq!(records[0].0, vec![b"Title".to_vec()]);
        assert!(records[1].0.is_empty());
        assert_eq!(records[2].0, vec![b"a\r\nb".to_vec(), b"c".to_vec()]);
        assert_eq!(leading_records(text, b',', b'"', 2).len(), 2);
    }
}
