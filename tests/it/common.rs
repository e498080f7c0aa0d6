//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

/// A `kontakt` command run in `dir`, with no store configured from outside.
pub fn kontakt(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("kontakt").expect("binary built");
    cmd.current_dir(dir).env_remove("KONTAKT_DB");
    cmd
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
