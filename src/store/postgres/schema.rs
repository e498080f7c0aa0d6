//! The PostgreSQL store's schema, in the schema `kontakt` (or the URL's
//! `?schema=NAME`), as forward-only migrations like the DuckDB store's:
//! migration N brings a store from version N-1 to N. Never edit a released
//! migration; add one.
//!
//! The tables and columns are the DuckDB store's (schema 8), in the same
//! order, with PostgreSQL's types:
//! - key hashes are `bigint` (PostgreSQL has no unsigned 64-bit integer):
//!   the xxh3 value's bits, read back as `u64`;
//! - `type`, `gender` and the consents are `text` with a `CHECK`;
//! - `contacts.id` is assigned by kontakt from `kontakt_meta.next_contact_id`
//!   and is the primary key (also the distribution column on Citus: a
//!   contact's list memberships, keyed by `contact_id`, are co-located);
//! - the other tables are small and are reference tables on Citus.

/// The latest schema version of a PostgreSQL store (one per migration).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The store's tables (for checked, non-user SQL only): the DuckDB
/// store's.
pub use crate::store::duckdb::schema::TABLES;

pub const MIGRATIONS: &[&str] = &[
    // 1: the schema of a DuckDB store of schema 8.
    r#"
    CREATE TABLE kontakt_meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    INSERT INTO kontakt_meta VALUES ('next_contact_id', '1');
    CREATE SEQUENCE import_group_id_seq;
    CREATE TABLE import_groups (
        id               bigint PRIMARY KEY DEFAULT nextval('import_group_id_seq'),
        name             text NOT NULL,
        source           text,
        status           text NOT NULL
                         CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'undone')),
        reason           text,
        started_at       timestamp NOT NULL,
        finished_at      timestamp,
        rows_read        bigint NOT NULL DEFAULT 0,
        rows_failed      bigint NOT NULL DEFAULT 0,
        imported         bigint NOT NULL DEFAULT 0,
        updated          bigint NOT NULL DEFAULT 0,
        skipped          bigint NOT NULL DEFAULT 0,
        contacts_updated bigint NOT NULL DEFAULT 0,
        summary          text,
        kind             text DEFAULT 'import',
        pid              bigint,
        host             text,
        description      text,
        settings         text,
        acknowledged     text,
        undone_at        timestamp
    );
    CREATE TABLE contacts (
        id               bigint NOT NULL PRIMARY KEY,
        type             text NOT NULL DEFAULT 'person' CHECK (type IN ('person', 'company')),
        created_at       timestamp NOT NULL,
        updated_at       timestamp NOT NULL,
        import_id        bigint,
        external_id      text,
        first_name       text,
        last_name        text,
        full_name        text,
        company          text,
        email            text,
        phone            text,
        mobile           text,
        website          text,
        street           text,
        city             text,
        postal_code      text,
        country          text,
        gender           text CHECK (gender IN ('F', 'M')),
        birth_date       date,
        email_opt_in     text NOT NULL DEFAULT 'unknown' CHECK (email_opt_in IN ('opt-in', 'opt-out', 'unknown')),
        sms_opt_in       text NOT NULL DEFAULT 'unknown' CHECK (sms_opt_in IN ('opt-in', 'opt-out', 'unknown')),
        tags             text[] NOT NULL DEFAULT '{}',
        note             text,
        email_hash       bigint,
        phone_hash       bigint,
        mobile_hash      bigint,
        external_id_hash bigint
    );
    CREATE INDEX contacts_import_id ON contacts (import_id);
    CREATE TABLE custom_fields (
        name       text PRIMARY KEY,
        created_at timestamp NOT NULL
    );
    CREATE SEQUENCE audit_id_seq;
    CREATE TABLE audits (
        id                   bigint PRIMARY KEY DEFAULT nextval('audit_id_seq'),
        scope                text NOT NULL,
        since_audit          bigint,
        started_at           timestamp NOT NULL,
        finished_at          timestamp NOT NULL,
        contacts             bigint NOT NULL,
        clusters             bigint NOT NULL,
        contacts_in_clusters bigint NOT NULL,
        reported_clusters    bigint NOT NULL,
        out_dir              text,
        summary              text,
        next_contact_id      bigint,
        all_contacts         bigint
    );
    CREATE TABLE audit_members (
        scope      text NOT NULL,
        contact_id bigint NOT NULL,
        cluster    bigint NOT NULL
    );
    CREATE TABLE audit_clusters (
        scope   text NOT NULL,
        cluster bigint NOT NULL,
        size    bigint NOT NULL,
        shared  bigint[] NOT NULL
    );
    CREATE TABLE merged_contacts (
        merge_id    bigint NOT NULL,
        contact_id  bigint NOT NULL,
        survivor_id bigint NOT NULL,
        contact     text NOT NULL
    );
    CREATE TABLE kontakt_config (
        key   text PRIMARY KEY,
        value text NOT NULL
    );
    CREATE SEQUENCE list_id_seq;
    CREATE TABLE lists (
        id          bigint PRIMARY KEY DEFAULT nextval('list_id_seq'),
        name        text NOT NULL UNIQUE,
        description text,
        created_at  timestamp NOT NULL
    );
    CREATE TABLE list_members (
        list_id     bigint NOT NULL,
        contact_id  bigint NOT NULL,
        status      text NOT NULL DEFAULT 'new',
        agent       text,
        callback_at timestamp,
        added_at    timestamp NOT NULL,
        import_id   bigint,
        PRIMARY KEY (contact_id, list_id)
    );
    CREATE TABLE undo_records (
        group_id bigint NOT NULL,
        kind     text NOT NULL CHECK (kind IN ('restore', 'reinsert', 'members')),
        seq      integer NOT NULL,
        rows     bigint NOT NULL,
        data     bytea NOT NULL
    );
    "#,
    // 2: undo records as rows: the DuckDB store keeps each part of a
    // record as one Arrow IPC blob (its columnar storage of the same rows
    // cost as much as the update); PostgreSQL writes and reads a row per
    // contact without a round trip through kontakt, each as `jsonb` of
    // the columns the group changed (see `undo.rs`). Version 1 never
    // wrote an undo record.
    r#"
    DROP TABLE undo_records;
    CREATE TABLE undo_records (
        group_id   bigint NOT NULL,
        kind       text NOT NULL CHECK (kind IN ('restore', 'reinsert', 'members')),
        contact_id bigint NOT NULL,
        data       jsonb NOT NULL
    );
    CREATE INDEX undo_records_group ON undo_records (group_id, kind);
    "#,
    // 3: a `restore` or `reinsert` record keeps the contact as a row value
    // of `contacts` (`old`), a `restore` one the names of the columns the
    // group changed and the tags it added: building them costs half of
    // building the `jsonb` (see `undo.rs`). Version 2's records move over.
    r#"
    ALTER TABLE undo_records ALTER COLUMN data DROP NOT NULL,
        ADD COLUMN old contacts, ADD COLUMN changed text[], ADD COLUMN tags_added text[];
    UPDATE undo_records SET old = jsonb_populate_record(NULL::contacts, data),
        changed = ARRAY(SELECT k FROM jsonb_object_keys(data) AS k
                        WHERE k NOT IN ('updated_at', 'kontakt_tags_added') ORDER BY k)
            || CASE WHEN data ? 'kontakt_tags_added' THEN ARRAY['tags'] ELSE '{}'::text[] END,
        tags_added = ARRAY(SELECT jsonb_array_elements_text(data -> 'kontakt_tags_added')),
        data = NULL
    WHERE kind = 'restore';
    UPDATE undo_records SET old = jsonb_populate_record(NULL::contacts, data), data = NULL
    WHERE kind = 'reinsert';
    "#,
];
