//! One record at a time out of a byte slice, with RFC 4180 semantics as the
//! `csv` crate (and DuckDB, and Python) read them: a quote opens a quoted
//! field only at the field's start, a doubled quote inside is a literal, and
//! a quote anywhere else is an ordinary character (`O"Neil` stays `O"Neil`
//! and does not swallow the lines after it).
//!
//! Two paths, one semantics:
//! - fast: a line holding no quote character and no lone CR is split on the
//!   delimiter with memchr; fields are slices of the input (no copy). Every
//!   CSV dialect reads such a line the same way.
//! - slow: anything else goes through `csv_core` (BurntSushi's RFC 4180
//!   state machine), whose output is unescaped into a scratch buffer.
//!
//! Blank lines before a record are skipped; a record of empty fields is
//! reported as such and the caller decides (readers skip them).

use csv_core::{ReadRecordResult, ReaderBuilder};

/// Where the current record's fields live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Input,
    Scratch,
}

pub(crate) struct RecordParser {
    delimiter: u8,
    quote: u8,
    core: csv_core::Reader,
    scratch: Vec<u8>,
    ends: Vec<usize>,
    /// Field bounds of the current record, into the input or the scratch.
    bounds: Vec<(usize, usize)>,
    source: Source,
}

impl RecordParser {
    pub(crate) fn new(delimiter: u8, quote: u8) -> Self {
        RecordParser {
            delimiter,
            quote,
            core: ReaderBuilder::new().delimiter(delimiter).quote(quote).build(),
            scratch: vec![0; 4096],
            ends: vec![0; 64],
            bounds: Vec::with_capacity(64),
            source: Source::Input,
        }
    }

    /// Parses the record that starts at or after `pos` (blank lines are
    /// skipped). Returns `(record_start, next_pos)`, or `None` when only
    /// blank lines remain. The input is taken to end where the slice ends.
    pub(crate) fn next(&mut self, input: &[u8], mut pos: usize) -> Option<(usize, usize)> {
        while pos < input.len() && matches!(input[pos], b'\n' | b'\r') {
            pos += 1;
        }
        if pos >= input.len() {
            return None;
        }
        let start = pos;
        self.bounds.clear();
        // Fast path: up to the line end there is no quote and no lone CR.
        if let Some(next) = self.split_plain_line(input, start) {
            self.source = Source::Input;
            return Some((start, next));
        }
        self.bounds.clear();
        let rest = &input[start..];
        Some((start, start + self.parse_slow(rest)))
    }

    /// Splits the line at `start` on the delimiter in one pass, 16 bytes at
    /// a time: each block gives a mask of its delimiters, quotes and line
    /// ends ([`specials`]), and only those bytes are looked at. Returns the
    /// position after the line end; `None` (bounds left partial) when the
    /// line holds a quote or a lone CR, which need the full parser.
    #[inline]
    fn split_plain_line(&mut self, input: &[u8], start: usize) -> Option<usize> {
        let (d, q) = (self.delimiter, self.quote);
        let mut field_start = start;
        let mut block = start;
        loop {
            let (mut mask, width) = match input.get(block..block + 16) {
                Some(bytes) => (specials(bytes.try_into().unwrap_or(&[0; 16]), d, q), 16),
                None => {
                    let tail = &input[block..];
                    let mask = tail
                        .iter()
                        .enumerate()
                        .filter(|&(_, &b)| b == d || b == q || b == b'\n' || b == b'\r')
                        .fold(0u32, |mask, (k, _)| mask | 1 << k);
                    (mask, tail.len())
                }
            };
            while mask != 0 {
                let at = block + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let b = input[at];
                if b == d {
                    self.bounds.push((field_start, at));
                    field_start = at + 1;
                } else if b == b'\n' {
                    self.bounds.push((field_start, at));
                    return Some(at + 1);
                } else if b == b'\r' && input.get(at + 1) == Some(&b'\n') {
                    self.bounds.push((field_start, at));
                    return Some(at + 2);
                } else {
                    return None;
                }
            }
            if width < 16 {
                self.bounds.push((field_start, input.len()));
                return Some(input.len());
            }
            block += 16;
        }
    }

