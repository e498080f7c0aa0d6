//! Store access (SPEC, Exit codes and errors): commands that only read open
//! the store read-only: they work on a file that cannot be written, create
//! nothing where no store exists, and a store held by an import is refused
//! at once in one line that names the import's process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{fails, succeeds};
use crate::import::import;

/// The commands of SPEC's read-only list that take a store.
const READ_COMMANDS: &[&[&str]] = &[
    &["imports", "list"],
    &["imports", "list", "--json"],
    &["imports", "show", "1"],
    &["contacts", "list"],
    &["contacts", "show", "1"],
    &["contacts", "export", "-o", "out.csv"],
];

#[test]
fn reading_a_store_that_does_not_exist_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    for args in READ_COMMANDS {
        let args = [&["--db", "typo.duckdb"], *args].concat();
        let stderr = fails(dir, &args, 1);
        assert!(
            stderr.contains("typo.duckdb") && stderr.contains("no store"),
            "{stderr}"
        );
        let left: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
    // A dry run classifies against an empty store, says so, creates none.
    crate::common::write(dir, "a.csv", "email\nann@example.cz\n");
    let output = crate::common::kontakt(dir)
        .args(["--db", "typo.duckdb", "import", "a.csv", "--dry-run"])
        .output()
        .expect("run");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no store at typo.duckdb"), "{stderr}");
    assert!(!dir.join("typo.duckdb").exists());
}

/// A store of two contacts, imported from `a.csv` as group `name`.
fn two_contacts(dir: &Path, name: &str) {
    crate::common::write(
        dir,
        "a.csv",
        "email,first_name\nann@example.cz,Ann\nbob@example.cz,Bob\n",
    );
    import(dir, &["a.csv", "--name", name]);
}

/// Makes a file immutable (even root cannot write it) until dropped.
struct Immutable(PathBuf);

impl Immutable {
    /// Root writes through permissions, so there the file is made
    /// immutable (`chattr +i`); anyone else gets a file without write bits.
    fn new(path: &Path) -> Immutable {
        // SAFETY: geteuid only reads this process's effective user id.
        if unsafe { libc::geteuid() } == 0 {
            let status = Command::new("chattr").arg("+i").arg(path).status().expect("chattr");
            assert!(status.success(), "chattr +i {}", path.display());
        } else {
            let mut permissions = std::fs::metadata(path).expect("stat").permissions();
            permissions.set_readonly(true);
            std::fs::set_permissions(path, permissions).expect("chmod");
        }
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        // SAFETY: as above.
        if unsafe { libc::geteuid() } == 0 {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        }
    }
}

#[test]
fn read_commands_work_on_a_store_that_cannot_be_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    two_contacts(dir, "a");
    let db = dir.join("kontakt.duckdb");
    let bytes = std::fs::read(&db).expect("store");
    let _guard = Immutable::new(&db);
    for args in READ_COMMANDS {
        succeeds(dir, args);
    }
    // A dry run only reads the store too.
    succeeds(dir, &["import", "a.csv", "--dry-run", "--name", "dry"]);
    let listed = String::from_utf8(succeeds(dir, &["contacts", "list"])).expect("utf-8");
    assert!(listed.contains("ann@example.cz"), "{listed}");
    // A command that writes says why it cannot, in one line.
    let stderr = fails(dir, &["import", "a.csv", "--name", "again"], 1);
    assert!(stderr.contains("kontakt.duckdb"), "{stderr}");
    assert_eq!(std::fs::read(&db).expect("store"), bytes);
}

#[test]
fn a_store_held_by_an_import_is_refused_at_once_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    two_contacts(dir, "first");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("kontakt"))
        .current_dir(dir)
        .env_remove("KONTAKT_DB")
        .env("KONTAKT_TEST_STAGES", "pause")
        .args(["import", "a.csv", "--progress", "never", "--name", "holding"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The import holds the store from its first stage after `start` (when
    // it has not opened the store yet) on.
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while line.is_empty() || line.trim_end() == "kontakt: stage start" {
        line.clear();
        std::io::BufRead::read_line(&mut stderr, &mut line).expect("stage line");
    }
    assert!(line.starts_with("kontakt: stage"), "{line}");
    let started = std::time::Instant::now();
    for args in [
        &["imports", "list"][..],
        &["contacts", "list"],
        &["import", "a.csv", "--name", "x"],
    ] {
        let message = fails(dir, args, 1);
        assert!(message.contains(&format!("pid {}", child.id())), "{message}");
        assert!(message.contains("kontakt import a.csv"), "{message}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "commands waited");
    assert!(child.wait().expect("wait").success());
}
