//! Text encodings of contact files: UTF-8, the two Central European
//! single-byte encodings that Czech and Polish exports still use, and UTF-16
//! (Excel's "Unicode text"), which is transcoded to UTF-8 as it is read
//! ([`Utf16Reader`]) so the parser only ever sees the first three.
//!
//! Windows-1250 and ISO-8859-2 agree on ASCII and on most letters (č ř ě ů á ł
//! are the same bytes), but not on š ž ť ś ź ą ľ and their capitals; and bytes
//! 0x80-0x9F are letters only in Windows-1250 (C1 controls in ISO-8859-2).
//! Detection therefore scores how much of the decoded text is letters
//! (`detect`); generic detectors such as chardet get this wrong.
//!
//! Decoding of single-byte encodings is a 256-entry table (built once from
//! `encoding_rs`) applied per field, so parsing can work on the raw bytes
//! (delimiters and quotes are ASCII in all three) and byte offsets in error
//! details stay offsets into the source file.

use std::io::{self, Read};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Utf8,
    Windows1250,
    Iso8859_2,
    Utf16Le,
    Utf16Be,
}

impl Encoding {
    /// The name as the `--encoding` flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1250 => "windows-1250",
            Encoding::Iso8859_2 => "iso-8859-2",
            Encoding::Utf16Le => "utf-16le",
            Encoding::Utf16Be => "utf-16be",
        }
    }

    /// Parses an output `--encoding` value (`auto` is handled by the caller).
    pub fn from_flag(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "windows-1250" | "cp1250" => Some(Encoding::Windows1250),
            "iso-8859-2" | "latin2" | "latin-2" => Some(Encoding::Iso8859_2),
            _ => None,
        }
    }

    /// Parses an input `--encoding` value: the output ones, and UTF-16 in
    /// either byte order (files are only ever read in it).
    pub fn from_input_flag(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-16le" | "utf16le" => Some(Encoding::Utf16Le),
            "utf-16be" | "utf16be" => Some(Encoding::Utf16Be),
            other => Self::from_flag(other),
        }
    }

    pub fn is_utf16(self) -> bool {
        matches!(self, Encoding::Utf16Le | Encoding::Utf16Be)
    }

    fn whatwg(self) -> &'static encoding_rs::Encoding {
        match self {
            Encoding::Utf8 => encoding_rs::UTF_8,
            Encoding::Windows1250 => encoding_rs::WINDOWS_1250,
            Encoding::Iso8859_2 => encoding_rs::ISO_8859_2,
            Encoding::Utf16Le => encoding_rs::UTF_16LE,
            Encoding::Utf16Be => encoding_rs::UTF_16BE,
        }
    }

    /// The decoding table of a single-byte encoding; `None` for the others.
    pub(crate) fn table(self) -> Option<&'static SingleByteTable> {
        static W1250: OnceLock<SingleByteTable> = OnceLock::new();
        static L2: OnceLock<SingleByteTable> = OnceLock::new();
        match self {
            Encoding::Utf8 | Encoding::Utf16Le | Encoding::Utf16Be => None,
            Encoding::Windows1250 => Some(W1250.get_or_init(|| SingleByteTable::new(self))),
            Encoding::Iso8859_2 => Some(L2.get_or_init(|| SingleByteTable::new(self))),
        }
    }

    /// Encodes UTF-8 text in this encoding; characters it cannot hold
    /// become `?` (encoding_rs alone would write HTML entities).
    pub fn encode(self, utf8: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(utf8);
        // encoding_rs encodes to UTF-8 when asked for UTF-16 (as WHATWG
        // says for the web); files want the real thing.
        match self {
            Encoding::Utf16Le => return text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            Encoding::Utf16Be => return text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
            _ => {}
        }
        let (bytes, _, unmappable) = self.whatwg().encode(&text);
        if self == Encoding::Utf8 || !unmappable {
            return bytes.into_owned();
        }
        text.chars()
            .map(|c| match self.whatwg().encode(c.encode_utf8(&mut [0u8; 4])) {
                (b, _, false) if b.len() == 1 => b[0],
                _ => b'?',
            })
            .collect()
    }

    /// Decodes bytes to a string; for UTF-8, invalid sequences become U+FFFD
    /// (used only for messages and for the original values of bad rows).
    pub fn decode_lossy(self, bytes: &[u8]) -> String {
        if self.is_utf16() {
            return self.whatwg().decode_without_bom_handling(bytes).0.into_owned();
        }
        match self.table() {
            Some(table) => {
                let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
                table.decode_into(bytes, &mut out);
                String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            }
            None => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

/// UTF-8 bytes of each of the 256 byte values of a single-byte encoding.
pub(crate) struct SingleByteTable {
    /// Up to 3 UTF-8 bytes per byte value; `len` says how many are used.
    utf8: [[u8; 3]; 256],
    len: [u8; 256],
}

impl SingleByteTable {
    fn new(encoding: Encoding) -> Self {
        let mut utf8 = [[0u8; 3]; 256];
        let mut len = [0u8; 256];
        for byte in 0..=255u8 {
            let single = [byte];
            let (text, _) = encoding.whatwg().decode_without_bom_handling(&single);
            // Every byte of these two encodings maps to one BMP character
            // (WHATWG maps the few unassigned ones to the C1 code point).
            let c = text.chars().next().unwrap_or('\u{FFFD}');
            let n = c.encode_utf8(&mut utf8[byte as usize]).len();
            len[byte as usize] = n as u8;
        }
        SingleByteTable { utf8, len }
    }

    /// The character a byte stands for.
    pub(crate) fn char_of(&self, byte: u8) -> char {
        let bytes = &self.utf8[byte as usize][..self.len[byte as usize] as usize];
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.chars().next())
            .unwrap_or('\u{FFFD}')
    }

    /// Appends the UTF-8 form of `bytes` to `out`. ASCII runs are copied whole.
    #[inline]
    pub(crate) fn decode_into(&self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let ascii = rest.iter().position(|b| !b.is_ascii()).unwrap_or(rest.len());
            out.extend_from_slice(&rest[..ascii]);
            rest = &rest[ascii..];
            if let Some((&b, tail)) = rest.split_first() {
                out.extend_from_slice(&self.utf8[b as usize][..self.len[b as usize] as usize]);
                rest = tail;
            }
        }
    }
}

