//! `kontakt preview`: detection, rows as read, mapping, bad rows, errors.

use serde_json::json;

use crate::common::{fails, kontakt, preview_json, rows, strings, succeeds, write};

#[test]
fn rfc4180_quotes_newlines_crlf_bom_and_no_final_newline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "\u{feff}name,note,email\r\n\
                \"Novák, Jan\",\"say \"\"hi\"\"\",jan@x.cz\r\n\
                Eva,\"line1\nline2\",eva@y.cz\r\n\
                ,,x@z.cz\r\n\
                \r\n\
                ,,\r\n\
                Petr,,petr@q.cz";
    write(dir.path(), "rfc.csv", text);
    let p = preview_json(dir.path(), "rfc.csv", &[]);
    assert_eq!(p["format"], "csv");
    assert_eq!(p["encoding"], "utf-8");
    assert_eq!(p["delimiter"], ",");
    assert_eq!(p["quote"], "\"");
    assert_eq!(p["header"], true);
    assert_eq!(p["columns"], json!(["name", "note", "email"]));
    assert_eq!(
        rows(&p),
        vec![
            strings(&["Novák, Jan", "say \"hi\"", "jan@x.cz"]),
            strings(&["Eva", "line1\nline2", "eva@y.cz"]),
            strings(&["", "", "x@z.cz"]),
            strings(&["Petr", "", "petr@q.cz"]),
        ]
    );
    // The blank line and the row of empty fields are not rows.
    assert_eq!(p["total_rows"], 4);
    assert_eq!(
        p["mapping"],
        json!({"name": "full_name", "note": "note", "email": "email"})
    );
}

#[test]
fn semicolon_file_with_quoted_commas_and_comma_file_with_quoted_semicolons() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "semi.csv",
        "Jméno;Adresa;E-mail\n\"Novák, Jan\";\"Dlouhá 5, Praha 1\";jan@x.cz\n\"Svoboda, Petr\";\"Krátká 1, Brno\";petr@y.cz\n",
    );
    let p = preview_json(dir.path(), "semi.csv", &[]);
    assert_eq!(p["delimiter"], ";");
    assert_eq!(rows(&p)[0], strings(&["Novák, Jan", "Dlouhá 5, Praha 1", "jan@x.cz"]));

    write(
        dir.path(),
        "comma.csv",
        "name,tags,email\nJan,\"vip;b2b\",jan@x.cz\nEva,\"lead;new;x\",eva@y.cz\n",
    );
    let p = preview_json(dir.path(), "comma.csv", &[]);
    assert_eq!(p["delimiter"], ",");
    assert_eq!(rows(&p)[1], strings(&["Eva", "lead;new;x", "eva@y.cz"]));
}

#[test]
fn windows_1250_and_iso_8859_2_are_detected_and_decoded_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    // "Šárka;Žáčková" and "Świętosław;Źdźbło" written out byte by byte.
    let windows_1250: &[u8] = b"jm\xe9no;p\xf8\xedjmen\xed\n\x8a\xe1rka;\x8e\xe1\xe8kov\xe1\nTom\xe1\x9a;\x8a\x9dastn\xfd\n\x8cwi\xeatos\xb3aw;\x8fd\x9fb\xb3o\n";
    let iso_8859_2: &[u8] = b"jm\xe9no;p\xf8\xedjmen\xed\n\xa9\xe1rka;\xae\xe1\xe8kov\xe1\nTom\xe1\xb9;\xa9\xbbastn\xfd\n\xa6wi\xeatos\xb3aw;\xacd\xbcb\xb3o\n";
    let expected = vec![
        strings(&["Šárka", "Žáčková"]),
        strings(&["Tomáš", "Šťastný"]),
        strings(&["Świętosław", "Źdźbło"]),
    ];
    for (name, bytes, encoding) in [
        ("w1250.csv", windows_1250, "windows-1250"),
        ("l2.csv", iso_8859_2, "iso-8859-2"),
    ] {
        write(dir.path(), name, bytes);
        let p = preview_json(dir.path(), name, &[]);
        assert_eq!(p["encoding"], encoding, "{name}");
        assert_eq!(p["columns"], json!(["jméno", "příjmení"]), "{name}");
        assert_eq!(rows(&p), expected, "{name}");
    }
    // The flag overrides detection (and then decodes as told).
    let p = preview_json(dir.path(), "w1250.csv", &["--encoding", "iso-8859-2"]);
    assert_eq!(p["encoding"], "iso-8859-2");
    // 0x8A is Š in Windows-1250 but a C1 control in ISO-8859-2.
    assert_eq!(rows(&p)[0][0], "\u{8a}árka");
}

