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
    /// Records (CSV) or sheet rows (XLSX) above the header to skip.
    pub skip_rows: usize,
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
            skip_rows: 0,
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
    /// Records (CSV) or sheet rows (XLSX) skipped above the header.
    pub skip_rows: usize,
    /// What `skip_rows` should be when the first lines look like a title
    /// above the table (counted from the input's start); `None` otherwise.
    pub suggested_skip_rows: Option<usize>,
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
    /// Bytes of the input up to the end of the rows taken so far (a UTF-16
    /// file: read so far, megabytes at a time): the progress display's
    /// position.
    pub bytes_read: Arc<AtomicU64>,
    /// Rows read so far (good and bad), counted as batches are taken.
    rows_read: Arc<AtomicU64>,
    batches: Box<dyn Iterator<Item = Result<RawBatch>> + Send>,
}

/// How far the reading of a file is: the bytes up to the rows taken (see
/// [`Table::bytes_read`]) and its size, and the rows taken. A display shows
/// the rows handed on as the same share of those bytes (rows are taken
/// ahead of the matching: a file of a few hundred MB is taken whole while
/// the store's index is built).
#[derive(Debug, Clone)]
pub struct ReadPosition {
    pub bytes_read: Arc<AtomicU64>,
    pub size: u64,
    pub rows_read: Arc<AtomicU64>,
}

impl ReadPosition {
    /// The part of the input that `rows_done` rows are, at most 1: the
    /// bytes read times the share of the rows read that are done.
    pub fn fraction(&self, rows_done: u64) -> f64 {
        let read = self.rows_read.load(Ordering::Relaxed);
        if read == 0 {
            return 0.0;
        }
        let bytes = if self.size == 0 {
            1.0
        } else {
            (self.bytes_read.load(Ordering::Relaxed) as f64 / self.size as f64).min(1.0)
        };
        (bytes * (rows_done.min(read) as f64 / read as f64)).min(1.0)
    }
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
    /// How far the reading is (bytes read, size, rows read), where bytes
    /// measure it: a CSV file (an XLSX file is an archive, read by the
    /// sheet's rows; standard input has no size).
    pub fn read_position(&self) -> Option<ReadPosition> {
        match (self.detected.format, self.size) {
            (Format::Csv, Some(size)) => Some(ReadPosition {
                bytes_read: self.bytes_read.clone(),
                size,
                rows_read: self.rows_read.clone(),
            }),
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
        let next = self.batches.next();
        if let Some(Ok(raw)) = &next {
            let rows = raw.batch.num_rows() + raw.bad_rows.len();
            self.rows_read.fetch_add(rows as u64, Ordering::Relaxed);
        }
        next
    }
}

/// Opens an input as a table: refuses what is not a table, detects what is
/// not given, reads the header, and starts streaming batches.
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
    let mut head = vec![0u8; HEAD_BYTES];
    let n = read_up_to(&mut reader, &mut head).map_err(|e| Error::io(path_of(input), e))?;
    head.truncate(n);
    let kind = match options.format {
        Some(Format::Xlsx) => Kind::Xlsx,
        _ => classify(&head, options.encoding),
    };
    // Put the head back in front of the rest of the stream.
    let rest = std::mem::replace(&mut reader, Box::new(io::empty()));
    let reader: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(rest));
    let table = match kind {
        Kind::Refused { what, hint } => {
            return Err(Error::input(
                input,
                format!("looks like {what}, not a contact table (CSV/TSV text or an XLSX workbook){hint}"),
            ));
        }
        Kind::Xlsx if options.format == Some(Format::Csv) => {
            return Err(Error::input(
                input,
                "is a ZIP archive (an XLSX workbook?), not text; drop --format csv",
            ));
        }
        Kind::Text | Kind::Utf16(_) if options.sheet.is_some() => {
            return Err(Error::Usage(format!(
                "{}: --sheet names a workbook's sheet, and this is a text table (CSV/TSV); drop --sheet",
                path_of(input).display()
            )));
        }
        Kind::Xlsx => xlsx::open(input, reader, options)?,
        Kind::Text => csv::open(input, reader, options)?,
        Kind::Utf16(encoding) => {
            // The parser reads the UTF-8 it is transcoded to; the preview
            // reports what the file is.
            let utf8 = ReadOptions {
                encoding: Some(Encoding::Utf8),
                ..options.clone()
            };
            let mut table = csv::open(input, Box::new(encoding::Utf16Reader::new(reader, encoding)), &utf8)?;
            table.detected.encoding = encoding;
            table
        }
    };
    // A text table counts the bytes of the rows it hands on; a transcoded
    // one (UTF-16) the file's bytes read, which run ahead of them.
    let bytes_read = if matches!(kind, Kind::Text) {
        table.bytes_read.clone()
    } else {
        bytes_read
    };
    Ok(Table {
        size,
        bytes_read,
        ..table
    })
}

