//! Library-level properties of the readers that the binary cannot show:
//! chunked parallel parsing gives exactly what one-chunk parsing gives,
//! wherever the chunk boundaries fall.

use std::path::Path;

use kontakt::read::{self, Input, ReadOptions};

/// A row number with the row's values.
type NumberedRow = (u64, Vec<String>);

/// Every good row and every bad row (with its fields as read).
fn read_all(path: &Path, chunk_bytes: usize) -> (Vec<NumberedRow>, Vec<NumberedRow>) {
    let options = ReadOptions {
        chunk_bytes,
        ..ReadOptions::default()
    };
    let table = read::open(&Input::Path(path.to_path_buf()), &options).expect("open");
    let columns = table.columns.len();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for batch in table {
        let batch = batch.expect("batch");
        for i in 0..batch.num_rows() {
            let values = (0..columns).map(|c| batch.column(c).value(i).to_string()).collect();
            good.push((batch.rows().value(i), values));
        }
        bad.extend(batch.bad_rows.iter().map(|b| (b.row, b.fields.clone())));
    }
    (good, bad)
}

#[test]
fn chunk_boundaries_do_not_change_what_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("name,note,email\n");
    for i in 0..400 {
        match i % 7 {
            0 => text.push_str(&format!("\"Novák, {i}\",\"multi\nline \"\"{i}\"\"\",n{i}@x.cz\n")),
            1 => text.push_str(&format!("O\"Neil {i},5\" screen,o{i}@x.cz\r\n")),
            2 => text.push_str(&format!("ragged {i},r{i}@x.cz\n")),
            3 => text.push_str("\n,,\n"),
            _ => text.push_str(&format!("Žofie {i},,z{i}@x.cz\n")),
        }
    }
    let path = dir.path().join("mixed.csv");
    std::fs::write(&path, &text).expect("write");
    let whole = read_all(&path, 1 << 24);
    // 57 of the 400 lines are a blank line and a row of empty fields.
    assert_eq!(whole.0.len() + whole.1.len(), 400 - 57, "blank rows are not rows");
    assert_eq!(whole.0[0].1, vec!["Novák, 0", "multi\nline \"0\"", "n0@x.cz"]);
    assert_eq!(whole.0[1].1, vec!["O\"Neil 1", "5\" screen", "o1@x.cz"]);
    assert_eq!(whole.1[0], (3, vec!["ragged 2".to_string(), "r2@x.cz".to_string()]));
    for chunk in [1024, 1500, 4096, 7777] {
        assert_eq!(read_all(&path, chunk), whole, "chunk size {chunk}");
    }
}

#[test]
fn a_record_longer_than_a_chunk_is_read_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = "x".repeat(5000);
    let text = format!("name,note\n1,\"{long}\nstill\"\n2,short\n");
    let path = dir.path().join("long.csv");
    std::fs::write(&path, text).expect("write");
    let (good, bad) = read_all(&path, 1024);
    assert!(bad.is_empty());
    assert_eq!(good.len(), 2);
    assert_eq!(good[0].1[1], format!("{long}\nstill"));
    assert_eq!(good[1], (2, vec!["2".to_string(), "short".to_string()]));
}

#[test]
fn skipped_title_lines_leave_rows_numbered_from_the_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from("Export 2026-11-30;;\r\n\r\n;;\r\nname;email;note\r\n");
    for i in 0..300 {
        text.push_str(&format!("Jan {i};j{i}@x.cz;\"a\r\nb {i}\"\r\n"));
    }
    let path = dir.path().join("titled.csv");
    std::fs::write(&path, &text).expect("write");
    for chunk_bytes in [1024, 1 << 24] {
        let options = ReadOptions {
            skip_rows: 3,
            chunk_bytes,
            ..ReadOptions::default()
        };
        let table = read::open(&Input::Path(path.clone()), &options).expect("open");
        assert_eq!(table.detected.delimiter, b';');
        assert_eq!(table.detected.skip_rows, 3);
        assert_eq!(table.detected.suggested_skip_rows, None);
        assert_eq!(table.columns, vec!["name", "email", "note"]);
        let mut numbers = Vec::new();
        for batch in table {
            let batch = batch.expect("batch");
            assert!(batch.bad_rows.is_empty());
            numbers.extend((0..batch.num_rows()).map(|i| batch.rows().value(i)));
        }
        assert_eq!(numbers, (1..=300).collect::<Vec<u64>>(), "chunk size {chunk_bytes}");
    }
}