#[test]
fn ragged_rows_and_invalid_bytes_become_bad_rows_and_the_rest_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"name,email,phone\nJan,jan@x.cz,777123456\nToo,few\n".to_vec();
    bytes.extend_from_slice(b"Bad,b\xffd@x.cz,1\n");
    bytes.extend_from_slice(
        "Žofie,zofie@x.cz,602123456,extra\nEva,eva@y.cz,603123456\nTrailing,t@x.cz,1,,\n".as_bytes(),
    );
    write(dir.path(), "ragged.csv", &bytes);
    let p = preview_json(dir.path(), "ragged.csv", &[]);
    assert_eq!(p["encoding"], "utf-8");
    assert_eq!(
        rows(&p),
        vec![
            strings(&["Jan", "jan@x.cz", "777123456"]),
            strings(&["Eva", "eva@y.cz", "603123456"]),
            strings(&["Trailing", "t@x.cz", "1"]),
        ]
    );
    let bad = p["bad_rows"].as_array().expect("bad_rows");
    let numbers: Vec<u64> = bad.iter().map(|b| b["row"].as_u64().expect("row")).collect();
    assert_eq!(numbers, vec![2, 3, 4]);
    let detail = |i: usize| bad[i]["detail"].as_str().expect("detail").to_string();
    assert!(detail(0).contains("expected 3 fields, found 2"), "{}", detail(0));
    assert!(detail(0).contains("byte 40"), "{}", detail(0));
    assert!(detail(1).contains("not UTF-8 in column 2"), "{}", detail(1));
    assert!(detail(2).contains("expected 3 fields, found 4"), "{}", detail(2));
    assert_eq!(bad[1]["fields"], json!(["Bad", "b\u{fffd}d@x.cz", "1"]));
    assert_eq!(p["total_rows"], 6);
}

#[test]
fn pasted_table_on_stdin_is_tab_separated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = kontakt(dir.path())
        .args(["preview", "-", "--json"])
        .write_stdin("Jméno\tPříjmení\tE-mail\nJan\tNovák\tjan@x.cz\nEva\tSvobodová\teva@y.cz\n")
        .output()
        .expect("run");
    assert!(output.status.success());
    let p: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(p["delimiter"], "\t");
    assert_eq!(
        p["mapping"],
        json!({"Jméno": "first_name", "Příjmení": "last_name", "E-mail": "email"})
    );
    assert_eq!(p["total_rows"], 2);
}

#[test]
fn header_detection_and_no_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "data.csv",
        "Jan,jan@x.cz,+420 777 123 456\nEva,eva@y.cz,602 123 456\n",
    );
    let p = preview_json(dir.path(), "data.csv", &[]);
    assert_eq!(p["header"], false);
    assert_eq!(p["columns"], json!(["col1", "col2", "col3"]));
    assert_eq!(p["total_rows"], 2);
    assert_eq!(p["mapping"], json!({}));

    // Without a header the width is the common one, so a ragged first row
    // is one bad row rather than making every other row bad.
    write(dir.path(), "ragged-first.csv", "a,b,c\n1,2\n3,4\n5,6\n");
    let p = preview_json(dir.path(), "ragged-first.csv", &["--no-header"]);
    assert_eq!(p["columns"], json!(["col1", "col2"]));
    assert_eq!(
        rows(&p),
        vec![strings(&["1", "2"]), strings(&["3", "4"]), strings(&["5", "6"])]
    );
    assert_eq!(p["bad_rows"][0]["row"], 1);

    write(dir.path(), "named.csv", "who,contact\nJan,jan@x.cz\n");
    let p = preview_json(dir.path(), "named.csv", &["--no-header"]);
    assert_eq!(p["header"], false);
    assert_eq!(rows(&p)[0], strings(&["who", "contact"]));
    assert_eq!(p["total_rows"], 2);
}