/// A UTF-16 stream (its BOM, if any, dropped) read as UTF-8. Unpaired
/// surrogates become U+FFFD, as every UTF-16 reader does.
pub(crate) struct Utf16Reader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` already handed out.
    taken: usize,
    finished: bool,
}

impl<R: Read> Utf16Reader<R> {
    pub(crate) fn new(inner: R, encoding: Encoding) -> Self {
        debug_assert!(encoding.is_utf16());
        Utf16Reader {
            inner,
            decoder: encoding.whatwg().new_decoder_with_bom_removal(),
            input: vec![0; 64 << 10],
            output: Vec::new(),
            taken: 0,
            finished: false,
        }
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.taken == self.output.len() && !self.finished {
            let n = super::read_up_to(&mut self.inner, &mut self.input)?;
            let last = n == 0;
            let room = self
                .decoder
                .max_utf8_buffer_length(n)
                .ok_or_else(|| io::Error::other("UTF-16 input too large to decode"))?;
            self.output.resize(room, 0);
            // The output has room for the whole input, so one call decodes it.
            let (_, _, written, _) = self.decoder.decode_to_utf8(&self.input[..n], &mut self.output, last);
            self.output.truncate(written);
            self.taken = 0;
            self.finished = last;
        }
        let n = buf.len().min(self.output.len() - self.taken);
        buf[..n].copy_from_slice(&self.output[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

/// Detects the encoding of a sample (the start of the file, BOM removed).
/// `complete` says the sample is the whole input, so a multi-byte character
/// cut at its end is an error rather than the sample's edge.
///
/// UTF-8 wins when the sample is valid UTF-8, or when its valid multi-byte
/// characters are at least half as many as its invalid sequences (a UTF-8
/// file with a few corrupt rows stays UTF-8; those rows become `bad_row`).
/// Czech or Polish text in a single-byte encoding has next to no valid
/// multi-byte sequences and an invalid one per accented word. Otherwise the
/// single-byte encoding whose decoding reads most like Czech/Polish text wins:
/// each non-ASCII byte scores +1 when it decodes to a letter, -2 to a symbol
/// (© ¦ ¶ ± » ...), -10 to a C1 control. A tie means the text reads the same
/// in both; Windows-1250 is then chosen.
pub fn detect(sample: &[u8], complete: bool) -> Encoding {
    let (multibyte, invalid) = utf8_census(sample, complete);
    if invalid == 0 || multibyte * 2 >= invalid {
        return Encoding::Utf8;
    }
    let score = |encoding: Encoding| -> i64 {
        let Some(table) = encoding.table() else { return 0 };
        sample
            .iter()
            .filter(|b| !b.is_ascii())
            .map(|&b| letter_score(table.char_of(b)))
            .sum()
    };
    if score(Encoding::Iso8859_2) > score(Encoding::Windows1250) {
        Encoding::Iso8859_2
    } else {
        Encoding::Windows1250
    }
}

fn letter_score(c: char) -> i64 {
    match c {
        '\u{80}'..='\u{9f}' => -10,
        // Alphabetic in Unicode, but symbols in running text.
        'µ' | 'ª' | 'º' => -2,
        c if c.is_alphabetic() => 1,
        _ => -2,
    }
}

/// Counts valid multi-byte UTF-8 characters and invalid sequences.
fn utf8_census(mut bytes: &[u8], complete: bool) -> (usize, usize) {
    let (mut multibyte, mut invalid) = (0, 0);
    loop {
        match simdutf8::compat::from_utf8(bytes) {
            Ok(text) => {
                multibyte += count_multibyte(text.as_bytes());
                return (multibyte, invalid);
            }
            Err(e) => {
                let valid = e.valid_up_to();
                multibyte += count_multibyte(&bytes[..valid]);
                match e.error_len() {
                    Some(len) => {
                        invalid += 1;
                        bytes = &bytes[valid + len..];
                    }
                    // Input ends inside a character: the sample's cut edge.
                    None => {
                        if complete {
                            invalid += 1;
                        }
                        return (multibyte, invalid);
                    }
                }
            }
        }
    }
}

/// Number of characters that start with a lead byte (>= 0xC0) in valid UTF-8.
fn count_multibyte(valid: &[u8]) -> usize {
    valid.iter().filter(|&&b| b >= 0xC0).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &str, encoding: Encoding) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding.whatwg().encode(text);
        assert!(!unmappable, "{text} not encodable in {encoding:?}");
        bytes.into_owned()
    }

    const CZECH: &str = "jméno;příjmení\nŠárka;Žáčková\nTomáš;Šťastný\nLuboš;Kožíšek\n";
    const POLISH: &str = "imię;nazwisko\nŚwiętosław;Źdźbło\nAgnieszka;Wąsowska\nJoanna;Jaśkiewicz\n";

    #[test]
    fn detects_utf8_including_a_cut_last_character() {
        let bytes = CZECH.as_bytes();
        assert_eq!(detect(bytes, true), Encoding::Utf8);
        // Cut inside the two-byte 'k' ... 'á' of the last line.
        let cut = bytes.len() - 4;
        assert_eq!(detect(&bytes[..cut], false), Encoding::Utf8);
    }

    #[test]
    fn tells_windows_1250_from_iso_8859_2() {
        for text in [CZECH, POLISH] {
            for encoding in [Encoding::Windows1250, Encoding::Iso8859_2] {
                let bytes = encode(text, encoding);
                assert_eq!(detect(&bytes, true), encoding, "{text}");
                assert_eq!(encoding.decode_lossy(&bytes), text);
            }
        }
    }

    #[test]
    fn a_few_corrupt_bytes_keep_utf8() {
        let mut bytes = CZECH.as_bytes().to_vec();
        bytes.extend_from_slice(b"Jan;Nov\xe1k\n");
        assert_eq!(detect(&bytes, true), Encoding::Utf8);
    }

    #[test]
    fn flag_names_round_trip() {
        for e in [Encoding::Utf8, Encoding::Windows1250, Encoding::Iso8859_2] {
            assert_eq!(Encoding::from_flag(e.name()), Some(e));
        }
        for e in [Encoding::Utf16Le, Encoding::Utf16Be] {
            assert_eq!(Encoding::from_input_flag(e.name()), Some(e));
            assert_eq!(Encoding::from_flag(e.name()), None, "output flags stay 8-bit");
        }
        assert_eq!(Encoding::from_flag("latin1"), None);
    }

    #[test]
    fn utf16_reads_as_utf8_across_buffer_edges() {
        let text = "Jméno\tE-mail\nŠárka\tsarka@x.cz\n😀\n".repeat(5000);
        for encoding in [Encoding::Utf16Le, Encoding::Utf16Be] {
            let mut bytes = encoding.encode("\u{feff}".as_bytes());
            bytes.extend(encoding.encode(text.as_bytes()));
            let mut out = String::new();
            // Over 64 KiB: the reader's buffer edges cut surrogate pairs apart.
            Utf16Reader::new(io::Cursor::new(bytes), encoding)
                .read_to_string(&mut out)
                .expect("decodes");
            assert_eq!(out, text);
        }
    }
}
