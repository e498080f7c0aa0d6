//! The DuckDB backend's open, migrations and lock messages.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cancel::{Cancel, Signal};
use crate::store::Store;

#[test]
fn a_store_of_schema_5_is_read_as_it_is_and_upgraded_by_a_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v5.duckdb");
    {
        let store = Store::open(&path).expect("create");
        // Schema 5 had no pid and host (6), no description, settings and
        // acknowledgement of a group and no settings table (7), no lists
        // (8); a group left running by a process that is gone.
        store
            .duckdb()
            .execute_batch(
                "ALTER TABLE import_groups DROP COLUMN pid; ALTER TABLE import_groups DROP COLUMN host; \
                 ALTER TABLE import_groups DROP COLUMN description; \
                 ALTER TABLE import_groups DROP COLUMN settings; \
                 ALTER TABLE import_groups DROP COLUMN acknowledged; DROP TABLE kontakt_config; \
                 DROP TABLE list_members; DROP TABLE lists; DROP SEQUENCE list_id_seq; DROP TABLE undo_records; \
                 UPDATE kontakt_meta SET value = '5' WHERE key = 'schema_version'; \
                 INSERT INTO import_groups (name, status, started_at) VALUES ('gone', 'running', now())",
            )
            .expect("make it a store of schema 5");
    }
    {
        let store = Store::open_read_only(&path).expect("a read reads schema 5");
        assert_eq!(store.schema_version().expect("version"), 5);
        let groups = crate::groups::list(&store).expect("groups");
        assert_eq!(groups[0].status, "failed");
        assert!(groups[0].reason.as_deref().unwrap_or("").starts_with("interrupted"));
        assert_eq!(groups[0].description, None);
        assert!(store.config().expect("no settings yet").is_empty());
    }
    let store = Store::open(&path).expect("a write upgrades");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    assert!(
        store
            .duckdb()
            .columns("import_groups")
            .expect("columns")
            .iter()
            .any(|c| c == "pid")
    );
    store
        .set_config("default-country", "CZ")
        .expect("settings after the upgrade");
    let groups = crate::groups::list(&store).expect("groups");
    assert_eq!(groups[0].status, "failed");
}

#[test]
fn store_errors_are_one_line() {
    let e = store_error(
        Path::new("k.duckdb"),
        "Out of Memory Error: could not allocate block\n\nPossible solutions:\n* SET threads=X\n",
    );
    let text = e.to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("KONTAKT_DUCKDB_MEMORY"), "{text}");
}

#[test]
fn a_password_in_a_command_line_is_masked() {
    assert_eq!(mask_password("postgresql://u:secret@h/db"), "postgresql://u:***@h/db");
    assert_eq!(mask_password("postgresql://u@h/db"), "postgresql://u@h/db");
    assert_eq!(mask_password("leads.csv"), "leads.csv");
    assert_eq!(command_line(std::process::id()), None, "the test binary is not kontakt");
}

#[test]
fn creates_schema_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("k.duckdb");
    {
        let store = Store::open(&path).expect("create");
        assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
        assert_eq!(store.duckdb().count("contacts").expect("count"), 0);
        let columns = store.duckdb().columns("contacts").expect("columns");
        for field in crate::fields::STANDARD_FIELDS {
            assert!(columns.iter().any(|c| c == field.name), "{}", field.name);
        }
        for c in ["id", "type", "created_at", "updated_at", "import_id"] {
            assert!(columns.iter().any(|x| x == c), "{c}");
        }
        assert!(store.duckdb().count("nope").is_err());
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
}

#[test]
fn migration_2_fills_the_key_index_of_stored_contacts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v1.duckdb");
    {
        // A store as schema version 1 left it, with two contacts.
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(schema::MIGRATIONS[0]).expect("v1 schema");
        conn.execute_batch(
            "INSERT INTO kontakt_meta VALUES ('schema_version', '1'); \
             INSERT INTO contacts (id, created_at, updated_at, email, phone) VALUES \
             (1, now(), now(), 'a@x.cz', '+420601000001'), (2, now(), now(), NULL, '+420601000002'); \
             INSERT INTO contacts (id, created_at, updated_at, email) \
             SELECT i, now(), now(), 'c' || i || '@x.cz' FROM range(3, 300003) AS t(i)",
        )
        .expect("v1 contacts");
    }
    let store = Store::open(&path).expect("migrate");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    type Row = (i64, Option<u64>, Option<u64>, Option<u64>);
    let rows: Vec<Row> = {
        let mut stmt = store
            .duckdb()
            .connection()
            .prepare("SELECT id, email_hash, phone_hash, mobile_hash FROM contacts WHERE id < 3 ORDER BY id")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<std::result::Result<_, _>>()
            .expect("rows")
    };
    use crate::fields::key_hash;
    assert_eq!(
        rows,
        vec![
            (1, Some(key_hash("a@x.cz")), Some(key_hash("+420601000001")), None),
            (2, None, Some(key_hash("+420601000002")), None),
        ]
    );
    // Many contacts (more than the appender buffers between flushes):
    // every one gets its hash.
    let hashed = store
        .duckdb()
        .query_i64("SELECT count(*) FROM contacts WHERE email_hash IS NOT NULL", [])
        .expect("count");
    assert_eq!(hashed, 300_001);
    let last: u64 = store
        .duckdb()
        .connection()
        .query_row("SELECT email_hash FROM contacts WHERE id = 300002", [], |r| r.get(0))
        .expect("last");
    assert_eq!(last, key_hash("c300002@x.cz"));
}