#[test]
fn the_first_row_is_the_header_unless_it_looks_like_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Words above small numbers: the wizard's "header row" ticked.
    write(dir.path(), "abc.csv", "a,b,c\n1,2,3\n");
    let p = preview_json(dir.path(), "abc.csv", &[]);
    assert_eq!(p["header"], true);
    assert_eq!(p["columns"], json!(["a", "b", "c"]));
    assert_eq!(rows(&p), vec![strings(&["1", "2", "3"])]);
    // Words above words: still a header, nothing in it looks like data.
    write(dir.path(), "words.csv", "jmeno,mesto\nJan,Praha\nEva,Brno\n");
    let p = preview_json(dir.path(), "words.csv", &[]);
    assert_eq!(p["header"], true);
    assert_eq!(p["total_rows"], 2);
    // A number, a date, a repeated or an empty cell: data.
    for (name, text) in [
        ("number.csv", "Jan,Novák,12\nEva,Nová,7\n"),
        ("date.csv", "Jan,14.3.1985\nEva,1.2.1990\n"),
        ("repeated.csv", "x,x,y\n1,2,3\n"),
        ("empty.csv", "who,,how\n1,2,3\n"),
        // Field names do not outweigh the rule (SPEC).
        ("fields-repeated.csv", "email,email,city\ns1@x.cz,s2@x.cz,Praha\n"),
        ("fields-empty.csv", "Name,Email,,City\nA,a@x.cz,,Praha\n"),
        ("fields-number.csv", "Email,Phone,2024\na@x.cz,+420777000001,5\n"),
    ] {
        write(dir.path(), name, text);
        let p = preview_json(dir.path(), name, &[]);
        assert_eq!(p["header"], false, "{name}");
        assert_eq!(p["total_rows"], 2, "{name}");
    }
    // The flags still decide when given.
    let p = preview_json(dir.path(), "abc.csv", &["--no-header"]);
    assert_eq!(p["header"], false);
    assert_eq!(p["columns"], json!(["col1", "col2", "col3"]));
    let p = preview_json(dir.path(), "number.csv", &["--header"]);
    assert_eq!(p["columns"], json!(["Jan", "Novák", "12"]));
    // A trailing delimiter leaves no empty cell: still a header, and the
    // rows below without one are rows of its two columns.
    write(dir.path(), "trailing.csv", "jmeno,mesto,\nJan,Praha\nEva,Brno\n");
    let p = preview_json(dir.path(), "trailing.csv", &[]);
    assert_eq!(p["header"], true);
    assert_eq!(p["columns"], json!(["jmeno", "mesto"]));
    assert_eq!(rows(&p), vec![strings(&["Jan", "Praha"]), strings(&["Eva", "Brno"])]);

    // With --header, a repeated name is a column of its own, not mapped
    // in the first one's place, and --map can name it: no value is lost.
    let p = preview_json(dir.path(), "fields-repeated.csv", &["--header"]);
    assert_eq!(p["columns"], json!(["email", "email (2)", "city"]));
    assert_eq!(p["mapping"], json!({"email": "email", "city": "city"}));
    let output = kontakt(dir.path())
        .args([
            "import",
            "fields-repeated.csv",
            "--header",
            "--progress",
            "never",
            "--out",
            "dup-out",
        ])
        .args(["--map", "email (2)=custom.other_email"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stored = String::from_utf8(
        kontakt(dir.path())
            .args(["contacts", "export", "-o", "-"])
            .output()
            .expect("export")
            .stdout,
    )
    .expect("utf-8");
    assert!(stored.contains("s1@x.cz") && stored.contains("s2@x.cz"), "{stored}");
    // Without it, an import that maps nothing says why and what to do.
    let err = fails(
        dir.path(),
        &[
            "import",
            "fields-empty.csv",
            "--dry-run",
            "--out",
            "o2",
            "--progress",
            "never",
        ],
        2,
    );
    assert!(err.contains("read as data") && err.contains("--header"), "{err}");

    // An XLSX sheet is judged alike: numbers below text headers.
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (col, name) in ["a", "b"].iter().enumerate() {
        sheet.write_string(0, col as u16, *name).expect("header");
        sheet.write_number(1, col as u16, col as f64 + 1.0).expect("cell");
    }
    book.save(dir.path().join("abc.xlsx")).expect("save");
    let p = preview_json(dir.path(), "abc.xlsx", &[]);
    assert_eq!(p["header"], true);
    assert_eq!(rows(&p), vec![strings(&["1", "2"])]);

    // import reads the same header, so both rows under it are contacts.
    write(dir.path(), "codes.csv", "jmeno,kod\nJan,A1\nEva,B2\n");
    let output = kontakt(dir.path())
        .args(["import", "codes.csv", "--progress", "never", "--dry-run"])
        .args(["--map", "jmeno=first_name", "--map", "kod=external_id"])
        .args(["--primary-key", "external_id", "--out", "codes-out"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("codes-out/summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["rows_read"], 2, "{summary}");
}

#[test]
fn rows_limit_and_text_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "c.csv", "E-mail,Telefon\na@x.cz,1\nb@x.cz,2\nc@x.cz,3\n");
    let p = preview_json(dir.path(), "c.csv", &["--rows", "2"]);
    assert_eq!(rows(&p).len(), 2);
    assert_eq!(p["total_rows"], 3);
    let output = kontakt(dir.path())
        .args(["preview", "c.csv", "--rows", "1"])
        .output()
        .expect("run");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("delimiter: ','"), "{text}");
    assert!(text.contains("E-mail") && text.contains("-> email"), "{text}");
    assert!(text.contains("Telefon") && text.contains("-> phone"), "{text}");
    assert!(text.contains("a@x.cz") && !text.contains("b@x.cz"), "{text}");
}

#[test]
fn empty_header_only_and_missing_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "empty.csv", "");
    let err = fails(dir.path(), &["preview", "empty.csv"], 1);
    assert!(err.contains("empty.csv") && err.contains("empty"), "{err}");

    write(dir.path(), "blank.csv", "\u{feff}\r\n\n  \n");
    let err = fails(dir.path(), &["preview", "blank.csv"], 1);
    assert!(err.contains("blank.csv") && err.contains("empty"), "{err}");

    write(dir.path(), "header.csv", "E-mail;Telefon\n");
    let p = preview_json(dir.path(), "header.csv", &[]);
    assert_eq!(p["columns"], json!(["E-mail", "Telefon"]));
    assert_eq!(p["total_rows"], 0);
    assert_eq!(rows(&p).len(), 0);

    let err = fails(dir.path(), &["preview", "nope.csv"], 1);
    assert!(err.contains("nope.csv"), "{err}");

    std::fs::create_dir(dir.path().join("folder")).expect("mkdir");
    let err = fails(dir.path(), &["preview", "folder"], 1);
    assert!(err.contains("folder") && err.contains("directory"), "{err}");
}