    /// Parses one record of `input` with csv_core into the scratch buffer;
    /// returns the bytes consumed.
    fn parse_slow(&mut self, input: &[u8]) -> usize {
        self.core.reset();
        self.source = Source::Scratch;
        let (mut nin_total, mut out, mut nends) = (0, 0, 0);
        loop {
            let (result, nin, nout, nend) =
                self.core
                    .read_record(&input[nin_total..], &mut self.scratch[out..], &mut self.ends[nends..]);
            nin_total += nin;
            out += nout;
            nends += nend;
            match result {
                ReadRecordResult::OutputFull => self.scratch.resize(self.scratch.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                // The slice is all there is: an empty read tells csv_core so.
                ReadRecordResult::InputEmpty if nin_total >= input.len() => {
                    let (result, _, nout, nend) =
                        self.core
                            .read_record(&[], &mut self.scratch[out..], &mut self.ends[nends..]);
                    out += nout;
                    nends += nend;
                    if matches!(result, ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull) {
                        self.scratch.resize(self.scratch.len() * 2, 0);
                        self.ends.resize(self.ends.len() * 2, 0);
                        continue;
                    }
                    break;
                }
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        let mut field_start = 0;
        for &end in &self.ends[..nends] {
            self.bounds.push((field_start, end));
            field_start = end;
        }
        nin_total
    }

    pub(crate) fn len(&self) -> usize {
        self.bounds.len()
    }

    /// Field `i` of the current record.
    #[inline]
    pub(crate) fn field<'a>(&'a self, input: &'a [u8], i: usize) -> &'a [u8] {
        let (a, b) = self.bounds[i];
        match self.source {
            Source::Input => &input[a..b],
            Source::Scratch => &self.scratch[a..b],
        }
    }

    /// Field `i` followed by at least 15 more readable bytes of the same
    /// buffer, when there are that many (lets short fields be copied with
    /// one fixed-size move); `None` near the buffer's end.
    #[inline]
    pub(crate) fn field_padded<'a>(&'a self, input: &'a [u8], i: usize) -> Option<&'a [u8; 16]> {
        let (a, _) = self.bounds[i];
        let buf = match self.source {
            Source::Input => input,
            Source::Scratch => &self.scratch,
        };
        buf.get(a..a + 16).and_then(|s| s.try_into().ok())
    }

    /// Every field empty or white space: a "fully empty row".
    pub(crate) fn is_blank(&self, input: &[u8]) -> bool {
        (0..self.len()).all(|i| self.field(input, i).iter().all(u8::is_ascii_whitespace))
    }

    /// The fields of the current record (for headers and bad rows).
    pub(crate) fn fields<'a>(&'a self, input: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        (0..self.len()).map(move |i| self.field(input, i))
    }
}

/// The field (0-based) of the record at the start of `record` whose
/// quote is never closed before `record` ends, with the semantics of the
/// parser: a quote opens a quoted field only as the field's first byte, a
/// doubled quote inside is a literal, a single one closes it.
pub(crate) fn unclosed_quote(record: &[u8], delimiter: u8, quote: u8) -> Option<usize> {
    let mut field = 0;
    let mut at_field_start = true;
    let mut i = 0;
    while i < record.len() {
        let b = record[i];
        if at_field_start && b == quote {
            let mut from = i + 1;
            loop {
                let Some(found) = memchr::memchr(quote, &record[from..]) else {
                    return Some(field);
                };
                let q = from + found;
                if record.get(q + 1) == Some(&quote) {
                    from = q + 2;
                } else {
                    i = q + 1;
                    break;
                }
            }
            at_field_start = false;
            continue;
        }
        if b == delimiter {
            field += 1;
            at_field_start = true;
        } else if matches!(b, b'\n' | b'\r') {
            return None;
        } else {
            at_field_start = false;
        }
        i += 1;
    }
    None
}

/// Bit `k` set where `block[k]` is the delimiter `d`, the quote `q`, CR
/// or LF: four byte compares of the whole block (SSE2, part of every
/// x86_64 CPU), or [`specials_swar`] elsewhere.
#[inline(always)]
fn specials(block: &[u8; 16], d: u8, q: u8) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
        // SAFETY: the load reads the 16 bytes of `block` (unaligned loads
        // are allowed), and SSE2 is part of every x86_64 CPU.
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            let is = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
            let hits = _mm_or_si128(_mm_or_si128(is(d), is(q)), _mm_or_si128(is(b'\n'), is(b'\r')));
            _mm_movemask_epi8(hits) as u32
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    specials_swar(block, d, q)
}

/// [`specials`] eight bytes at a time in general registers.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn specials_swar(block: &[u8; 16], d: u8, q: u8) -> u32 {
    let half = |bytes: &[u8]| {
        let w = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
        let hits = byte_mask(w, d) | byte_mask(w, q) | byte_mask(w, b'\n') | byte_mask(w, b'\r');
        // One bit per byte (its high bit), gathered into the top byte.
        ((hits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
    };
    half(&block[..8]) | half(&block[8..]) << 8
}

/// High bit set in exactly the bytes of `word` equal to `byte`.
#[inline(always)]
fn byte_mask(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    // A byte of x is zero exactly where word has `byte`; this form has no
    // carries between bytes, so no false positives.
    !(((x & LOW7) + LOW7) | x | LOW7)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn records(text: &str) -> Vec<Vec<String>> {
        let input = text.as_bytes();
        let mut parser = RecordParser::new(b',', b'"');
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some((_, next)) = parser.next(input, pos) {
            out.push(
                parser
                    .fields(input)
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect(),
            );
            pos = next;
        }
        out
    }

    #[test]
    fn rfc4180_cases() {
        assert_eq!(
            records("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\n\"multi\nline\",\r\nlast,row"),
            vec![
                vec!["a", "b"],
                vec!["x, y", "say \"hi\""],
                vec!["multi\nline", ""],
                vec!["last", "row"],
            ]
        );
    }

    #[test]
    fn stray_quotes_are_literal() {
        assert_eq!(
            records("O\"Neil,1\nx,2\n5\" screen,3\n"),
            vec![vec!["O\"Neil", "1"], vec!["x", "2"], vec!["5\" screen", "3"]]
        );
    }

    #[test]
    fn finds_the_field_whose_quote_never_closes() {
        let find = |r: &str| unclosed_quote(r.as_bytes(), b',', b'"');
        assert_eq!(find("q3@example.com,\"Unclosed,Co\nx,y,z\n"), Some(1));
        assert_eq!(find("\"open"), Some(0));
        assert_eq!(find("a,b,\"say \"\"hi\"\"\n"), Some(2));
        assert_eq!(find("a,\"closed\"\"\",c\n"), None);
        assert_eq!(find("a,\"multi\nline\",c"), None);
        // A quote inside a field is a literal, as the parser reads it.
        assert_eq!(find("O\"Neil,1\n"), None);
        assert_eq!(find("a,\"x\"y\"z,b"), None);
    }

    #[test]
    fn byte_mask_is_exact() {
        let word = u64::from_le_bytes(*b"a,\x80,\x00,,b");
        let mask = byte_mask(word, b',');
        let positions: Vec<u32> = (0..8).filter(|i| mask & (0x80 << (8 * i)) != 0).collect();
        assert_eq!(positions, vec![1, 3, 5, 6]);
        assert_eq!(mask.count_ones(), 4);
    }

    #[test]
    fn block_masks_find_exactly_the_special_bytes() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let alphabet = b"a,;\"'\n\r\x80\xff\x00\x7f ";
        for _ in 0..2000 {
            let mut block = [0u8; 16];
            for b in &mut block {
                *b = alphabet[rng.random_range(0..alphabet.len())];
            }
            for (d, q) in [(b',', b'"'), (b';', b'\'')] {
                let expected = (0..16)
                    .filter(|&k| [d, q, b'\n', b'\r'].contains(&block[k]))
                    .fold(0u32, |m, k| m | 1 << k);
                assert_eq!(specials(&block, d, q), expected, "{block:?}");
                assert_eq!(specials_swar(&block, d, q), expected, "{block:?}");
            }
        }
    }

    #[test]
    fn plain_lines_split_as_the_full_parser_splits_them() {
        // Lines of every length around the 16-byte blocks, ending in LF,
        // CRLF or the input's end; fast path against csv_core alone.
        for len in 0..40 {
            for end in ["\n", "\r\n", ""] {
                let line: String = (0..len).map(|k| if k % 3 == 2 { ',' } else { 'x' }).collect();
                let text = format!("{line}{end}next,1\n");
                let input = text.as_bytes();
                let mut fast = RecordParser::new(b',', b'"');
                let mut slow = RecordParser::new(b',', b'"');
                let Some((_, next)) = fast.next(input, 0) else {
                    assert!(line.is_empty() && !end.is_empty());
                    continue;
                };
                let consumed = slow.parse_slow(input);
                assert_eq!(fast.source, Source::Input);
                // csv_core may leave a CRLF's LF for the next record, which
                // skips line ends first.
                assert!(
                    next >= consumed && input[consumed..next].iter().all(|&b| b == b'\n'),
                    "{text:?}"
                );
                let fields = |p: &RecordParser| p.fields(input).map(<[u8]>::to_vec).collect::<Vec<_>>();
                assert_eq!(fields(&fast), fields(&slow), "{text:?}");
            }
        }
    }

    #[test]
    fn long_lines_cross_word_boundaries() {
        let line = "alpha,beta,gamma-gamma-gamma,delta,,epsilon\r\nx";
        assert_eq!(
            records(line),
            vec![
                vec!["alpha", "beta", "gamma-gamma-gamma", "delta", "", "epsilon"],
                vec!["x"]
            ]
        );
    }

    #[test]
    fn empty_fields_and_lone_cr() {
        assert_eq!(records(",,\n"), vec![vec!["", "", ""]]);
        assert_eq!(records("a,b\rc,d\r"), vec![vec!["a", "b"], vec!["c", "d"]]);
    }
}
