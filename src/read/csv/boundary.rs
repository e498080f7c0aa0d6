//! Where a chunk of CSV may be cut: after a line end outside quotes, so
//! that every chunk holds whole records and parses on its own.

use super::RecordParser;

/// The position just after the last line end that lies outside quotes, so
/// that `buf[..pos]` holds only whole records; `None` when there is none.
///
/// `buf` starts at a record start. Only quotes matter for the state: a quote
/// opens a quoted field when it is the field's first byte (after a delimiter
/// or a line end, or at the start); inside, a doubled quote is a literal and
/// a single one closes. A quote elsewhere is a literal, as in RFC 4180
/// parsers. So the scan jumps from quote to quote with memchr and never looks
/// at the bytes between, then looks back for the last line end after the
/// last quoted region.
pub(super) fn last_record_boundary(buf: &[u8], delimiter: u8, quote: u8) -> Option<usize> {
    // `outside_from`: bytes from here on are outside quotes (up to `open`).
    let mut outside_from = 0;
    let mut open: Option<usize> = None;
    let mut pos = 0;
    while let Some(found) = memchr::memchr(quote, &buf[pos..]) {
        let q = pos + found;
        match open {
            None => {
                let at_field_start = q == 0 || matches!(buf[q - 1], b'\n' | b'\r') || buf[q - 1] == delimiter;
                if at_field_start {
                    open = Some(q);
                }
                pos = q + 1;
            }
            Some(_) => {
                if buf.get(q + 1) == Some(&quote) {
                    pos = q + 2;
                } else {
                    open = None;
                    outside_from = q + 1;
                    pos = q + 1;
                }
            }
        }
        if pos >= buf.len() {
            break;
        }
    }
    let end = open.unwrap_or(buf.len());
    if let Some(nl) = memchr::memrchr(b'\n', &buf[outside_from..end]) {
        return Some(outside_from + nl + 1);
    }
    // No line end after the last quoted region: look before it, in the
    // stretch between the previous region and this one. Rare (a very long
    // quoted field); a rescan from the start finds the last safe line end.
    last_boundary_before(&buf[..outside_from.min(end)], delimiter, quote)
}

/// Slow path of `last_record_boundary`: walk every record with the parser
/// and keep the end of the last one that ended at a line end before the end
/// of `buf` (the one running into the end may be cut).
fn last_boundary_before(buf: &[u8], delimiter: u8, quote: u8) -> Option<usize> {
    let mut parser = RecordParser::new(delimiter, quote);
    let mut pos = 0;
    let mut last = None;
    while let Some((_, next)) = parser.next(buf, pos) {
        if next < buf.len() || matches!(buf.last(), Some(b'\n')) {
            last = Some(next);
        }
        pos = next;
    }
    last.filter(|&end| end < buf.len() || matches!(buf.last(), Some(b'\n')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_skips_line_ends_inside_quotes() {
        let buf = b"a,\"x\ny\"\nb,\"p\nq";
        // The last record is cut inside its quoted field: cut after "y"\n.
        assert_eq!(last_record_boundary(buf, b',', b'"'), Some(8));
        assert_eq!(last_record_boundary(b"a,b\nc,d\ne", b',', b'"'), Some(8));
        assert_eq!(last_record_boundary(b"a,\"b\nc", b',', b'"'), None);
    }

    #[test]
    fn boundary_treats_mid_field_quotes_as_literals() {
        // O"Neil has a stray quote; the line end after it is a boundary.
        let buf = b"O\"Neil,1\nx,2\ny";
        assert_eq!(last_record_boundary(buf, b',', b'"'), Some(13));
        // Doubled quotes inside a quoted field do not close it.
        let buf = b"\"a\"\"\n\"\"b\",1\nc";
        assert_eq!(last_record_boundary(buf, b',', b'"'), Some(12));
    }

    #[test]
    fn boundary_search_falls_back_to_the_parser() {
        // The only line end after the last-but-one quoted region is inside
        // quotes, so the cut goes before it, found by the slow path.
        let buf = b"\"x\",1\n\"a\",\"b\nc";
        assert_eq!(last_record_boundary(buf, b',', b'"'), Some(6));
    }

    #[test]
    fn boundary_before_a_long_quoted_field() {
        // A line end before a quoted field that spans the rest of the chunk.
        let buf = b"a,\"1\"\nb,\"long\nfield";
        assert_eq!(last_record_boundary(buf, b',', b'"'), Some(6));
    }
}