#[test]
fn bad_flags_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "c.csv", "a,b\n1,2\n");
    let err = fails(dir.path(), &["preview", "c.csv", "--delimiter", ";;"], 2);
    assert!(err.contains("--delimiter"), "{err}");
    let err = fails(dir.path(), &["preview", "c.csv", "--encoding", "latin9"], 2);
    assert!(err.contains("--encoding"), "{err}");
    let output = kontakt(dir.path())
        .args(["preview", "c.csv", "--bogus"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn version_names_duckdb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = kontakt(dir.path()).arg("--version").output().expect("run");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("kontakt 0.") && text.contains("DuckDB v1.5.6"),
        "{text}"
    );
}

#[test]
fn xlsx_cells_read_as_text_with_sheet_selection() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("book.xlsx");
    let mut book = Workbook::new();
    let first = book.add_worksheet();
    first.set_name("Notes").expect("name");
    first.write_string(0, 0, "not the contacts").expect("cell");
    let sheet = book.add_worksheet();
    sheet.set_name("Kontakty").expect("name");
    let czech_date = Format::new().set_num_format("dd.mm.yyyy");
    let date_time = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    for (col, name) in ["Jméno", "Telefon", "Narozen", "Skóre", "Vytvořeno", "VIP"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, col as u16, *name).expect("header");
    }
    sheet.write_string(1, 0, "Jan").expect("cell");
    sheet.write_number(1, 1, 420777123456.0).expect("cell");
    let birth = ExcelDateTime::from_ymd(1985, 3, 14).expect("date");
    sheet
        .write_datetime_with_format(1, 2, &birth, &czech_date)
        .expect("cell");
    sheet.write_number(1, 3, 12.5).expect("cell");
    let created = ExcelDateTime::parse_from_str("2024-01-02 13:45:00").expect("datetime");
    sheet
        .write_datetime_with_format(1, 4, &created, &date_time)
        .expect("cell");
    sheet.write_boolean(1, 5, true).expect("cell");
    // Row 3 of the sheet is left empty: skipped, not counted.
    sheet.write_string(3, 0, "Eva").expect("cell");
    sheet.write_number(3, 1, 602123456.0).expect("cell");
    book.save(&path).expect("save");

    let p = preview_json(dir.path(), "book.xlsx", &["--sheet", "Kontakty"]);
    assert_eq!(p["format"], "xlsx");
    assert_eq!(p["header"], true);
    assert_eq!(
        p["columns"],
        json!(["Jméno", "Telefon", "Narozen", "Skóre", "Vytvořeno", "VIP"])
    );
    assert_eq!(
        rows(&p),
        vec![
            strings(&[
                "Jan",
                "420777123456",
                "1985-03-14",
                "12.5",
                "2024-01-02 13:45:00",
                "true"
            ]),
            strings(&["Eva", "602123456", "", "", "", ""]),
        ]
    );
    assert_eq!(p["total_rows"], 2);

    // Without --sheet the first sheet is read.
    let p = preview_json(dir.path(), "book.xlsx", &["--header"]);
    assert_eq!(p["columns"], json!(["not the contacts"]));
    let err = fails(dir.path(), &["preview", "book.xlsx", "--sheet", "Nope"], 2);
    assert!(err.contains("Nope") && err.contains("Kontakty"), "{err}");
    // --sheet on a text table is a usage error, not ignored.
    write(dir.path(), "k.csv", "email\njan@x.cz\n");
    for command in ["preview", "import"] {
        let err = fails(dir.path(), &[command, "k.csv", "--sheet", "Kontakty"], 2);
        assert!(err.contains("k.csv") && err.contains("--sheet"), "{err}");
    }

    // A file that only claims to be XLSX is refused with one line.
    write(dir.path(), "fake.xlsx", b"PK\x03\x04 not really a zip");
    let err = fails(dir.path(), &["preview", "fake.xlsx"], 1);
    assert!(err.contains("fake.xlsx") && err.contains("XLSX"), "{err}");
}

