//! An upsert that updates most of the store is applied in parts (a range
//! of contact ids at a time, docs/DESIGN.md "Applying the updates"); it
//! must give exactly what the same upsert applied in one part gives.
//! `KONTAKT_TEST_UPDATE_PART_ROWS` makes a small store's update many
//! parts, some split by the quantiles of their ids.

use std::path::Path;

use serde_json::Value;

use crate::common::{kontakt, succeeds};

/// `kontakt import` in `dir` with `part_rows` staged rows per part (none:
/// the default); the summary.
fn import_in_parts(dir: &Path, part_rows: Option<&str>, args: &[&str]) -> Value {
    let mut cmd = kontakt(dir);
    if let Some(rows) = part_rows {
        cmd.env("KONTAKT_TEST_UPDATE_PART_ROWS", rows);
    }
    let output = cmd
        .args(["import", "--progress", "never", "--secondary-key", "phone", "--json"])
        .args(args)
        .output()
        .expect("run kontakt");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "import {args:?} failed: {stderr}");
    serde_json::from_slice(&output.stdout).expect("--json prints the summary")
}

/// Every contact with every field, timestamps masked (two stores built at
/// different times differ only there).
fn contacts(dir: &Path) -> String {
    succeeds(dir, &["contacts", "export", "-o", "all.csv"]);
    let text = std::fs::read_to_string(dir.join("all.csv")).expect("export");
    let stamp = regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?").expect("regex");
    stamp.replace_all(&text, "TIME").into_owned()
}

/// A store of about 3300 contacts changed by a file (which adds none),
/// then the store's own file
/// imported again with a tag: every stored contact matches it, so it
/// updates all of them (tags) and takes back the file's changes (fields,
/// consents). The summaries of the three imports.
fn large_share_upsert(dir: &Path, part_rows: Option<&str>) -> Vec<Value> {
    kontakt(dir)
        .args([
            "gen",
            "--rows",
            "4000",
            "--seed",
            "5",
            "--store-rows",
            "4000",
            "-o",
            "big.csv",
        ])
        .assert()
        .success();
    vec![
        import_in_parts(dir, None, &["big-store.csv", "--name", "base"]),
        import_in_parts(dir, None, &["big.csv", "--name", "changes", "--on-no-match", "skip"]),
        import_in_parts(dir, part_rows, &["big-store.csv", "--name", "back", "--tag", "again"]),
    ]
}

#[test]
fn an_upsert_of_most_of_the_store_in_parts_gives_what_one_part_gives() {
    let parted = tempfile::tempdir().expect("tempdir");
    let whole = tempfile::tempdir().expect("tempdir");
    // 200 rows per part: 16 buckets of 250 ids, each split in two.
    let parted_summaries = large_share_upsert(parted.path(), Some("200"));
    let whole_summaries = large_share_upsert(whole.path(), None);

    let stored = parted_summaries[0]["imported"].as_u64().expect("imported");
    let updated = parted_summaries[2]["contacts_updated"].as_u64().expect("updated");
    assert!(updated * 2 > stored, "{updated} of {stored} contacts updated");
    let changed_back = parted_summaries[1]["contacts_updated"].as_u64().expect("updated");
    assert!(changed_back > 500, "the file changed {changed_back} contacts");
    for (parted, whole) in parted_summaries.iter().zip(&whole_summaries) {
        for count in ["imported", "updated", "contacts_updated", "skipped", "rows_failed"] {
            assert_eq!(parted[count], whole[count], "{count}: {parted} against {whole}");
        }
    }
    let (parted, whole) = (contacts(parted.path()), contacts(whole.path()));
    let imported: u64 = parted_summaries
        .iter()
        .map(|s| s["imported"].as_u64().expect("imported"))
        .sum();
    assert!(parted.starts_with("id,"), "{}", &parted[..100]);
    let ids = parted
        .lines()
        .filter(|l| l.split(',').next().is_some_and(|id| id.parse::<u64>().is_ok()));
    assert_eq!(ids.count() as u64, imported, "every contact exported");
    assert!(parted.contains("again"), "the tag was added");
    assert!(parted == whole, "the stores differ");
}

#[test]
fn an_upsert_of_most_of_the_store_applied_in_parts_is_undone_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let summaries = large_share_upsert(dir, Some("200"));
    succeeds(dir, &["contacts", "export", "-o", "before.csv"]);
    let before = std::fs::read(dir.join("before.csv")).expect("export");
    // The store's file again, in parts, with a tag: every contact changes.
    let again = import_in_parts(
        dir,
        Some("200"),
        &["big-store.csv", "--name", "again", "--tag", "twice", "--master", "file"],
    );
    let stored = summaries[0]["imported"].as_u64().expect("imported");
    assert!(
        again["contacts_updated"].as_u64().expect("updated") * 2 > stored,
        "{again}"
    );
    let undone: Value = serde_json::from_slice(&succeeds(dir, &["imports", "undo", "again", "--json"])).expect("JSON");
    assert_eq!(undone["restored"], again["contacts_updated"], "{undone}");
    succeeds(dir, &["contacts", "export", "-o", "after.csv"]);
    let after = std::fs::read(dir.join("after.csv")).expect("export");
    assert!(after == before, "every contact as it was, times included");
    // Then the earlier `changes` (which `back` changed again since) is
    // refused, and `back` undone first makes it possible.
    let err = crate::common::fails(dir, &["imports", "undo", "changes"], 2);
    assert!(err.contains("changed or were deleted after it"), "{err}");
    succeeds(dir, &["imports", "undo", "back"]);
    succeeds(dir, &["imports", "undo", "changes"]);
    succeeds(dir, &["contacts", "export", "-o", "first.csv"]);
    let first = std::fs::read(dir.join("first.csv")).expect("export");
    let base: Vec<u8> = {
        // The base import alone, exported the same way.
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::copy(dir.join("big-store.csv"), other.path().join("big-store.csv")).expect("copy");
        import_in_parts(other.path(), None, &["big-store.csv", "--name", "base"]);
        succeeds(other.path(), &["contacts", "export", "-o", "base.csv"]);
        std::fs::read(other.path().join("base.csv")).expect("export")
    };
    let mask = |bytes: &[u8]| {
        let stamp = regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?").expect("regex");
        stamp.replace_all(&String::from_utf8_lossy(bytes), "TIME").into_owned()
    };
    assert!(
        mask(&first) == mask(&base),
        "three undos leave what the base import made"
    );
}