/// Compression method of each segment of a column (after a checkpoint).
fn compressions(store: &DuckDb, column: &str) -> Vec<String> {
    let mut stmt = store
        .connection()
        .prepare(
            "SELECT DISTINCT compression FROM pragma_storage_info('contacts') \
             WHERE column_name = ? AND segment_type = 'VARCHAR' ORDER BY ALL",
        )
        .expect("prepare");
    stmt.query_map([column], |r| r.get(0))
        .expect("query")
        .collect::<std::result::Result<_, _>>()
        .expect("rows")
}

#[test]
fn text_columns_keep_their_compression_whatever_the_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("k.duckdb")).expect("create");
    // Left to choose, DuckDB would keep a dictionary for an email from
    // a set of three, and FSST (or nothing) for first names that are
    // all different: fixed, each keeps its own method.
    store
        .duckdb()
        .execute_batch(
            "INSERT INTO contacts (id, created_at, updated_at, first_name, email) \
             SELECT i, now(), now(), 'name-' || i || '-' || md5(i::VARCHAR), 'same' || (i % 3) || '@x.cz' \
             FROM range(1, 150001) AS t(i); CHECKPOINT",
        )
        .expect("contacts");
    assert_eq!(compressions(store.duckdb(), "email"), ["FSST"]);
    assert_eq!(compressions(store.duckdb(), "first_name"), ["Dictionary"]);
}

/// A store as schema version `version` (3 or 4) left it, with a
/// custom field and 1001 contacts, migrated to the current version:
/// every contact and the custom column are kept, and the table is the
/// current one (its types and checks).
fn migrates_every_contact_and_custom_column_from(version: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("v{version}.duckdb"));
    {
        let conn = Connection::open(&path).expect("open");
        for sql in &schema::MIGRATIONS[..version] {
            conn.execute_batch(sql).expect("old schema");
        }
        if version == 4 {
            // What the version-4 kontakt did after migration 4's SQL.
            conn.execute_batch("DROP TABLE contacts; ALTER TABLE contacts_v4 RENAME TO contacts")
                .expect("v4 contacts table");
        }
        conn.execute_batch(&format!(
            "INSERT INTO kontakt_meta VALUES ('schema_version', '{version}'); \
             ALTER TABLE contacts ADD COLUMN \"custom.shoe_size\" VARCHAR; \
             INSERT INTO custom_fields VALUES ('shoe_size', now()); \
             INSERT INTO contacts (id, type, created_at, updated_at, import_id, first_name, email, gender, \
                                   birth_date, email_opt_in, tags, email_hash, \"custom.shoe_size\") VALUES \
             (7, 'company', TIMESTAMP '2026-01-02 03:04:05', TIMESTAMP '2026-01-03 00:00:00', 2, 'Jana', \
              'jana@x.cz', 'F', DATE '1990-05-06', 'opt-in', ['vip', 'b2b'], 42, '38'); \
             INSERT INTO contacts (id, created_at, updated_at, email) \
             SELECT i, now(), now(), 'c' || i || '@x.cz' FROM range(8, 1008) AS t(i)"
        ))
        .expect("old contacts");
    }
    // An import reads the settings first: an old store has none, and the
    // write that follows upgrades it.
    assert_eq!(
        crate::config::Config::of_store_at(&path).expect("no settings"),
        crate::config::Config::default()
    );
    let store = Store::open(&path).expect("migrate");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
    let columns = store.duckdb().columns("contacts").expect("columns");
    assert_eq!(columns.last().map(String::as_str), Some("custom.shoe_size"));
    for table in ["contacts_v4", "contacts_v5"] {
        assert!(store.duckdb().columns(table).expect("columns").is_empty(), "{table}");
    }
    assert_eq!(store.duckdb().count("contacts").expect("count"), 1001);
    let row: String = store
        .duckdb()
        .connection()
        .query_row(
            "SELECT concat_ws('|', type, created_at, updated_at, import_id, first_name, email, gender, \
                              birth_date, email_opt_in, sms_opt_in, array_to_string(tags, ';'), email_hash, \
                              \"custom.shoe_size\") FROM contacts WHERE id = 7",
            [],
            |r| r.get(0),
        )
        .expect("contact 7");
    assert_eq!(
        row,
        "company|2026-01-02 03:04:05|2026-01-03 00:00:00|2|Jana|jana@x.cz|F|1990-05-06|opt-in|unknown|vip;b2b|42|38"
    );
    assert_eq!(
        store
            .duckdb()
            .query_i64("SELECT sum(id) FROM contacts WHERE email = 'c' || id || '@x.cz'", [])
            .expect("sum"),
        (8..1008).sum::<i64>()
    );
    let types = store.duckdb().typed_columns("contacts").expect("types");
    for (column, expected) in [
        ("type", "ENUM('person', 'company')"),
        ("gender", "ENUM('F', 'M')"),
        ("email_opt_in", "ENUM('opt-in', 'opt-out', 'unknown')"),
        ("sms_opt_in", "ENUM('opt-in', 'opt-out', 'unknown')"),
        ("email", "VARCHAR"),
    ] {
        let found = types.iter().find(|(name, _)| name == column).map(|(_, t)| t.as_str());
        assert_eq!(found, Some(expected), "{column}");
    }
    // Values outside the sets are still refused, as the checks did.
    for (column, value) in [("gender", "X"), ("type", "robot"), ("sms_opt_in", "yes")] {
        assert!(
            store
                .duckdb()
                .execute_batch(&format!(
                    "INSERT INTO contacts (id, created_at, updated_at, {column}) VALUES (9999, now(), now(), '{value}')"
                ))
                .is_err(),
            "{column} = {value}"
        );
    }
}