/// A ZIP archive holding one empty file `hello.txt`, written out by hand
/// (stored, no compression): local header, central directory, end record.
fn zip_with_hello_txt() -> Vec<u8> {
    let name = b"hello.txt";
    let mut zip = Vec::new();
    zip.extend_from_slice(b"PK\x03\x04\x14\x00");
    zip.extend_from_slice(&[0; 20]); // flags, method, time, date, crc, sizes
    zip.extend_from_slice(&[name.len() as u8, 0, 0, 0]);
    zip.extend_from_slice(name);
    let central = zip.len() as u8;
    zip.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00");
    zip.extend_from_slice(&[0; 20]);
    zip.extend_from_slice(&[name.len() as u8, 0]);
    zip.extend_from_slice(&[0; 16]); // extra, comment, disk, attributes, offset 0
    zip.extend_from_slice(name);
    let central_len = zip.len() as u8 - central;
    zip.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00");
    zip.extend_from_slice(&[central_len, 0, 0, 0, central, 0, 0, 0, 0, 0]);
    zip
}

#[test]
fn text_that_spells_a_binary_magic_is_read_as_a_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    // "DUCK" at byte 8, "GIF8" and "%PDF-" at byte 0: all letters, no
    // control byte, so these are CSV files, not a DuckDB database or images.
    write(dir.path(), "duck.csv", "SCROOGE;DUCK;s@x.cz\nJan;Novak;j@x.cz\n");
    write(dir.path(), "gif.csv", "GIF8 team,email\nJan,j@x.cz\n");
    write(dir.path(), "pdf.csv", "%PDF-notes,email\nJan,j@x.cz\n");
    for file in ["duck.csv", "gif.csv", "pdf.csv"] {
        let preview = preview_json(dir.path(), file, &[]);
        assert!(!rows(&preview).is_empty(), "{file}: {preview}");
    }
}

