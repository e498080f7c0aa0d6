//! Helpers shared by the integration tests.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::Command;
use serde_json::Value;

/// A `kontakt` command run in `dir`, on the test's store: `kontakt.duckdb`
/// in `dir`, or, inside [`on_postgres`], the test's PostgreSQL store.
pub fn kontakt(dir: &Path) -> Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kontakt"));
    with_store(&mut cmd).current_dir(dir);
    Command::from_std(cmd)
}

/// Points a command at the test's store (see [`kontakt`]).
pub fn with_store(cmd: &mut std::process::Command) -> &mut std::process::Command {
    match store_url() {
        Some(url) => cmd.env("KONTAKT_DB", url),
        None => cmd.env_remove("KONTAKT_DB"),
    }
}

thread_local! {
    /// The PostgreSQL store of the test running on this thread, if any.
    static STORE_URL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The URL of the test's PostgreSQL store, inside [`on_postgres`].
pub fn store_url() -> Option<String> {
    STORE_URL.with(|u| u.borrow().clone())
}

/// This test process's PostgreSQL server, started on first use by
/// `scripts/pg-test-server` (a throwaway cluster on a Unix socket, stopped
/// when the process ends). A server that cannot start fails the test: the
/// PostgreSQL tests are never skipped.
pub fn pg_server() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kontakt-test-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let output = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-test-server"))
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/pg-test-server");
        assert!(
            output.status.success(),
            "could not start a PostgreSQL server for the tests: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("URL").trim().to_string()
    })
}

/// A PostgreSQL store of its own (a fresh schema on the test server).
pub fn pg_store() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}&schema=t{}_{}",
        pg_server(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `test` on a PostgreSQL store of its own: every [`kontakt`]
/// command it runs, and [`crate::import::query`], use that store.
pub fn on_postgres(test: fn()) {
    STORE_URL.with(|u| *u.borrow_mut() = Some(pg_store()));
    test();
    STORE_URL.with(|u| *u.borrow_mut() = None);
}

/// Inside [`on_postgres`], moves the test to a new PostgreSQL store of its
/// own (a test that starts over in a new directory); else nothing (the
/// DuckDB store is the directory's).
pub fn fresh_store() {
    STORE_URL.with(|u| {
        let mut u = u.borrow_mut();
        if u.is_some() {
            *u = Some(pg_store());
        }
    });
}

/// A connection to the test's PostgreSQL store, its schema first on the
/// search path.
pub fn pg_client(url: &str) -> postgres::Client {
    let (base, query) = url.split_once('?').expect("a URL with parameters");
    let (mut rest, mut schema) = (Vec::new(), "kontakt");
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("schema", name)) => schema = name,
            _ => rest.push(pair),
        }
    }
    let mut client =
        postgres::Client::connect(&format!("{base}?{}", rest.join("&")), postgres::NoTls).expect("connect");
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .expect("search_path");
    client
}

/// The tests of a module that also run on a PostgreSQL store, each as
/// `on_postgres::NAME`.
macro_rules! on_postgres_too {
    ($($test:ident),* $(,)?) => {
        mod on_postgres {
            $(
                #[test]
                fn $test() {
                    crate::common::on_postgres(super::$test)
                }
            )*
        }
    };
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

/// Runs kontakt, which must succeed without a panic; its standard output.
pub fn succeeds(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = kontakt(dir).args(args).output().expect("run kontakt");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?} failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    output.stdout
}

/// `kontakt preview --json FILE [args]`, which must succeed; the parsed JSON.
pub fn preview_json(dir: &Path, file: &str, args: &[&str]) -> Value {
    let stdout = succeeds(dir, &[&["preview", "--json", file], args].concat());
    serde_json::from_slice(&stdout).expect("preview --json prints JSON")
}

/// The `rows` of a preview as plain strings.
pub fn rows(preview: &Value) -> Vec<Vec<String>> {
    preview["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_str().expect("cell").to_string())
                .collect()
        })
        .collect()
}

pub fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// Runs kontakt expecting failure with `code`; returns stderr, which must be
/// exactly one line and never a panic.
pub fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let output = kontakt(dir).args(args).output().expect("run kontakt");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "args {args:?}; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    stderr
}
