//! `kontakt gen --rows N [--seed S] [--store-rows M] -o FILE`: synthetic,
//! realistically messy contacts (see `synth` for what is planted).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::error::{Error, Result};
use crate::read::Encoding;
use crate::synth::{self, GenOptions, HeaderLanguage, OutputFormat};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenFormat {
    /// From the extension of -o: `.xlsx` is XLSX, anything else CSV.
    Auto,
    Csv,
    Xlsx,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Data rows in the import file.
    #[arg(long, value_name = "N")]
    pub rows: u64,

    /// Seed: the same seed gives the same files.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,

    /// Also write a store file of M contacts overlapping the import (by
    /// email, by phone only) and with duplicates of its own.
    #[arg(long, default_value_t = 0, value_name = "M")]
    pub store_rows: u64,

    /// The import file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,

    /// Where the store file goes [default: FILE's stem + `-store`].
    #[arg(long, value_name = "FILE")]
    pub store_output: Option<PathBuf>,

    #[arg(long, value_enum, default_value = "auto")]
    pub format: GenFormat,

    /// Field delimiter: `,`, `;`, `tab`, or one ASCII character.
    #[arg(long, default_value = ",", value_name = "CHAR")]
    pub delimiter: String,

    /// Text encoding: utf-8, windows-1250, iso-8859-2.
    #[arg(long, default_value = "utf-8", value_name = "NAME")]
    pub encoding: String,

    /// Language of the header row.
    #[arg(long, value_enum, default_value = "en")]
    pub headers: HeaderLanguage,

    /// Quote every field, as some CRM exports do.
    #[arg(long)]
    pub quote_all: bool,
}

pub fn run(args: &GenArgs) -> Result<()> {
    let format = match args.format {
        GenFormat::Csv => OutputFormat::Csv,
        GenFormat::Xlsx => OutputFormat::Xlsx,
        GenFormat::Auto if has_extension(&args.output, "xlsx") => OutputFormat::Xlsx,
        GenFormat::Auto => OutputFormat::Csv,
    };
    let delimiter = match args.delimiter.as_str() {
        "tab" | "\\t" => b'\t',
        d if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
        d => {
            return Err(Error::usage(format!(
                "--delimiter {d:?}: expected one ASCII character (or `tab`)"
            )));
        }
    };
    let encoding = Encoding::from_flag(&args.encoding).ok_or_else(|| {
        Error::usage(format!(
            "--encoding {:?}: expected utf-8, windows-1250 or iso-8859-2",
            args.encoding
        ))
    })?;
    if format == OutputFormat::Xlsx && (encoding != Encoding::Utf8 || args.delimiter != ",") {
        return Err(Error::usage("--encoding and --delimiter apply to CSV output, not XLSX"));
    }
    let store_output = args
        .store_output
        .clone()
        .unwrap_or_else(|| store_path_beside(&args.output));
    let options = GenOptions {
        rows: args.rows,
        seed: args.seed,
        store_rows: args.store_rows,
        format,
        delimiter,
        encoding,
        language: args.headers,
        quote_all: args.quote_all,
    };
    let started = std::time::Instant::now();
    let written = synth::generate(&options, &args.output, Some(&store_output))?;
    let seconds = started.elapsed().as_secs_f64();
    for path in &written {
        eprintln!("wrote {}", path.display());
    }
    let total = args.rows + args.store_rows;
    eprintln!(
        "{total} rows in {seconds:.2} s ({:.0} rows/s)",
        total as f64 / seconds.max(1e-9)
    );
    Ok(())
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// `data/contacts.csv` -> `data/contacts-store.csv`.
fn store_path_beside(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "contacts".into());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-store.{}", ext.to_string_lossy()),
        None => format!("{stem}-store"),
    };
    path.with_file_name(name)
}