#[test]
fn files_that_are_not_tables_are_refused_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.extend_from_slice(&[0; 120]);
    write(dir.path(), "ls", &elf);
    write(dir.path(), "leads.csv.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03");
    write(
        dir.path(),
        "leads.pdf",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<</Filter/FlateDecode>>stream\nx\x9c\x03\x00\x00\x00\x00\x01\nendstream\n",
    );
    // A PDF without compressed streams has no control byte at its start.
    write(
        dir.path(),
        "plain.pdf",
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    );
    write(dir.path(), "export.parquet", b"PAR1\x15\x04\x15\x00\x15\x00\x4c\x15");
    write(dir.path(), "nul.csv", b"name,email\nJan\x00\x00,jan@x.cz\n");
    write(dir.path(), "hello.zip", zip_with_hello_txt());
    for (file, looks) in [
        ("ls", "ELF executable"),
        ("leads.csv.gz", "gzip archive"),
        ("leads.pdf", "PDF document"),
        ("plain.pdf", "PDF document"),
        ("export.parquet", "Parquet file"),
        ("nul.csv", "NUL bytes"),
        ("hello.zip", "ZIP archive"),
    ] {
        for command in [
            vec!["preview", file],
            vec!["preview", "--json", file],
            vec!["import", file, "--dry-run", "--out", "out", "--progress", "never"],
        ] {
            let err = fails(dir.path(), &command, 1);
            assert!(err.contains(file) && err.contains(looks), "{command:?}: {err}");
        }
    }
    // --format csv does not make a binary file text.
    let err = fails(dir.path(), &["preview", "ls", "--format", "csv"], 1);
    assert!(err.contains("ELF"), "{err}");
    // Standard input is looked at the same way.
    let output = kontakt(dir.path())
        .args(["preview", "-"])
        .write_stdin(elf)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("ELF"));
}

/// `text` in UTF-16 of the given byte order, with or without its BOM.
fn utf16(text: &str, little_endian: bool, bom: bool) -> Vec<u8> {
    let units = bom.then_some(0xFEFF).into_iter().chain(text.encode_utf16());
    units
        .flat_map(|u| {
            if little_endian {
                u.to_le_bytes()
            } else {
                u.to_be_bytes()
            }
        })
        .collect()
}

