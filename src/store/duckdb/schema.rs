//! The store schema, as forward-only migrations: migration N brings a store
//! from version N-1 to N. Never edit a released migration; add one.
//!
//! Decisions (see docs/DESIGN.md, "Store schema"):
//! - `contacts.id` is assigned by kontakt from `kontakt_meta.next_contact_id`
//!   (in the same transaction as the insert, so ids are never reused, even
//!   after a delete) and has no PRIMARY KEY constraint: DuckDB maintains an
//!   ART index per key constraint on every append, which costs bulk loads
//!   far more than the uniqueness check is worth when the store alone
//!   assigns ids.
//! - Values are stored normalized (issue 3): the stored email/phone *are* the
//!   match keys, so the matching build side is one column scan.
//! - Tags are a `VARCHAR[]`; consents are `opt-in`/`opt-out`/`unknown`.
//! - Custom fields are registered in `custom_fields` and become columns
//!   `"custom.NAME"` (always quoted identifiers; NAME is a checked slug).

pub const SCHEMA_VERSION: i64 = 8;

/// The latest migration that rebuilds `contacts` (`Store::rebuild_contacts`
/// puts the table it creates, [`CONTACTS_NEW`], in place of `contacts`).
pub const CONTACTS_REBUILT: i64 = 5;

/// The table [`CONTACTS_REBUILT`] creates.
pub const CONTACTS_NEW: &str = "contacts_v5";

/// Tables of the kontakt schema (for checked, non-user SQL only).
pub const TABLES: &[&str] = &[
    "kontakt_meta",
    "import_groups",
    "contacts",
    "custom_fields",
    "audits",
    "audit_members",
    "audit_clusters",
    "merged_contacts",
    "kontakt_config",
    "lists",
    "list_members",
    "undo_records",
];

/// The columns of `contacts` that migrations 4 and 5 create alike, from
/// `created_at` to `country` (each rebuilds the table with the columns in
/// this order). Migration 4 is released: its SQL, this text included,
/// must stay as it is.
macro_rules! contacts_text_columns {
    () => {
        r#"        created_at       TIMESTAMP NOT NULL,
        updated_at       TIMESTAMP NOT NULL,
        import_id        BIGINT,
        external_id      VARCHAR USING COMPRESSION fsst,
        first_name       VARCHAR USING COMPRESSION dictionary,
        last_name        VARCHAR USING COMPRESSION dictionary,
        full_name        VARCHAR USING COMPRESSION fsst,
        company          VARCHAR USING COMPRESSION fsst,
        email            VARCHAR USING COMPRESSION fsst,
        phone            VARCHAR USING COMPRESSION fsst,
        mobile           VARCHAR USING COMPRESSION fsst,
        website          VARCHAR USING COMPRESSION fsst,
        street           VARCHAR USING COMPRESSION fsst,
        city             VARCHAR USING COMPRESSION dictionary,
        postal_code      VARCHAR USING COMPRESSION dictionary,
        country          VARCHAR USING COMPRESSION dictionary,
"#
    };
}

/// The last columns of `contacts`, as migrations 4 and 5 create them.
macro_rules! contacts_last_columns {
    () => {
        r#"        tags             VARCHAR[] NOT NULL DEFAULT [],
        note             VARCHAR USING COMPRESSION fsst,
        email_hash       UBIGINT,
        phone_hash       UBIGINT,
        mobile_hash      UBIGINT,
        external_id_hash UBIGINT
    );
    "#
    };
}

pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE kontakt_meta (
        key   VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL
    );
    CREATE SEQUENCE import_group_id_seq START 1;
    CREATE TABLE import_groups (
        id               BIGINT PRIMARY KEY DEFAULT nextval('import_group_id_seq'),
        name             VARCHAR NOT NULL,
        source           VARCHAR,
        status           VARCHAR NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
        reason           VARCHAR,
        started_at       TIMESTAMP NOT NULL,
        finished_at      TIMESTAMP,
        rows_read        BIGINT NOT NULL DEFAULT 0,
        rows_failed      BIGINT NOT NULL DEFAULT 0,
        imported         BIGINT NOT NULL DEFAULT 0,
        updated          BIGINT NOT NULL DEFAULT 0,
        skipped          BIGINT NOT NULL DEFAULT 0,
        contacts_updated BIGINT NOT NULL DEFAULT 0,
        summary          VARCHAR
    );
    INSERT INTO kontakt_meta VALUES ('next_contact_id', '1');
    CREATE TABLE contacts (
        id            BIGINT NOT NULL,
        type          VARCHAR NOT NULL DEFAULT 'person' CHECK (type IN ('person', 'company')),
        created_at    TIMESTAMP NOT NULL,
        updated_at    TIMESTAMP NOT NULL,
        import_id     BIGINT,
        external_id   VARCHAR,
        first_name    VARCHAR,
        last_name     VARCHAR,
        full_name     VARCHAR,
        company       VARCHAR,
        email         VARCHAR,
        phone         VARCHAR,
        mobile        VARCHAR,
        website       VARCHAR,
        street        VARCHAR,
        city          VARCHAR,
        postal_code   VARCHAR,
        country       VARCHAR,
        gender        VARCHAR CHECK (gender IN ('F', 'M')),
        birth_date    DATE,
        email_opt_in  VARCHAR NOT NULL DEFAULT 'unknown' CHECK (email_opt_in IN ('opt-in', 'opt-out', 'unknown')),
        sms_opt_in    VARCHAR NOT NULL DEFAULT 'unknown' CHECK (sms_opt_in IN ('opt-in', 'opt-out', 'unknown')),
        tags          VARCHAR[] NOT NULL DEFAULT [],
        note          VARCHAR
    );
    CREATE TABLE custom_fields (
        name       VARCHAR PRIMARY KEY,
        created_at TIMESTAMP NOT NULL
    );
    "#,
    // 2: the persistent key index (an xxh3 hash of each stored key value,
    // written by every insert and update; filled for existing contacts by
    // `Store::migrate`), audits with the cluster state of the latest audit
    // of each scope, and merges (recorded as import groups of kind `merge`).
    r#"
    ALTER TABLE contacts ADD COLUMN email_hash UBIGINT;
    ALTER TABLE contacts ADD COLUMN phone_hash UBIGINT;
    ALTER TABLE contacts ADD COLUMN mobile_hash UBIGINT;
    ALTER TABLE contacts ADD COLUMN external_id_hash UBIGINT;
    ALTER TABLE import_groups ADD COLUMN kind VARCHAR DEFAULT 'import';
    CREATE SEQUENCE audit_id_seq START 1;
    CREATE TABLE audits (
        id                   BIGINT PRIMARY KEY DEFAULT nextval('audit_id_seq'),
        scope                VARCHAR NOT NULL,
        since_audit          BIGINT,
        started_at           TIMESTAMP NOT NULL,
        finished_at          TIMESTAMP NOT NULL,
        contacts             BIGINT NOT NULL,
        clusters             BIGINT NOT NULL,
        contacts_in_clusters BIGINT NOT NULL,
        reported_clusters    BIGINT NOT NULL,
        out_dir              VARCHAR,
        summary              VARCHAR
    );
    CREATE TABLE audit_members (
        scope      VARCHAR NOT NULL,
        contact_id BIGINT NOT NULL,
        cluster    BIGINT NOT NULL
    );
    CREATE TABLE audit_clusters (
        scope   VARCHAR NOT NULL,
        cluster BIGINT NOT NULL,
        size    BIGINT NOT NULL,
        shared  BIGINT[] NOT NULL
    );
    CREATE TABLE merged_contacts (
        merge_id   BIGINT NOT NULL,
        contact_id BIGINT NOT NULL,
        survivor_id BIGINT NOT NULL,
        contact    VARCHAR NOT NULL
    );
    "#,
    // 3: what an audit saw of the whole store (every type) when it began:
    // the next contact id and the number of contacts. A later
    // `--since-last` audit that counts as many contacts below that id knows
    // nothing was deleted since (ids are never reused) and skips the
    // anti-join of the old clusters' members with the store.
    r#"
    ALTER TABLE audits ADD COLUMN next_contact_id BIGINT;
    ALTER TABLE audits ADD COLUMN all_contacts BIGINT;
    "#,
    // 4: `contacts` with a compression method fixed per text column.
    // Without one, DuckDB tries both dictionary and FSST on every text
    // column of every row group it writes and keeps the smaller; on
    // contacts the winner is always the same (FSST for values mostly
    // distinct per contact, a dictionary for values from a small set), and
    // FSST's analysis and compression and the dictionary analysis were 18%
    // of the CPU samples of a 10M-row import. DuckDB cannot change a
    // column's compression in place, so this creates the table anew as
    // `contacts_v4`; `Store::rebuild_contacts` then adds the custom columns,
    // copies the contacts and puts it in place of `contacts`.
    concat!(
        r#"
    CREATE TABLE contacts_v4 (
        id               BIGINT NOT NULL,
        type             VARCHAR USING COMPRESSION dictionary NOT NULL DEFAULT 'person'
                         CHECK (type IN ('person', 'company')),
"#,
        contacts_text_columns!(),
        r#"        gender           VARCHAR USING COMPRESSION dictionary CHECK (gender IN ('F', 'M')),
        birth_date       DATE,
        email_opt_in     VARCHAR USING COMPRESSION dictionary NOT NULL DEFAULT 'unknown'
                         CHECK (email_opt_in IN ('opt-in', 'opt-out', 'unknown')),
        sms_opt_in       VARCHAR USING COMPRESSION dictionary NOT NULL DEFAULT 'unknown'
                         CHECK (sms_opt_in IN ('opt-in', 'opt-out', 'unknown')),
"#,
        contacts_last_columns!()
    ),
    // 5: `type`, `gender` and the consents as ENUM types (one byte a value)
    // instead of text with a CHECK constraint. Their text cost an insert
    // a dictionary analysis, the dictionary compression, string statistics
    // and the CHECK, per value, and these four columns, which hold one of
    // two or three values, were a quarter of DuckDB's insert (2M contacts,
    // one thread: 1.37 s against 0.41 s as ENUM). They still read, compare
    // and export as text; a value outside the set fails as the CHECK did.
    // The types are written inline (not `CREATE TYPE`), so that a table
    // made `AS SELECT` from `contacts` (the import's staged updates, a
    // temporary table) takes them along. Like 4, this rebuilds `contacts`:
    // `contacts_v4`, which migration 4 created for a store older than 4,
    // is not needed then.
    concat!(
        r#"
    DROP TABLE IF EXISTS contacts_v4;
    CREATE TABLE contacts_v5 (
        id               BIGINT NOT NULL,
        type             ENUM('person', 'company') NOT NULL DEFAULT 'person',
"#,
        contacts_text_columns!(),
        r#"        gender           ENUM('F', 'M'),
        birth_date       DATE,
        email_opt_in     ENUM('opt-in', 'opt-out', 'unknown') NOT NULL DEFAULT 'unknown',
        sms_opt_in       ENUM('opt-in', 'opt-out', 'unknown') NOT NULL DEFAULT 'unknown',
"#,
        contacts_last_columns!()
    ),
    // 6: the process that runs a group (its pid and host name), so that a
    // group left `running` by a process that ended without finishing is
    // reported with them when it is found ("interrupted").
    r#"
    ALTER TABLE import_groups ADD COLUMN pid BIGINT;
    ALTER TABLE import_groups ADD COLUMN host VARCHAR;
    "#,
    // 7: what an import ran with (its description, its settings as a JSON
    // object, the compliance items it acknowledged), and the store's
    // settings (`kontakt config`: the defaults of every import of the
    // store). A read-only open reads a store of 5 or 6 without them.
    r#"
    ALTER TABLE import_groups ADD COLUMN description VARCHAR;
    ALTER TABLE import_groups ADD COLUMN settings VARCHAR;
    ALTER TABLE import_groups ADD COLUMN acknowledged VARCHAR;
    CREATE TABLE kontakt_config (
        key   VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL
    );
    "#,
    // 8: contact lists and campaigns; what `imports undo` needs: the
    // earlier values an import or merge overwrote (`undo_records`, Arrow
    // IPC streams), the status `undone` of a group and the time of its
    // undo (an audit or merge that began before it does not see what it
    // restored).
    // A membership has no key constraint (`lists add` appends millions of
    // them in one transaction; an ART index would cost every append): the
    // commands keep (list_id, contact_id) unique. `import_id` is the import
    // that added the membership (`imports delete` and `undo` take it back).
    // DuckDB cannot change a CHECK constraint, so `import_groups` is
    // created anew with `undone` among its statuses and its rows copied.
    r#"
    CREATE SEQUENCE list_id_seq START 1;
    CREATE TABLE lists (
        id          BIGINT PRIMARY KEY DEFAULT nextval('list_id_seq'),
        name        VARCHAR NOT NULL UNIQUE,
        description VARCHAR,
        created_at  TIMESTAMP NOT NULL
    );
    CREATE TABLE list_members (
        list_id     BIGINT NOT NULL,
        contact_id  BIGINT NOT NULL,
        status      VARCHAR NOT NULL DEFAULT 'new',
        agent       VARCHAR,
        callback_at TIMESTAMP,
        added_at    TIMESTAMP NOT NULL,
        import_id   BIGINT
    );
    CREATE TABLE undo_records (
        group_id BIGINT NOT NULL,
        kind     VARCHAR NOT NULL CHECK (kind IN ('restore', 'reinsert', 'members')),
        seq      INTEGER NOT NULL,
        rows     BIGINT NOT NULL,
        data     BLOB NOT NULL
    );
    CREATE TABLE import_groups_v8 (
        id               BIGINT PRIMARY KEY DEFAULT nextval('import_group_id_seq'),
        name             VARCHAR NOT NULL,
        source           VARCHAR,
        status           VARCHAR NOT NULL
                         CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'undone')),
        reason           VARCHAR,
        started_at       TIMESTAMP NOT NULL,
        finished_at      TIMESTAMP,
        rows_read        BIGINT NOT NULL DEFAULT 0,
        rows_failed      BIGINT NOT NULL DEFAULT 0,
        imported         BIGINT NOT NULL DEFAULT 0,
        updated          BIGINT NOT NULL DEFAULT 0,
        skipped          BIGINT NOT NULL DEFAULT 0,
        contacts_updated BIGINT NOT NULL DEFAULT 0,
        summary          VARCHAR,
        kind             VARCHAR DEFAULT 'import',
        pid              BIGINT,
        host             VARCHAR,
        description      VARCHAR,
        settings         VARCHAR,
        acknowledged     VARCHAR,
        undone_at        TIMESTAMP
    );
    INSERT INTO import_groups_v8 BY NAME SELECT * FROM import_groups;
    DROP TABLE import_groups;
    ALTER TABLE import_groups_v8 RENAME TO import_groups;
    "#,
];
