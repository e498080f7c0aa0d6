//! Readers: any contact file (CSV/TSV/TXT, XLSX, or a table pasted on standard
//! input) becomes a stream of [`RawBatch`]es: Arrow Utf8 columns exactly as
//! read, the 1-based source row number of each row, and the rows that could not
//! be read as a table row (`bad_row`), kept as data for `failed.csv`.
//!
//! ```text
//! open(input, options)
//!   -> sniff: BOM, encoding, delimiter, quote, header   (sniff.rs, from a 1 MiB sample)
//!   -> csv.rs:  producer thread splits the byte stream at record boundaries
//!               into chunks -> rayon parses chunks in parallel -> in order
//!      xlsx.rs: calamine cell stream -> batches
//!   -> Table: Iterator<Item = Result<RawBatch>>
//! ```
//!
//! Memory is bounded by the chunks in flight (a few times `CHUNK_BYTES`), never
//! by the file's size.

mod batch;
mod csv;
mod encoding;
mod record;
mod sniff;
mod xlsx;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use batch::{BadRow, ROW_COLUMN, RawBatch, raw_schema};
pub use encoding::Encoding;

use crate::error::{Error, Result};

/// Where the table comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Path(PathBuf),
    /// `-`: standard input, typically a table pasted from a spreadsheet.
    Stdin,
}

impl Input {
    /// `-` means standard input, anything else a path.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(arg))
        }
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Path(p) => write!(f, "{}", p.display()),
            Input::Stdin => f.write_str("<stdin>"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }
}

/// The input flags of SPEC, resolved. `None` means "detect".
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub format: Option<Format>,
    pub delimiter: Option<u8>,
    pub quote: Option<u8>,
    pub encoding: Option<Encoding>,
    /// `Some(false)` for `--no-header`, `Some(true)` for `--header`.
    pub header: Option<bool>,
    pub sheet: Option<String>,
    /// Target size of the byte chunks parsed in parallel.
    pub chunk_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            format: None,
            delimiter: None,
            quote: None,
            encoding: None,
            header: None,
            sheet: None,
            chunk_bytes: CHUNK_BYTES,
        }
    }
}

/// Chunk size for parallel CSV parsing: large enough to amortize the hand-off,
/// small enough that a few in flight stay far below the memory budget.
pub const CHUNK_BYTES: usize = 4 << 20;

/// What was detected (or forced by flags) about the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub format: Format,
    pub encoding: Encoding,
    pub delimiter: u8,
    pub quote: u8,
    pub header: bool,
    /// A UTF-8 byte order mark was present (and skipped).
    pub bom: bool,
}

/// An open table: what was detected, the column names, and the batches.
pub struct Table {
    pub input: Input,
    pub detected: Detected,
    /// Column names: the header row, or `col1`, `col2`, ... without one (or
    /// for a header cell that is empty).
    pub columns: Vec<String>,
    /// Size of the input in bytes, when it is a file.
    pub size: Option<u64>,
    /// Bytes of the input read so far, updated at each read of the file
    /// (megabytes at a time): the progress display's position.
    pub bytes_read: Arc<AtomicU64>,
    batches: Box<dyn Iterator<Item = Result<RawBatch>> + Send>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("input", &self.input)
            .field("detected", &self.detected)
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// The input's bytes read so far and its size, where those measure
    /// how far the reading is: a CSV file (an XLSX file is an archive,
    /// read by the sheet's rows; standard input has no size).
    pub fn read_position(&self) -> Option<(Arc<AtomicU64>, u64)> {
        match (self.detected.format, self.size) {
            (Format::Csv, Some(size)) => Some((self.bytes_read.clone(), size)),
            _ => None,
        }
    }
}

/// Counts the bytes read through it (one relaxed add per read call, each
/// of up to a chunk).
struct CountingReader {
    inner: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Iterator for Table {
    type Item = Result<RawBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.batches.next()
    }
}

/// Opens an input as a table: detects what is not given, reads the header,
/// and starts streaming batches.
pub fn open(input: &Input, options: &ReadOptions) -> Result<Table> {
    let (mut reader, size): (Box<dyn Read + Send>, Option<u64>) = match input {
        Input::Stdin => (Box::new(io::stdin()), None),
        Input::Path(path) => {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let metadata = file.metadata().map_err(|e| Error::io(path, e))?;
            if metadata.is_dir() {
                return Err(Error::input(input, "is a directory, not a contact file"));
            }
            (Box::new(file), Some(metadata.len()))
        }
    };
    let bytes_read = Arc::new(AtomicU64::new(0));
    reader = Box::new(CountingReader {
        inner: reader,
        count: bytes_read.clone(),
    });
    let format = match options.format {
        Some(format) => format,
        None => detect_format(input, &mut reader)?,
    };
    let table = match format {
        Format::Xlsx => xlsx::open(input, reader, options)?,
        Format::Csv => csv::open(input, reader, options)?,
    };
    Ok(Table {
        size,
        bytes_read,
        ..table
    })
}

/// XLSX files are ZIP archives: `PK\x03\x04`. The extension is a hint only;
/// the bytes decide, so a CSV named `.xlsx` is still read as text.
fn detect_format(input: &Input, reader: &mut Box<dyn Read + Send>) -> Result<Format> {
    let looks_xlsx = match input {
        Input::Stdin => false,
        Input::Path(path) => {
            let mut magic = [0u8; 4];
            let n = read_up_to(reader, &mut magic).map_err(|e| Error::io(path, e))?;
            // Put the magic back in front of the rest of the stream.
            let rest = std::mem::replace(reader, Box::new(io::empty()));
            *reader = Box::new(io::Cursor::new(magic[..n].to_vec()).chain(rest));
            &magic[..n] == b"PK\x03\x04"
        }
    };
    Ok(if looks_xlsx { Format::Xlsx } else { Format::Csv })
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Column names for a table without a header: `col1`, `col2`, ...
fn numbered_columns(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("col{i}")).collect()
}

/// Header cells as column names: an empty cell gets its `colN` name.
fn header_columns(cells: Vec<String>) -> Vec<String> {
    cells
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c.trim();
            if name.is_empty() {
                format!("col{}", i + 1)
            } else {
                name.to_string()
            }
        })
        .collect()
}

/// Used by error messages that need the path of a file input.
pub(crate) fn path_of(input: &Input) -> &Path {
    match input {
        Input::Path(p) => p,
        Input::Stdin => Path::new("<stdin>"),
    }
}