#[test]
fn utf16_unicode_text_from_excel_is_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Excel's "Unicode text": UTF-16LE with a BOM, tab-separated, CRLF.
    let text = "Jméno\tPříjmení\tE-mail\r\nŠárka\tŽáčková\tsarka@x.cz\r\nŁukasz\tWąs\tlukasz@x.pl\r\n";
    write(dir.path(), "le.txt", utf16(text, true, true));
    write(dir.path(), "be.txt", utf16(text, false, true));
    write(dir.path(), "bare.txt", utf16(text, true, false));
    let expected = vec![
        strings(&["Šárka", "Žáčková", "sarka@x.cz"]),
        strings(&["Łukasz", "Wąs", "lukasz@x.pl"]),
    ];
    for (file, args, encoding) in [
        ("le.txt", &[][..], "utf-16le"),
        ("be.txt", &[][..], "utf-16be"),
        // Without a BOM the flag says what it is.
        ("bare.txt", &["--encoding", "utf-16le"][..], "utf-16le"),
    ] {
        let p = preview_json(dir.path(), file, args);
        assert_eq!(p["encoding"], encoding, "{file}");
        assert_eq!(p["delimiter"], "\t", "{file}");
        assert_eq!(p["header"], true, "{file}");
        assert_eq!(p["columns"], json!(["Jméno", "Příjmení", "E-mail"]), "{file}");
        assert_eq!(rows(&p), expected, "{file}");
        assert_eq!(p["total_rows"], 2, "{file}");
    }
    let output = kontakt(dir.path()).args(["preview", "le.txt"]).output().expect("run");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("encoding: utf-16le"));
    // Without the flag a BOM-less UTF-16 file is refused, not misread, and
    // the message says which flag reads it.
    let err = fails(dir.path(), &["preview", "bare.txt"], 1);
    assert!(err.contains("bare.txt") && err.contains("--encoding utf-16le"), "{err}");

    // import reads it as preview does.
    let output = kontakt(dir.path())
        .args(["import", "le.txt", "--progress", "never", "--out", "le-out"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("le-out/summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["rows_read"], 2, "{summary}");
    assert_eq!(summary["imported"], 2, "{summary}");
    let list = succeeds(dir.path(), &["contacts", "list"]);
    let list = String::from_utf8_lossy(&list);
    assert!(list.contains("Žáčková") && list.contains("lukasz@x.pl"), "{list}");
}

#[test]
fn skip_rows_skips_title_lines_and_preview_suggests_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A title with commas above a `;` table, then a blank line.
    let text = "Leads, Q4, 2026, Praha\n\nJméno;E-mail;Telefon\nJan;jan@x.cz;777 123 456\nEva;bad-email;602 123 456\n";
    write(dir.path(), "titled.csv", text);

    // Not skipped by default (SPEC: a flag), but suggested, in JSON and text.
    let p = preview_json(dir.path(), "titled.csv", &[]);
    assert_eq!(p["skip_rows"], 0);
    assert_eq!(p["suggested_skip_rows"], 2);
    assert_eq!(p["delimiter"], ";");
    let output = kontakt(dir.path())
        .args(["preview", "titled.csv"])
        .output()
        .expect("run");
    assert!(output.status.success());
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("looks like 2 title lines above the table: try --skip-rows 2"),
        "{shown}"
    );

    let p = preview_json(dir.path(), "titled.csv", &["--skip-rows", "2"]);
    assert_eq!(p["skip_rows"], 2);
    assert_eq!(p["suggested_skip_rows"], serde_json::Value::Null);
    assert_eq!(p["delimiter"], ";");
    assert_eq!(p["header"], true);
    assert_eq!(p["columns"], json!(["Jméno", "E-mail", "Telefon"]));
    assert_eq!(rows(&p)[0], strings(&["Jan", "jan@x.cz", "777 123 456"]));
    assert_eq!(p["total_rows"], 2);
    // Skipping only the title leaves the blank line, skipped as always.
    let p = preview_json(dir.path(), "titled.csv", &["--skip-rows", "1"]);
    assert_eq!(p["columns"], json!(["Jméno", "E-mail", "Telefon"]));

    // Empty records count: a title, a blank line and a row of empty fields.
    write(
        dir.path(),
        "excel.csv",
        "\u{feff}Kontakty,,\r\n\r\n,,\r\nname,email,note\r\nJan,jan@x.cz,\"a\r\nb\"\r\n",
    );
    let p = preview_json(dir.path(), "excel.csv", &[]);
    assert_eq!(p["suggested_skip_rows"], 3);
    let p = preview_json(dir.path(), "excel.csv", &["--skip-rows", "3"]);
    assert_eq!(p["columns"], json!(["name", "email", "note"]));
    assert_eq!(rows(&p), vec![strings(&["Jan", "jan@x.cz", "a\r\nb"])]);
    // The header itself may be skipped too: then the first data row is read
    // as the header would be, and --no-header keeps it.
    let p = preview_json(dir.path(), "excel.csv", &["--skip-rows", "4", "--no-header"]);
    assert_eq!(rows(&p), vec![strings(&["Jan", "jan@x.cz", "a\r\nb"])]);

    let err = fails(dir.path(), &["preview", "titled.csv", "--skip-rows", "9"], 1);
    assert!(err.contains("titled.csv") && err.contains("--skip-rows"), "{err}");

    // import: row numbers count data rows after the header.
    let output = kontakt(dir.path())
        .args(["import", "titled.csv", "--skip-rows", "2", "--progress", "never"])
        .args(["--default-country", "CZ", "--out", "titled-out"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out = dir.path().join("titled-out");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["rows_read"], 2, "{summary}");
    let failed = crate::import::csv_rows(&out.join("failed.csv"));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["row"], "2");
    assert_eq!(failed[0]["Jméno"], "Eva");
}

