//! `kontakt gen` (module `synth`, as `gen` is reserved): seeded, messy, readable by kontakt's own readers.

use serde_json::json;

use crate::common::{fails, kontakt, preview_json, rows};

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, seed) in [("a.csv", "5"), ("b.csv", "5"), ("c.csv", "6")] {
        kontakt(dir.path())
            .args(["gen", "--rows", "3000", "--seed", seed, "-o", name])
            .assert()
            .success();
    }
    let read = |n: &str| std::fs::read(dir.path().join(n)).expect("read");
    assert_eq!(read("a.csv"), read("b.csv"));
    assert_ne!(read("a.csv"), read("c.csv"));
    let p = preview_json(dir.path(), "a.csv", &[]);
    assert_eq!(p["total_rows"], 3000);
    assert_eq!(p["header"], true);
    assert_eq!(p["columns"].as_array().expect("columns").len(), 17);
    assert_eq!(
        p["mapping"].as_object().expect("mapping").len(),
        17,
        "every generated header auto-maps"
    );
    assert!(p["bad_rows"].as_array().expect("bad").is_empty());
}

#[test]
fn store_file_overlaps_the_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    kontakt(dir.path())
        .args(["gen", "--rows", "2000", "--store-rows", "1000", "-o", "in.csv"])
        .assert()
        .success();
    let emails = |name: &str| -> std::collections::HashSet<String> {
        rows(&preview_json(dir.path(), name, &["--rows", "100000"]))
            .into_iter()
            .map(|r| r[3].trim().to_lowercase())
            .collect()
    };
    let import = emails("in.csv");
    let store = emails("in-store.csv");
    let shared = store.intersection(&import).count();
    // About 35% of store rows are import people (some share with each other).
    assert!((250..450).contains(&shared), "{shared} shared emails");
}

#[test]
fn windows_1250_semicolon_output_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    kontakt(dir.path())
        .args([
            "gen",
            "--rows",
            "500",
            "--encoding",
            "windows-1250",
            "--delimiter",
            ";",
            "--headers",
            "cs",
            "-o",
            "cz.csv",
        ])
        .assert()
        .success();
    let bytes = std::fs::read(dir.path().join("cz.csv")).expect("read");
    assert!(std::str::from_utf8(&bytes).is_err(), "not UTF-8");
    let p = preview_json(dir.path(), "cz.csv", &[]);
    assert_eq!(p["encoding"], "windows-1250");
    assert_eq!(p["delimiter"], ";");
    assert_eq!(p["columns"][1], "Jméno");
    assert_eq!(p["mapping"]["Příjmení"], "last_name");
    assert_eq!(p["total_rows"], 500);
}

#[test]
fn xlsx_output_has_numeric_phones_and_date_cells_read_back_as_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    kontakt(dir.path())
        .args(["gen", "--rows", "300", "-o", "c.xlsx"])
        .assert()
        .success();
    let p = preview_json(dir.path(), "c.xlsx", &["--rows", "300"]);
    assert_eq!(p["format"], "xlsx");
    assert_eq!(p["total_rows"], 300);
    let rows = rows(&p);
    // Phones written as numbers come back as the same digits.
    assert!(
        rows.iter()
            .any(|r| r[4].len() >= 9 && r[4].bytes().all(|b| b.is_ascii_digit()))
    );
    assert!(rows.iter().all(|r| !r[4].contains('e') && !r[4].contains('.')));
    // Date cells come back as ISO dates, whatever their display format.
    assert!(rows.iter().any(|r| r[12].len() == 10 && r[12].as_bytes()[4] == b'-'));
    assert_eq!(p["mapping"]["E-mail"], json!("email"));
}

#[test]
fn bad_gen_flags_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    fails(
        dir.path(),
        &["gen", "--rows", "1", "--encoding", "koi8", "-o", "x.csv"],
        2,
    );
    fails(
        dir.path(),
        &["gen", "--rows", "1", "--delimiter", "ab", "-o", "x.csv"],
        2,
    );
    let err = fails(dir.path(), &["gen", "--rows", "1", "-o", "missing-dir/x.csv"], 1);
    assert!(err.contains("missing-dir/x.csv"), "{err}");
}

#[test]
fn datasets_are_reproducible() {
    // The recipes of datasets/README.md, run again: byte for byte the same.
    let dir = tempfile::tempdir().expect("tempdir");
    let recipes: &[(&[&str], &[&str])] = &[
        (
            &[
                "--rows",
                "1000",
                "--seed",
                "1",
                "--store-rows",
                "600",
                "-o",
                "contacts.csv",
            ],
            &["contacts.csv", "contacts-store.csv"],
        ),
        (
            &[
                "--rows",
                "300",
                "--seed",
                "2",
                "--encoding",
                "windows-1250",
                "--delimiter",
                ";",
                "--headers",
                "cs",
                "-o",
                "kontakty-cp1250.csv",
            ],
            &["kontakty-cp1250.csv"],
        ),
        (
            &[
                "--rows",
                "50",
                "--seed",
                "3",
                "--delimiter",
                "tab",
                "--headers",
                "pl",
                "-o",
                "pasted.tsv",
            ],
            &["pasted.tsv"],
        ),
        (
            &["--rows", "200", "--seed", "4", "--headers", "no", "-o", "contacts.xlsx"],
            &["contacts.xlsx"],
        ),
    ];
    let datasets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets");
    for (args, files) in recipes {
        kontakt(dir.path()).arg("gen").args(*args).assert().success();
        for file in *files {
            let made = std::fs::read(dir.path().join(file)).expect("generated");
            let committed = std::fs::read(datasets.join(file)).expect("committed sample");
            assert!(made == committed, "datasets/{file} differs from its recipe");
        }
    }
}
