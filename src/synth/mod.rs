//! The seeded generator behind `kontakt gen`: realistic, messy contacts for
//! tests, samples and benchmarks.
//!
//! Every row is a pure function of `(seed, index)`: blocks are generated in
//! parallel with rayon and written in order, so the same seed gives the same
//! bytes on any number of threads. Emails and phone numbers come from
//! bijections of the identity number, so two identities never share one by
//! accident: the only duplicates and overlaps are the planted ones.
//!
//! Import file (`rows` rows): ~3% repeat an earlier row's person (in-file
//! duplicates, formatted differently); ~2.5% have an invalid email and ~2.5%
//! an invalid phone. Store file (`store_rows` rows): ~35% are import people
//! (match by email), ~10% import people with another email (match by phone
//! only), ~5% repeat an earlier store row (duplicates inside the store), the
//! rest are new people. A store larger than the import holds as many import
//! people as one of the import's size (35% and 10% of the import's rows).

mod names;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::read::Encoding;
use names::Country;

/// Rows generated per parallel block.
const BLOCK_ROWS: u64 = 8192;
/// Largest data row count an XLSX sheet holds (one row is the header).
const XLSX_MAX_ROWS: u64 = 1_048_575;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Csv,
    Xlsx,
}

/// Which language the header row speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeaderLanguage {
    En,
    Cs,
    Pl,
    No,
    De,
}

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub rows: u64,
    pub seed: u64,
    pub store_rows: u64,
    pub format: OutputFormat,
    pub delimiter: u8,
    pub encoding: Encoding,
    pub language: HeaderLanguage,
    /// Quote every field (as some CRM exports do).
    pub quote_all: bool,
}

/// Which file a row belongs to; they draw from separate random streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Import,
    Store,
}

const COLUMNS: usize = 17;

fn header(language: HeaderLanguage) -> [&'static str; COLUMNS] {
    match language {
        HeaderLanguage::En => [
            "ID",
            "First name",
            "Last name",
            "E-mail",
            "Phone",
            "Mobile",
            "Company",
            "Street",
            "City",
            "Postal code",
            "Country",
            "Gender",
            "Birth date",
            "Email opt-in",
            "SMS opt-in",
            "Tags",
            "Note",
        ],
        HeaderLanguage::Cs => [
            "ID",
            "Jméno",
            "Příjmení",
            "E-mail",
            "Telefon",
            "Mobil",
            "Firma",
            "Ulice",
            "Město",
            "PSČ",
            "Země",
            "Pohlaví",
            "Datum narození",
            "Souhlas e-mail",
            "Souhlas SMS",
            "Štítky",
            "Poznámka",
        ],
        HeaderLanguage::Pl => [
            "ID",
            "Imię",
            "Nazwisko",
            "E-mail",
            "Telefon",
            "Telefon komórkowy",
            "Firma",
            "Ulica",
            "Miejscowość",
            "Kod pocztowy",
            "Państwo",
            "Płeć",
            "Data urodzenia",
            "Zgoda e-mail",
            "Zgoda SMS",
            "Tagi",
            "Uwagi",
        ],
        HeaderLanguage::No => [
            "ID",
            "Fornavn",
            "Etternavn",
            "E-post",
            "Telefon",
            "Mobil",
            "Firma",
            "Gateadresse",
            "Poststed",
            "Postnummer",
            "Land",
            "Kjønn",
            "Fødselsdato",
            "E-post samtykke",
            "SMS samtykke",
            "Merker",
            "Merknad",
        ],
        HeaderLanguage::De => [
            "ID",
            "Vorname",
            "Nachname",
            "E-Mail",
            "Telefon",
            "Handy",
            "Firma",
            "Straße",
            "Ort",
            "PLZ",
            "Land",
            "Geschlecht",
            "Geburtsdatum",
            "Newsletter",
            "SMS Einwilligung",
            "Tags",
            "Notiz",
        ],
    }
}