#[test]
fn skip_rows_on_a_sheet_counts_sheet_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    // Row 1 a title, row 2 empty, row 3 the header, rows 4-5 the data.
    sheet.write_string(0, 0, "Export 2026-11-30").expect("title");
    for (col, name) in ["Jméno", "E-mail"].iter().enumerate() {
        sheet.write_string(2, col as u16, *name).expect("header");
    }
    sheet.write_string(3, 0, "Jan").expect("cell");
    sheet.write_string(3, 1, "jan@x.cz").expect("cell");
    sheet.write_string(4, 0, "Eva").expect("cell");
    sheet.write_string(4, 1, "eva@x.cz").expect("cell");
    book.save(dir.path().join("titled.xlsx")).expect("save");

    let p = preview_json(dir.path(), "titled.xlsx", &[]);
    assert_eq!(p["skip_rows"], 0);
    assert_eq!(p["suggested_skip_rows"], 2);
    let p = preview_json(dir.path(), "titled.xlsx", &["--skip-rows", "2"]);
    assert_eq!(p["skip_rows"], 2);
    assert_eq!(p["suggested_skip_rows"], serde_json::Value::Null);
    assert_eq!(p["columns"], json!(["Jméno", "E-mail"]));
    assert_eq!(
        rows(&p),
        vec![strings(&["Jan", "jan@x.cz"]), strings(&["Eva", "eva@x.cz"])]
    );
    assert_eq!(p["mapping"], json!({"Jméno": "first_name", "E-mail": "email"}));
    let err = fails(dir.path(), &["preview", "titled.xlsx", "--skip-rows", "5"], 1);
    assert!(err.contains("titled.xlsx") && err.contains("--skip-rows"), "{err}");
}

#[test]
fn an_import_of_a_file_with_a_title_says_to_skip_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    write(
        dir,
        "titled.csv",
        "Export 2026-11-30\n\nemail,first_name\nann@example.cz,Ann\n",
    );
    let stderr = fails(dir, &["import", "titled.csv"], 2);
    assert!(stderr.contains("try --skip-rows 2"), "{stderr}");
    succeeds(dir, &["import", "titled.csv", "--skip-rows", "2"]);
    let rows = crate::import::csv_rows(&dir.join("kontakt-out/titled/no_match.csv"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["email"], "ann@example.cz");
    assert_eq!(rows[0]["row"], "1");
}
