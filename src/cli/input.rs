//! The input flags of SPEC, shared by `preview` and `import`.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::read::{Encoding, Format, Input, ReadOptions};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Auto,
    Csv,
    Xlsx,
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// File format (auto: XLSX by its bytes, else delimited text).
    #[arg(long, value_enum, default_value = "auto")]
    pub format: FormatArg,

    /// Field delimiter: auto, `,`, `;`, `:`, `|`, `tab`, or any one ASCII character.
    #[arg(long, default_value = "auto", value_name = "CHAR")]
    pub delimiter: String,

    /// Quote (enclosure) character [default: detected, usually `"`].
    #[arg(long, value_name = "CHAR")]
    pub quote: Option<String>,

    /// Text encoding: auto, utf-8, windows-1250, iso-8859-2, utf-16le, utf-16be
    /// (UTF-16 with a byte order mark is detected).
    #[arg(long, default_value = "auto", value_name = "NAME")]
    pub encoding: String,

    /// The first row is data; columns are named col1, col2, ...
    #[arg(long, conflicts_with = "header")]
    pub no_header: bool,

    /// The first row is a header (skip detection).
    #[arg(long)]
    pub header: bool,

    /// XLSX sheet to read [default: the first].
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,

    /// Skip the first N records of a CSV file (empty ones counted too) or the
    /// first N rows of the sheet, before the header: title lines above the
    /// table. Row numbers in outputs still count data rows after the header.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub skip_rows: usize,
}

impl InputArgs {
    /// Resolves the flags into reader options; a bad value is a usage error.
    pub fn resolve(&self) -> Result<ReadOptions> {
        Ok(ReadOptions {
            format: match self.format {
                FormatArg::Auto => None,
                FormatArg::Csv => Some(Format::Csv),
                FormatArg::Xlsx => Some(Format::Xlsx),
            },
            delimiter: match self.delimiter.as_str() {
                "auto" => None,
                "tab" | "\\t" => Some(b'\t'),
                other => Some(single_ascii("--delimiter", other)?),
            },
            quote: self.quote.as_deref().map(|q| single_ascii("--quote", q)).transpose()?,
            encoding: match self.encoding.as_str() {
                "auto" => None,
                other => Some(Encoding::from_input_flag(other).ok_or_else(|| {
                    Error::usage(format!(
                        "--encoding {other:?}: expected auto, utf-8, windows-1250, iso-8859-2, utf-16le or utf-16be"
                    ))
                })?),
            },
            header: match (self.header, self.no_header) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            sheet: self.sheet.clone(),
            skip_rows: self.skip_rows,
            ..ReadOptions::default()
        })
    }
}

fn single_ascii(flag: &str, value: &str) -> Result<u8> {
    match value.as_bytes() {
        [b] if b.is_ascii() && !matches!(b, b'\n' | b'\r') => Ok(*b),
        _ => Err(Error::usage(format!(
            "{flag} {value:?}: expected one ASCII character (or `tab`)"
        ))),
    }
}

/// Standard input is copied to a temporary file first, by a thread of its
/// own, while this one waits for it or for a cancel: a pipe or a terminal
/// that sends nothing more would otherwise hold a read (and every stage
/// after it) that Ctrl-C cannot end. The import then reads a file, which
/// also gives the progress a size and `last`/`fail` a second pass. `None`
/// for a file (nothing to copy).
pub(super) fn spool_stdin(input: &Input, cancel: &Cancel) -> Result<Option<PathBuf>> {
    if !matches!(input, Input::Stdin) {
        return Ok(None);
    }
    let path = std::env::temp_dir().join(format!("kontakt-stdin-{}.tsv", std::process::id()));
    let mut file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::io::copy(&mut std::io::stdin().lock(), &mut file));
    });
    loop {
        if let Err(e) = cancel.check() {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(copied) => {
                copied.map_err(|e| Error::io(&path, e))?;
                return Ok(Some(path));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Error::Stopped),
        }
    }
}

/// Runs `work` on the file to read: `input` itself, or the copy of
/// standard input ([`spool_stdin`]), removed after; errors then name what
/// the user gave, not the copy.
pub(super) fn with_spooled_stdin<T>(
    input: &Input,
    cancel: &Cancel,
    work: impl FnOnce(&Input) -> Result<T>,
) -> Result<T> {
    let Some(path) = spool_stdin(input, cancel)? else {
        return work(input);
    };
    let result = work(&Input::Path(path.clone()));
    let _ = std::fs::remove_file(&path);
    let spool = path.display().to_string();
    result.map_err(|e| match e {
        Error::Input { path, message } if path == spool => Error::input(input, message),
        e => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(delimiter: &str, quote: Option<&str>, encoding: &str) -> InputArgs {
        InputArgs {
            format: FormatArg::Auto,
            delimiter: delimiter.into(),
            quote: quote.map(Into::into),
            encoding: encoding.into(),
            no_header: false,
            header: false,
            sheet: None,
            skip_rows: 0,
        }
    }

    #[test]
    fn resolves_flags() {
        let o = args("tab", Some("'"), "windows-1250").resolve().expect("valid");
        assert_eq!(o.delimiter, Some(b'\t'));
        assert_eq!(o.quote, Some(b'\''));
        assert_eq!(o.encoding, Some(Encoding::Windows1250));
        assert_eq!(args(";", None, "auto").resolve().expect("valid").delimiter, Some(b';'));
        for bad in [
            args(";;", None, "auto"),
            args("č", None, "auto"),
            args("auto", None, "latin9"),
        ] {
            let err = bad.resolve().expect_err("usage error");
            assert_eq!(err.exit_code(), 2);
        }
    }
}