#[test]
fn migration_from_3_keeps_every_contact_and_custom_column() {
    migrates_every_contact_and_custom_column_from(3);
}

#[test]
fn migration_from_4_keeps_every_contact_and_custom_column() {
    migrates_every_contact_and_custom_column_from(4);
}

#[test]
fn refuses_foreign_files_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.duckdb");
    std::fs::write(&text, b"this is not a database\n").expect("write");
    let err = Store::open(&text).expect_err("text file refused");
    assert!(err.to_string().contains("not a DuckDB database"), "{err}");
    assert_eq!(std::fs::read(&text).expect("read"), b"this is not a database\n");

    let other = dir.path().join("other.duckdb");
    Connection::open(&other)
        .and_then(|c| c.execute_batch("CREATE TABLE t (x INT)"))
        .expect("foreign db");
    let err = Store::open(&other).expect_err("foreign db refused");
    assert!(err.to_string().contains("not a kontakt store"), "{err}");
    assert_eq!(err.exit_code(), 2, "{err}");
    // A command that only reads finds no store there (SPEC: exit 1).
    let err = Store::open_read_only(&other).expect_err("foreign db refused");
    assert!(err.to_string().contains("not a kontakt store"), "{err}");
    assert_eq!(err.exit_code(), 1, "{err}");
}

// A cancel interrupts the statement running on an armed connection
// (see crate::cancel).

/// A store with one long statement to run (seconds unless stopped).
fn long_statement(store: &Store) -> Result<()> {
    store
        .duckdb()
        .execute_batch("SELECT sum(i % 7) FROM range(20000000000) t(i)")
}

#[test]
fn a_request_interrupts_the_running_statement_of_an_armed_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("k.duckdb")).expect("store");
    let cancel = Cancel::new();
    let armed = cancel.arm(store.interrupt()).expect("arm");
    let requester = Arc::clone(&cancel);
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        requester.request(Signal::Interrupt);
    });
    let result = long_statement(&store);
    assert!(result.is_err(), "the statement ran to its end");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let error = cancel.or_cancelled(result.expect_err("interrupted"));
    assert_eq!(error.exit_code(), 130);
    // Disarming for a commit after the request refuses it, and the
    // errors stay the cancel's.
    assert!(matches!(
        armed.disarm_to_commit(),
        Err(Error::Cancelled(Signal::Interrupt))
    ));
    // The connection works again once disarmed (the rollback runs).
    store
        .duckdb()
        .execute_batch("SELECT 1")
        .expect("usable after the interrupt");
    // Arming after a request fails at once.
    assert!(cancel.arm(store.interrupt()).is_err());
}

#[test]
fn a_statement_begun_after_the_request_is_interrupted_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("k.duckdb")).expect("store");
    let cancel = Cancel::new();
    let _armed = cancel.arm(store.interrupt()).expect("arm");
    cancel.request(Signal::Terminate);
    let started = std::time::Instant::now();
    assert!(long_statement(&store).is_err(), "the statement ran to its end");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn a_disarmed_connection_is_never_interrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("k.duckdb")).expect("store");
    let cancel = Cancel::new();
    let armed = cancel.arm(store.interrupt()).expect("arm");
    armed.disarm_to_commit().expect("no request yet");
    cancel.request(Signal::Interrupt);
    // Past the commit, an error is not reported as a rollback.
    assert!(matches!(cancel.or_cancelled(Error::usage("x")), Error::Usage(_)));
    store
        .duckdb()
        .execute_batch("SELECT sum(i) FROM range(50000000) t(i)")
        .expect("not interrupted");
}