/// A person before formatting: everything that identifies them.
struct Person {
    number: u64,
    country: &'static Country,
    female: bool,
    first: &'static str,
    last: &'static str,
    email: String,
    phone: String,
    mobile: Option<String>,
    birth: (u32, u32, u32),
    company: Option<String>,
}

/// A random stream for one purpose of one row; independent of every other.
fn rng(seed: u64, side: Side, purpose: u64, index: u64) -> ChaCha8Rng {
    let side = match side {
        Side::Import => 0x1000_0000_0000_0000,
        Side::Store => 0x2000_0000_0000_0000,
    };
    let mut z = seed ^ side ^ purpose.rotate_left(48) ^ index;
    // splitmix64 finaliser: nearby indices get unrelated streams.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A bijection of `0..10^digits` (odd multiplier coprime to 10, plus an
/// offset), so distinct identity numbers get distinct phone numbers.
fn permute(n: u64, digits: u32, salt: u64) -> u64 {
    let modulus = 10u64.pow(digits);
    ((n % modulus).wrapping_mul(7_654_321) % modulus + salt) % modulus
}

fn national_number(prefixes: &[&str], rest: u32, number: u64, salt: u64) -> String {
    let space = 10u64.pow(rest);
    let prefix = prefixes[((number / space) as usize + salt as usize) % prefixes.len()];
    format!("{prefix}{:0width$}", permute(number, rest, salt), width = rest as usize)
}

/// The person with identity `number`. Pure: the same inputs, the same person.
fn person(seed: u64, number: u64, countries: &[&'static Country]) -> Person {
    let mut r = rng(seed, Side::Import, 1, number);
    let country = *pick(&mut r, countries);
    let female = r.random_bool(0.5);
    let first = *pick(&mut r, if female { country.female } else { country.male });
    let &(male_last, female_last) = pick(&mut r, country.surnames);
    let last = if female { female_last } else { male_last };
    let local = match r.random_range(0..4) {
        0 => format!("{}.{}{number}", fold(first), fold(last)),
        1 => format!("{}{}{number}", &fold(first)[..1], fold(last)),
        2 => format!("{}_{}.{number}", fold(last), fold(first)),
        _ => format!("{}{number}", fold(first)),
    };
    let email = format!("{local}@{}", pick(&mut r, country.domains));
    let phone = if r.random_bool(0.7) {
        national_number(country.mobile, country.mobile_rest, number, 17)
    } else {
        national_number(country.landline, country.landline_rest, number, 29)
    };
    let mobile = r
        .random_bool(0.4)
        .then(|| national_number(country.mobile, country.mobile_rest, number, 53));
    let birth = (
        r.random_range(1940..2006),
        r.random_range(1..=12),
        r.random_range(1..=28),
    );
    let company = r.random_bool(0.3).then(|| {
        let stem = pick(&mut r, names::COMPANY_STEMS);
        format!("{last} {stem} {}", pick(&mut r, country.company_suffix))
    });
    Person {
        number,
        country,
        female,
        first,
        last,
        email,
        phone,
        mobile,
        birth,
        company,
    }
}

/// Lower-case ASCII for e-mail local parts.
fn fold(name: &str) -> String {
    crate::map::slug(name).replace('_', "")
}

/// Who import row `i` is: usually person `i`, sometimes (an in-file
/// duplicate) an earlier row's person.
fn import_identity(seed: u64, i: u64) -> u64 {
    let mut r = rng(seed, Side::Import, 2, i);
    if i > 0 && r.random_bool(0.03) {
        r.random_range(0..i)
    } else {
        i
    }
}

enum StoreKind {
    SameAsImport(u64),
    PhoneOnly(u64),
    Fresh(u64),
}

/// Who store row `k` is. A store larger than the import holds the same
/// number of import people as a store of the import's size (a CRM of 10M
/// contacts does not know each of 1M new people several times).
fn store_identity(seed: u64, k: u64, import_rows: u64, store_rows: u64) -> StoreKind {
    let mut r = rng(seed, Side::Store, 2, k);
    let roll: f64 = r.random();
    let scale = if store_rows > import_rows {
        import_rows as f64 / store_rows as f64
    } else {
        1.0
    };
    if import_rows > 0 && roll < 0.35 * scale {
        StoreKind::SameAsImport(import_identity(seed, r.random_range(0..import_rows)))
    } else if import_rows > 0 && roll < 0.45 * scale {
        StoreKind::PhoneOnly(import_identity(seed, r.random_range(0..import_rows)))
    } else if k > 0 && roll < 0.45 * scale + 0.05 {
        store_identity(seed, r.random_range(0..k), import_rows, store_rows)
    } else {
        StoreKind::Fresh(import_rows + k)
    }
}

/// One rendered row: the person, formatted messily.
fn render(p: &Person, external_id: String, r: &mut ChaCha8Rng, email_override: Option<String>) -> [String; COLUMNS] {
    let c = p.country;
    let mut email = email_override.unwrap_or_else(|| p.email.clone());
    match r.random_range(0..100) {
        0..=7 => email = email.to_uppercase(),
        8..=15 => email = capitalize(&email),
        16..=20 => email = format!(" {email} "),
        _ => {}
    }
    if r.random_bool(0.025) {
        email = match r.random_range(0..4) {
            0 => email.replacen('@', "", 1),
            1 => email.replacen('@', "@@", 1),
            2 => email.replacen('.', " ", 1),
            _ => email.rsplit_once('.').map_or(email.clone(), |(a, _)| a.to_string()),
        };
    }
    let mut phone = format_phone(c, &p.phone, r);
    if r.random_bool(0.025) {
        phone = match r.random_range(0..3) {
            0 => p.phone[..4].to_string(),
            1 => format!("{}-ABC", &p.phone[..5]),
            _ => format!("{}{}", p.phone, p.phone),
        };
    }
    let mobile = p.mobile.as_ref().map(|m| format_phone(c, m, r)).unwrap_or_default();
    let &(city, postal) = pick(r, c.cities);
    let street = format!("{} {}", pick(r, c.streets), r.random_range(1..200));
    let (y, m, d) = p.birth;
    let birth = match r.random_range(0..10) {
        0..=2 => String::new(),
        3..=5 => format!("{y:04}-{m:02}-{d:02}"),
        6..=8 => format!("{d:02}.{m:02}.{y:04}"),
        _ => format!("{d:02}/{m:02}/{y:04}"),
    };
    let gender = if r.random_bool(0.15) {
        String::new()
    } else {
        pick(r, if p.female { c.genders.0 } else { c.genders.1 }).to_string()
    };
    let consent = |r: &mut ChaCha8Rng| match r.random_range(0..10) {
        0..=3 => pick(r, c.consent.0).to_string(),
        4..=6 => pick(r, c.consent.1).to_string(),
        _ => String::new(),
    };
    let email_consent = consent(r);
    let sms_consent = consent(r);
    let tags = if r.random_bool(0.1) {
        pick(r, names::TAGS).to_string()
    } else {
        String::new()
    };
    let note = if r.random_bool(0.06) {
        pick(r, names::NOTES).to_string()
    } else {
        String::new()
    };
    let first = if r.random_bool(0.03) {
        format!(" {} ", p.first)
    } else {
        p.first.to_string()
    };
    [
        external_id,
        first,
        p.last.to_string(),
        email,
        phone,
        mobile,
        p.company.clone().unwrap_or_default(),
        street,
        city.to_string(),
        postal.to_string(),
        pick(r, c.spellings).to_string(),
        gender,
        birth,
        email_consent,
        sms_consent,
        tags,
        note,
    ]
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|f| f.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A national number in one of the many ways people write phone numbers.
fn format_phone(c: &Country, national: &str, r: &mut ChaCha8Rng) -> String {
    let cc = c.calling_code;
    let groups = group(national);
    match r.random_range(0..9) {
        0 => format!("+{cc} {groups}"),
        1 => format!("00{cc}{national}"),
        2 => format!("{}{national}", c.trunk),
        3 => format!("{}{groups}", c.trunk),
        4 => format!("+{cc}-{}", groups.replace(' ', "-")),
        5 => format!("(+{cc}) {national}"),
        6 => format!("+{cc}{national}"),
        7 => format!("{cc}{national}"),
        _ if cc == "1" => format!("({}) {}-{}", &national[..3], &national[3..6], &national[6..]),
        _ => format!("{}{}", c.trunk, groups.replace(' ', "-")),
    }
}

/// Digits in groups of three (the last group takes what is left over).
fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + 4);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && i % 3 == 0 && digits.len() - i >= 2 {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

fn countries_for(encoding: Encoding) -> Vec<&'static Country> {
    // Norwegian letters (ø å æ) and US names need UTF-8; the Central
    // European encodings get Central European people.
    let mut list: Vec<&'static Country> = vec![&names::CZ, &names::CZ, &names::PL, &names::PL, &names::SK, &names::DE];
    if encoding == Encoding::Utf8 {
        list.extend([&names::NO, &names::NO, &names::US]);
    }
    list
}

fn import_row(seed: u64, i: u64, countries: &[&'static Country]) -> [String; COLUMNS] {
    let identity = import_identity(seed, i);
    let p = person(seed, identity, countries);
    let mut r = rng(seed, Side::Import, 3, i);
    render(&p, format!("A{:07}", i + 1), &mut r, None)
}

fn store_row(
    seed: u64,
    k: u64,
    import_rows: u64,
    store_rows: u64,
    countries: &[&'static Country],
) -> [String; COLUMNS] {
    let mut r = rng(seed, Side::Store, 3, k);
    let external_id = format!("S{:07}", k + 1);
    match store_identity(seed, k, import_rows, store_rows) {
        StoreKind::SameAsImport(n) | StoreKind::Fresh(n) => {
            render(&person(seed, n, countries), external_id, &mut r, None)
        }
        StoreKind::PhoneOnly(n) => {
            let p = person(seed, n, countries);
            let other = format!("{}.work{}@{}", fold(p.first), p.number, pick(&mut r, p.country.domains));
            render(&p, external_id, &mut r, Some(other))
        }
    }
}

/// Writes the generated file(s): `path`, and with `store_rows > 0` the
/// store file at `store_path`. Returns the paths written.
pub fn generate(options: &GenOptions, path: &Path, store_path: Option<&Path>) -> Result<Vec<PathBuf>> {
    if options.format == OutputFormat::Xlsx && options.rows.max(options.store_rows) > XLSX_MAX_ROWS {
        return Err(Error::usage(format!(
            "an XLSX sheet holds at most {XLSX_MAX_ROWS} rows"
        )));
    }
    let countries = countries_for(options.encoding);
    let seed = options.seed;
    let import_rows = options.rows;
    let mut written = vec![path.to_path_buf()];
    write_file(options, path, import_rows, |i| import_row(seed, i, &countries))?;
    if options.store_rows > 0 {
        let store_path = store_path.ok_or_else(|| Error::usage("--store-rows needs a store output path"))?;
        write_file(options, store_path, options.store_rows, |k| {
            store_row(seed, k, import_rows, options.store_rows, &countries)
        })?;
        written.push(store_path.to_path_buf());
    }
    Ok(written)
}

fn write_file<F>(options: &GenOptions, path: &Path, rows: u64, row: F) -> Result<()>
where
    F: Fn(u64) -> [String; COLUMNS] + Sync,
{
    match options.format {
        OutputFormat::Csv => write_csv(options, path, rows, row),
        OutputFormat::Xlsx => write_xlsx(options, path, rows, row),
    }
}

fn write_csv<F>(options: &GenOptions, path: &Path, rows: u64, row: F) -> Result<()>
where
    F: Fn(u64) -> [String; COLUMNS] + Sync,
{
    let io_err = |e: std::io::Error| Error::io(path, e);
    let file = File::create(path).map_err(io_err)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let encode_block = |rows: std::ops::Range<u64>, with_header: bool| -> Result<Vec<u8>> {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(options.delimiter)
            .quote_style(if options.quote_all {
                csv::QuoteStyle::Always
            } else {
                csv::QuoteStyle::Necessary
            })
            .from_writer(Vec::with_capacity(((rows.end - rows.start) * 200) as usize));
        let csv_err = |e: csv::Error| Error::io(path, std::io::Error::other(e));
        if with_header {
            writer.write_record(header(options.language)).map_err(csv_err)?;
        }
        for i in rows {
            writer.write_record(row(i)).map_err(csv_err)?;
        }
        let text = writer
            .into_inner()
            .map_err(|e| io_err(std::io::Error::other(e.to_string())))?;
        Ok(options.encoding.encode(&text))
    };
    let blocks = rows.div_ceil(BLOCK_ROWS);
    let window = (rayon::current_num_threads() as u64 * 4).max(1);
    if blocks == 0 {
        out.write_all(&encode_block(0..0, true)?).map_err(io_err)?;
    }
    let mut block = 0;
    while block < blocks {
        let end = (block + window).min(blocks);
        let encoded: Vec<Result<Vec<u8>>> = (block..end)
            .into_par_iter()
            .map(|b| encode_block(b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(rows), b == 0))
            .collect();
        for bytes in encoded {
            out.write_all(&bytes?).map_err(io_err)?;
        }
        block = end;
    }
    out.flush().map_err(io_err)
}

fn write_xlsx<F>(options: &GenOptions, path: &Path, rows: u64, row: F) -> Result<()>
where
    F: Fn(u64) -> [String; COLUMNS] + Sync,
{
    use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};
    let xlsx_err = |e: rust_xlsxwriter::XlsxError| Error::io(path, std::io::Error::other(e.to_string()));
    let mut workbook = Workbook::new();
    // A fixed creation time keeps the file byte-identical for a given seed.
    let created = ExcelDateTime::from_ymd(2026, 1, 1).map_err(xlsx_err)?;
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let sheet = workbook.add_worksheet();
    sheet.set_name("Contacts").map_err(xlsx_err)?;
    let iso = Format::new().set_num_format("yyyy-mm-dd");
    let czech = Format::new().set_num_format("dd.mm.yyyy");
    for (col, name) in header(options.language).iter().enumerate() {
        sheet.write_string(0, col as u16, *name).map_err(xlsx_err)?;
    }
    for i in 0..rows {
        let values = row(i);
        let line = (i + 1) as u32;
        for (col, value) in values.iter().enumerate() {
            let col16 = col as u16;
            if value.is_empty() {
                continue;
            }
            // Phones written as digits become numeric cells, and ISO birth
            // dates real date cells, as spreadsheets store them.
            let digits_only = value.bytes().all(|b| b.is_ascii_digit()) && value.len() >= 6 && !value.starts_with('0');
            if (col == 4 || col == 5) && digits_only {
                let number: f64 = value.parse().unwrap_or(0.0);
                sheet.write_number(line, col16, number).map_err(xlsx_err)?;
            } else if col == 12 && value.len() == 10 && value.as_bytes()[4] == b'-' {
                let y: u16 = value[..4].parse().unwrap_or(2000);
                let m: u8 = value[5..7].parse().unwrap_or(1);
                let d: u8 = value[8..10].parse().unwrap_or(1);
                let date = ExcelDateTime::from_ymd(y, m, d).map_err(xlsx_err)?;
                let format = if i % 2 == 0 { &iso } else { &czech };
                sheet
                    .write_datetime_with_format(line, col16, &date, format)
                    .map_err(xlsx_err)?;
            } else {
                sheet.write_string(line, col16, value).map_err(xlsx_err)?;
            }
        }
    }
    workbook.save(path).map_err(xlsx_err)
}

#[cfg(test)]
mod tests;
