//! The PostgreSQL backend's own tests: the URL (no server needed), and the
//! schema's creation against a throwaway server (`scripts/pg-test-server`,
//! which fails the test when it cannot start one).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{Postgres, SCHEMA_VERSION, parse_url};
use crate::store::Store;

#[test]
fn the_url_names_the_schema_and_keeps_libpq_parameters() {
    let (config, schema) = parse_url("postgresql://crm@/crm?host=/run/postgresql&schema=leads_2026").expect("url");
    assert_eq!(schema, "leads_2026");
    assert_eq!(config.get_dbname(), Some("crm"));
    assert_eq!(config.get_user(), Some("crm"));
    assert_eq!(config.get_application_name(), Some("kontakt"));
    let (_, schema) = parse_url("postgres://crm@db.example.com:5433/crm").expect("url");
    assert_eq!(schema, "kontakt");
    for bad in ["Leads", "1st", "a-b", ""] {
        let err = parse_url(&format!("postgresql://crm@/crm?schema={bad}")).expect_err(bad);
        assert!(err.contains("schema name"), "{bad}: {err}");
    }
    let err = parse_url("postgresql://crm@/crm?sslmode=nonsense").expect_err("sslmode");
    assert!(err.contains("not a PostgreSQL URL"), "{err}");
}

/// This test process's server (see `tests/it/common.rs`, `pg_server`).
fn server() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kontakt-unit-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let output = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-test-server"))
            .arg(&dir)
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/pg-test-server");
        assert!(
            output.status.success(),
            "could not start a PostgreSQL server: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("URL").trim().to_string()
    })
}

fn url(schema: &str) -> PathBuf {
    PathBuf::from(format!("{}&schema={schema}", server()))
}

#[test]
fn a_store_is_created_once_and_opened_again_unchanged() {
    let at = url("unit_created");
    // Read-only opens never create one.
    let err = Store::open_read_only(&at).expect_err("no store yet");
    assert!(err.to_string().contains("no store here"), "{err}");
    // Two processes' first opens at once create it once (the migration
    // runs under a lock; the second finds it done). Threads stand in.
    let opened: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| Postgres::connect(&at, false).and_then(|p| p.migrate().map(|()| p))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("thread")
                    .expect("open")
                    .schema_version()
                    .expect("version")
            })
            .collect()
    });
    assert_eq!(opened, [SCHEMA_VERSION, SCHEMA_VERSION]);
    let store = Store::open(&at).expect("open");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    assert_eq!(store.count_all_contacts().expect("count"), 0);
    drop(store);
    // A read-only open while a writer holds the store does not wait.
    let writer = Store::open(&at).expect("writer");
    let reader = Store::open_read_only(&at).expect("reader");
    assert_eq!(reader.groups().expect("groups").len(), 0);
    drop(writer);
}

#[test]
fn a_password_in_the_url_is_never_shown() {
    let at = Path::new("postgresql://crm:s3cret@/crm?host=/nonexistent");
    let err = Store::open(at).expect_err("no server there").to_string();
    assert!(!err.contains("s3cret") && err.contains("crm:***@"), "{err}");
    let at = Path::new("postgresql://crm@/crm?host=/nonexistent&password=s3cret&schema=x");
    let err = Store::open(at).expect_err("no server there").to_string();
    assert!(
        !err.contains("s3cret") && err.contains("password=***&schema=x"),
        "{err}"
    );
    // The scheme in capitals is still PostgreSQL's.
    let err = Store::open(Path::new("POSTGRESQL://crm@/crm?host=/nonexistent")).expect_err("no server");
    assert!(err.to_string().contains("/nonexistent"), "{err}");
}
