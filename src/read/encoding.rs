//! Text encodings of contact files: UTF-8, and the two Central European
//! single-byte encodings that Czech and Polish exports still use.
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

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Utf8,
    Windows1250,
    Iso8859_2,
}

impl Encoding {
    /// The name as the `--encoding` flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Windows1250 => "windows-1250",
            Encoding::Iso8859_2 => "iso-8859-2",
        }
    }

    /// Parses a `--encoding` value (`auto` is handled by the caller).
    pub fn from_flag(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "windows-1250" | "cp1250" => Some(Encoding::Windows1250),
            "iso-8859-2" | "latin2" | "latin-2" => Some(Encoding::Iso8859_2),
            _ => None,
        }
    }

    fn whatwg(self) -> &'static encoding_rs::Encoding {
        match self {
            Encoding::Utf8 => encoding_rs::UTF_8,
            Encoding::Windows1250 => encoding_rs::WINDOWS_1250,
            Encoding::Iso8859_2 => encoding_rs::ISO_8859_2,
        }
    }

    /// The decoding table of a single-byte encoding; `None` for UTF-8.
    pub(crate) fn table(self) -> Option<&'static SingleByteTable> {
        static W1250: OnceLock<SingleByteTable> = OnceLock::new();
        static L2: OnceLock<SingleByteTable> = OnceLock::new();
        match self {
            Encoding::Utf8 => None,
            Encoding::Windows1250 => Some(W1250.get_or_init(|| SingleByteTable::new(self))),
            Encoding::Iso8859_2 => Some(L2.get_or_init(|| SingleByteTable::new(self))),
        }
    }

    /// Encodes UTF-8 text in this encoding; characters it cannot hold
    /// become `?` (encoding_rs alone would write HTML entities).
    pub fn encode(self, utf8: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(utf8);
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
        assert_eq!(Encoding::from_flag("latin1"), None);
    }
}
