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

#[test]
fn a_missing_socket_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "postgresql://crm@/crm?host={}&port=5999",
        dir.path().join("nowhere").display()
    );
    let err = Postgres::connect(Path::new(&url), true)
        .map(|_| ())
        .expect_err("no server");
    let socket = dir.path().join("nowhere/.s.PGSQL.5999");
    assert!(
        err.to_string()
            .contains(&format!("no server socket {}", socket.display())),
        "{err}"
    );
    // A TCP host has no socket to name.
    let err = Postgres::connect(Path::new("postgresql://crm@127.0.0.1:1/crm"), true)
        .map(|_| ())
        .expect_err("no server");
    assert!(!err.to_string().contains("socket"), "{err}");
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

#[test]
fn schema_2_undo_records_move_over_to_row_values() {
    let at = url("unit_migrate_2");
    let old = Postgres::connect(&at, false).expect("connect");
    old.batch("CREATE SCHEMA unit_migrate_2").expect("schema");
    for sql in &super::schema::MIGRATIONS[..2] {
        old.batch(sql).expect("version 2");
    }
    old.batch(
        "INSERT INTO kontakt_meta VALUES ('schema_version', '2');
         INSERT INTO contacts (id, type, created_at, updated_at, first_name, tags)
           VALUES (1, 'person', '2026-01-01', '2026-02-01', 'New', '{a,x}'),
                  (2, 'person', '2026-01-01', '2026-01-01', 'Gone', '{}');
         INSERT INTO undo_records VALUES
           (5, 'restore', 1, '{\"updated_at\": \"2026-01-01T00:00:00\", \"first_name\": \"Old\", \"last_name\": null, \"kontakt_tags_added\": [\"x\"]}'),
           (5, 'reinsert', 2, (SELECT to_jsonb(c) FROM contacts AS c WHERE id = 2));",
    )
    .expect("version 2 records");
    drop(old);
    let store = Postgres::connect(&at, false).expect("connect");
    store.migrate().expect("migrate");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    let rows = store
        .query(
            "SELECT kind, changed, tags_added, (old).id, (old).first_name, (old).updated_at::text, data IS NULL \
             FROM undo_records ORDER BY kind",
            &[],
        )
        .expect("records");
    let restore = &rows[1];
    assert_eq!(restore.get::<_, String>(0), "restore");
    assert_eq!(
        restore.get::<_, Vec<String>>(1),
        ["first_name", "last_name", "tags"],
        "the columns the group changed"
    );
    assert_eq!(restore.get::<_, Vec<String>>(2), ["x"]);
    assert_eq!(restore.get::<_, Option<String>>(4).as_deref(), Some("Old"));
    assert_eq!(restore.get::<_, String>(5), "2026-01-01 00:00:00");
    assert!(restore.get::<_, bool>(6));
    let reinsert = &rows[0];
    assert_eq!(reinsert.get::<_, String>(0), "reinsert");
    assert_eq!(reinsert.get::<_, i64>(3), 2);
    assert_eq!(reinsert.get::<_, Option<String>>(4).as_deref(), Some("Gone"));
}

#[test]
fn a_scan_in_two_halves_reads_every_contact_once_from_one_snapshot() {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    use super::copy::Out;

    let at = url("unit_halves");
    let store = Postgres::open(&at).expect("open");
    store
        .batch(
            "INSERT INTO contacts (id, type, created_at, updated_at, email_hash) \
             SELECT n, 'person', '2026-01-01', '2026-01-01', n * 7 FROM generate_series(1, 20000) AS n",
        )
        .expect("contacts");
    let pages = store
        .query_one_i64("SELECT pg_relation_size('contacts') / 8192", &[])
        .expect("pages");
    assert!(pages > 4, "{pages} pages");
    let sql = "SELECT c.id, c.email_hash FROM contacts AS c WHERE true";
    // The ids read, in order, each with its hash as it was (7 times it).
    let ids = |batches: Vec<arrow::record_batch::RecordBatch>| -> Vec<i64> {
        let mut ids: Vec<i64> = Vec::new();
        for b in &batches {
            let (id, hash) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(1).as_primitive::<Int64Type>(),
            );
            for r in 0..b.num_rows() {
                assert_eq!(hash.value(r), id.value(r) * 7, "contact {}", id.value(r));
                ids.push(id.value(r));
            }
        }
        ids.sort_unstable();
        ids
    };
    store.begin_snapshot().expect("begin");
    // A change committed by another session after the snapshot is not
    // seen by either half (the second reads the first's snapshot).
    let one = store
        .copy_batches(sql, &[Out::Int64, Out::Int64], |b| Ok(b.columns().to_vec()))
        .expect("one scan");
    let other = Postgres::connect(&at, false).expect("other");
    other
        .batch("UPDATE contacts SET email_hash = 0 WHERE id % 2 = 0; DELETE FROM contacts WHERE id > 19000")
        .expect("a later change");
    let halves = store
        .scan_in_halves(sql, pages / 2, &[Out::Int64, Out::Int64], &|b| Ok(b.columns().to_vec()))
        .expect("two halves");
    store.rollback().expect("rollback");
    assert_eq!(ids(halves), (1..=20000).collect::<Vec<i64>>());
    assert_eq!(ids(one), (1..=20000).collect::<Vec<i64>>());
}