/// Bytes looked at to tell a table from a file that is not one.
const HEAD_BYTES: usize = 8 << 10;

/// What the first bytes of an input say it is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Text,
    /// A ZIP archive that is not another known kind: calamine decides.
    Xlsx,
    Utf16(Encoding),
    /// Not a table: what it looks like, and a hint for the message.
    Refused {
        what: &'static str,
        hint: &'static str,
    },
}

/// Files that are not text, known by their first bytes (offset, magic,
/// what it is).
const MAGIC: &[(usize, &[u8], &str)] = &[
    (0, b"\x7fELF", "an ELF executable"),
    (0, b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (0, b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (0, b"\xca\xfe\xba\xbe", "an executable"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"PK\x05\x06", "an empty ZIP archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"\xfd7zXZ\x00", "an xz archive"),
    (0, b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (4, b"1AY&SY", "a bzip2 archive"),
    (0, b"\x89PNG", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF8", "a GIF image"),
    (0, b"SQLite format 3\x00", "an SQLite database"),
    (8, b"DUCK", "a DuckDB database"),
    (257, b"ustar", "a tar archive"),
    (0, b"PAR1", "a Parquet file"),
];

/// Tells from the first bytes whether an input is a table at all, and how to
/// read it. A UTF-16 BOM is looked at first: UTF-16 text is full of NUL
/// bytes. Any NUL byte otherwise means binary, as for git and ripgrep: no
/// text export writes one.
fn classify(head: &[u8], encoding: Option<Encoding>) -> Kind {
    let utf16_bom = if head.starts_with(&[0xFF, 0xFE]) {
        Some(Encoding::Utf16Le)
    } else if head.starts_with(&[0xFE, 0xFF]) {
        Some(Encoding::Utf16Be)
    } else {
        None
    };
    match (encoding, utf16_bom) {
        (Some(e), _) if e.is_utf16() => return Kind::Utf16(e),
        (None, Some(e)) => return Kind::Utf16(e),
        (Some(_), Some(_)) => {
            return Kind::Refused {
                what: "UTF-16 text (it starts with a UTF-16 byte order mark)",
                hint: "; drop --encoding or give utf-16le/utf-16be",
            };
        }
        _ => {}
    }
    let at = |offset: usize, magic: &[u8]| head.get(offset..).is_some_and(|h| h.starts_with(magic));
    if at(0, b"PK\x03\x04") {
        if at(30, b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet") {
            return Kind::Refused {
                what: "an OpenDocument spreadsheet (.ods)",
                hint: "; save it as .xlsx or CSV",
            };
        }
        return Kind::Xlsx;
    }
    if at(0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") {
        return Kind::Refused {
            what: "an old Excel workbook (.xls) or another OLE2 document",
            hint: "; save it as .xlsx or CSV",
        };
    }
    // A magic of printable letters only (`%PDF-`, `GIF8`, `DUCK`, `ustar`)
    // can open a CSV too (`SCROOGE;DUCK;...`): it counts only when the head
    // also has a control byte, which every real such header has near its
    // start and no text export has.
    let binary = head
        .iter()
        .any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f);
    let printable = |magic: &[u8]| magic.iter().all(|&b| (0x20..0x7f).contains(&b));
    // A PDF starts with its version line, `%PDF-1.7` (one without
    // compressed streams has no control byte in its head); a CSV whose
    // first cell begins `%PDF-` has no such line.
    let version = head.get(5..9).is_some_and(|v| {
        v[0].is_ascii_digit() && v[1] == b'.' && v[2].is_ascii_digit() && matches!(v[3], b'\r' | b'\n' | b' ')
    });
    if at(0, b"%PDF-") && version {
        return Kind::Refused {
            what: "a PDF document",
            hint: "",
        };
    }
    if let Some(&(_, _, what)) = MAGIC
        .iter()
        .find(|(offset, magic, _)| at(*offset, magic) && (binary || !printable(magic)))
    {
        return Kind::Refused { what, hint: "" };
    }
    if memchr::memchr(0, head).is_some() {
        if at(0, b"MZ") {
            return Kind::Refused {
                what: "a Windows executable",
                hint: "",
            };
        }
        return match bare_utf16(head) {
            Some(Encoding::Utf16Be) => Kind::Refused {
                what: "UTF-16BE text without a byte order mark (it has NUL bytes before its letters)",
                hint: "; pass --encoding utf-16be",
            },
            Some(_) => Kind::Refused {
                what: "UTF-16LE text without a byte order mark (it has NUL bytes after its letters)",
                hint: "; pass --encoding utf-16le",
            },
            None => Kind::Refused {
                what: "a binary file (it has NUL bytes)",
                hint: "",
            },
        };
    }
    Kind::Text
}

/// UTF-16 without a BOM, told by its NUL bytes: Latin text has one in
/// nearly every code unit, always on the same side. Only named in the
/// message; reading it takes the flag (a guess could misread a binary file).
fn bare_utf16(head: &[u8]) -> Option<Encoding> {
    let units = head.len() / 2;
    if units < 4 {
        return None;
    }
    let nul_at = |side: usize| head.chunks_exact(2).filter(|u| u[side] == 0).count();
    let (first, second) = (nul_at(0), nul_at(1));
    let mostly = |n: usize| n * 10 >= units * 8;
    let rarely = |n: usize| n * 10 <= units;
    if mostly(second) && rarely(first) {
        Some(Encoding::Utf16Le)
    } else if mostly(first) && rarely(second) {
        Some(Encoding::Utf16Be)
    } else {
        None
    }
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

/// Header cells as column names: an empty cell gets its `colN` name, and a
/// name met before (a `--header` row with two `Email` cells) gets its
/// ordinal, `Email (2)`, so that every column keeps its data and can be
/// named in `--map` (the first one keeps the name, and auto-mapping). A
/// name the header gives a column itself is never given to another.
fn header_columns(cells: &[String]) -> Vec<String> {
    let key = |name: &str| name.to_lowercase();
    let named: Vec<String> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| match c.trim() {
            "" => format!("col{}", i + 1),
            name => name.to_string(),
        })
        .collect();
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut names = Vec::with_capacity(named.len());
    for name in &named {
        // A name is free when no earlier column took it; a suffixed one
        // also skips every name of the header.
        let mut chosen = name.clone();
        let mut k = 2;
        while taken.contains(&key(&chosen)) || (chosen != *name && named.iter().any(|n| key(n) == key(&chosen))) {
            chosen = format!("{name} ({k})");
            k += 1;
        }
        taken.insert(key(&chosen));
        names.push(chosen);
    }
    names
}

/// Used by error messages that need the path of a file input.
pub(crate) fn path_of(input: &Input) -> &Path {
    match input {
        Input::Path(p) => p,
        Input::Stdin => Path::new("<stdin>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(head: &[u8]) -> &'static str {
        match classify(head, None) {
            Kind::Refused { what, .. } => what,
            other => panic!("{head:?} classified as {other:?}"),
        }
    }

    #[test]
    fn every_header_cell_names_a_column_of_its_own() {
        let names = |cells: &[&str]| header_columns(&cells.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        assert_eq!(
            names(&["email", "Email", "", "city", "col3", "email"]),
            ["email", "Email (2)", "col3", "city", "col3 (2)", "email (3)"]
        );
        // A suffixed name never takes a name the header gives another column.
        assert_eq!(
            names(&["email", "email", "email (2)"]),
            ["email", "email (3)", "email (2)"]
        );
    }

    #[test]
    fn tells_tables_from_other_files() {
        assert_eq!(classify(b"name,email\nJan,j@x.cz\n", None), Kind::Text);
        assert_eq!(classify(b"", None), Kind::Text);
        // "MZDA" (salary) is a Czech header, not an executable.
        assert_eq!(classify(b"MZDA;Jm\xe9no\n", None), Kind::Text);
        assert_eq!(classify(b"PK\x03\x04\x14\x00", None), Kind::Xlsx);
        assert_eq!(refused(b"\x7fELF\x02\x01\x01\x00"), "an ELF executable");
        assert_eq!(refused(b"MZ\x90\x00\x03\x00"), "a Windows executable");
        assert_eq!(refused(b"\x1f\x8b\x08\x00"), "a gzip archive");
        assert_eq!(refused(b"%PDF-1.7\nstream\nx\x9c\x03\x00"), "a PDF document");
        // Letters that happen to spell a magic are text.
        assert_eq!(classify(b"SCROOGE;DUCK;s@x.cz\n", None), Kind::Text);
        assert_eq!(classify(b"%PDF-export;email\n", None), Kind::Text);
        // A PDF without compressed streams is all text, but its first line
        // is its version.
        assert_eq!(refused(b"%PDF-1.7\n%comment\n1 0 obj\n"), "a PDF document");
        assert_eq!(refused(b"%PDF-1.4\r\n"), "a PDF document");
        assert_eq!(classify(b"%PDF-1.7;email\n", None), Kind::Text);
        assert_eq!(refused(b"PAR1\x15\x04\x15\x00"), "a Parquet file");
        assert_eq!(classify(b"GIF8 team,a@x.cz\n", None), Kind::Text);
        assert_eq!(refused(b"GIF89a\x01\x00\x01\x00"), "a GIF image");
        assert_eq!(
            refused(b"\x00\x00\x00\x00\x00\x00\x00\x00DUCK\x40"),
            "a DuckDB database"
        );
        assert!(refused(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00").contains(".xls"));
        assert_eq!(refused(b"name,email\nJan\x00,x\n"), "a binary file (it has NUL bytes)");
    }

    #[test]
    fn utf16_is_known_by_its_bom_before_its_nul_bytes() {
        assert_eq!(classify(b"\xff\xfen\x00a\x00", None), Kind::Utf16(Encoding::Utf16Le));
        assert_eq!(classify(b"\xfe\xff\x00n\x00a", None), Kind::Utf16(Encoding::Utf16Be));
        // Without a BOM only the flag says so.
        assert_eq!(
            classify(b"n\x00a\x00", Some(Encoding::Utf16Le)),
            Kind::Utf16(Encoding::Utf16Le)
        );
        assert!(refused(b"n\x00a\x00m\x00e\x00").contains("UTF-16LE"));
        assert!(refused(b"\x00n\x00a\x00m\x00e").contains("UTF-16BE"));
        assert!(refused(b"\x00\x00\x00\x00\x01\x02\x03\x04").contains("binary"));
        assert!(matches!(
            classify(b"\xff\xfen\x00", Some(Encoding::Utf8)),
            Kind::Refused { .. }
        ));
    }
}
