//! The `contacts` commands' queries: the contact columns as text, the
//! filters as a `WHERE` clause. Filter values become SQL literals only
//! quoted ([`literal`]); field names only as quoted identifiers.

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, UInt64Type};

use crate::error::Result;
use crate::fields::hash_column;
use crate::map::ContactType;
use crate::store::contacts::{ContactFilter, ContactKey, ContactRows, MEMBERSHIP_COLUMNS, column_names};
use crate::store::sql::{self, key_column};

use super::{DuckDb, quote_ident};

impl DuckDb {
    pub(crate) fn find_contacts(&self, filter: &ContactFilter, limit: usize) -> Result<ContactRows> {
        let mut sql = self.select_contacts(filter, true)?;
        if limit > 0 {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        self.text_rows(&sql)
    }

    pub(crate) fn count_contacts(&self, filter: &ContactFilter) -> Result<i64> {
        self.query_i64(&format!("SELECT count(*) FROM contacts{}", where_clause(filter)), [])
    }

    pub(crate) fn contacts_by(&self, key: ContactKey) -> Result<ContactRows> {
        let condition = sql::key_condition(key);
        let columns = self.contact_columns(true)?.join(", ");
        self.text_rows(&format!(
            "SELECT {columns} FROM contacts WHERE {condition} ORDER BY created_at, id"
        ))
    }

    pub(crate) fn contact_ids_with_key(&self, field: &str, value: &str, contact_type: ContactType) -> Result<Vec<i64>> {
        self.ids(&sql::ids_with_key(field, value, contact_type))
    }

    pub(crate) fn key_hashes(&self, field: &str) -> Result<Vec<(u64, i64)>> {
        let hash = hash_column(key_column(field));
        let mut pairs = Vec::new();
        // Streamed: the pairs are the only copy held (10M contacts: 160 MB).
        let mut stmt = self
            .connection()
            .prepare(&format!("SELECT {hash}, id FROM contacts WHERE {hash} IS NOT NULL"))
            .map_err(|e| self.error(&e))?;
        for batch in self.batches(&mut stmt, [], true)? {
            let batch = batch?;
            let hashes = batch.column(0).as_primitive::<UInt64Type>();
            let ids = batch.column(1).as_primitive::<Int64Type>();
            pairs.extend(hashes.values().iter().copied().zip(ids.values().iter().copied()));
        }
        Ok(pairs)
    }

    pub(crate) fn count_shared_values(&self, field: &str) -> Result<i64> {
        self.conn
            .query_row(&sql::count_shared(field), [], |r| r.get(0))
            .map_err(|e| self.error(&e))
    }

    pub(crate) fn contact_ids_with_value(&self, field: &str, value: &str) -> Result<Vec<i64>> {
        self.ids(&sql::ids_with_value(field, value))
    }

    pub(crate) fn missing_contact_ids(&self, ids: &[i64]) -> Result<Vec<i64>> {
        self.ids(&format!(
            "SELECT x FROM unnest([{}]) t(x) WHERE x NOT IN (SELECT id FROM contacts) ORDER BY x",
            id_list(ids)
        ))
    }

    /// Deletes the contacts and their list memberships, in one transaction.
    pub(crate) fn delete_contacts(&self, ids: &[i64]) -> Result<usize> {
        let ids = id_list(ids);
        self.begin()?;
        let deleted = self
            .execute(&format!("DELETE FROM list_members WHERE contact_id IN ({ids})"), [])
            .and_then(|_| self.execute(&format!("DELETE FROM contacts WHERE id IN ({ids})"), []))
            .and_then(|n| self.commit().map(|()| n));
        if deleted.is_err() {
            let _ = self.rollback();
        }
        deleted
    }

    /// The contacts a filter selects, as a query ordered by id (see
    /// [`DuckDb::contact_columns`] for `text`).
    pub(super) fn select_contacts(&self, filter: &ContactFilter, text: bool) -> Result<String> {
        let mut columns = self.contact_columns(text)?;
        let mut from = "contacts".to_string();
        if let (Some(list_id), true) = (filter.list_id, filter.membership) {
            // The membership's own columns; the subquery names no column
            // of `contacts`, so theirs stay unambiguous.
            from.push_str(&format!(
                " JOIN (SELECT contact_id, status, agent, callback_at, added_at FROM list_members \
                 WHERE list_id = {list_id}) AS m ON m.contact_id = contacts.id"
            ));
            columns.extend(membership_columns(text));
        }
        Ok(format!(
            "SELECT {} FROM {from}{} ORDER BY contacts.id",
            columns.join(", "),
            where_clause(filter)
        ))
    }

    /// The contact columns as SQL expressions, each named as SPEC names it.
    /// `text` casts every value to text (for printing); otherwise columns
    /// keep their store types (for Parquet) except `tags`, which is joined.
    fn contact_columns(&self, text: bool) -> Result<Vec<String>> {
        let stored = self.columns("contacts")?;
        Ok(column_names(&stored)
            .into_iter()
            .map(|name| {
                let q = quote_ident(name);
                if name == "tags" {
                    format!("array_to_string({q}, ';') AS {q}")
                } else if text {
                    format!("CAST({q} AS VARCHAR) AS {q}")
                } else {
                    q
                }
            })
            .collect())
    }

    /// Streams a query's rows as text to `each`: its column names first,
    /// then each row's values. Returns the number of rows.
    pub(super) fn for_each_text_row(
        &self,
        sql: &str,
        mut each: impl FnMut(&[Option<String>]) -> Result<()>,
    ) -> Result<usize> {
        let conn = self.connection();
        let mut stmt = conn.prepare(sql).map_err(|e| self.error(&e))?;
        let mut result = stmt.query([]).map_err(|e| self.error(&e))?;
        let names: Vec<Option<String>> = result
            .as_ref()
            .map(|s| s.column_names())
            .unwrap_or_default()
            .into_iter()
            .map(Some)
            .collect();
        each(&names)?;
        let mut n = 0;
        let mut values: Vec<Option<String>> = Vec::with_capacity(names.len());
        while let Some(row) = result.next().map_err(|e| self.error(&e))? {
            values.clear();
            for i in 0..names.len() {
                values.push(row.get::<_, Option<String>>(i).map_err(|e| self.error(&e))?);
            }
            each(&values)?;
            n += 1;
        }
        Ok(n)
    }

    /// A query's rows as text, with its column names.
    fn text_rows(&self, sql: &str) -> Result<ContactRows> {
        let mut names: Option<Vec<String>> = None;
        let mut rows = Vec::new();
        self.for_each_text_row(sql, |values| {
            match names {
                None => names = Some(values.iter().flatten().cloned().collect()),
                Some(_) => rows.push(values.to_vec()),
            }
            Ok(())
        })?;
        Ok((names.unwrap_or_default(), rows))
    }

    /// The ids a query of one integer column returns, in its order.
    fn ids(&self, sql: &str) -> Result<Vec<i64>> {
        let conn = self.connection();
        let mut stmt = conn.prepare(sql).map_err(|e| self.error(&e))?;
        stmt.query_map([], |r| r.get(0))
            .map_err(|e| self.error(&e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| self.error(&e))
    }
}

/// The filter's `WHERE` clause (empty when nothing filters).
fn where_clause(filter: &ContactFilter) -> String {
    sql::where_clause(filter, |tag| format!("list_contains(tags, {tag})"))
}

/// The membership's columns after the contact's ([`MEMBERSHIP_COLUMNS`]):
/// `callback_at` as an ISO date-time (`2026-12-01T14:30:00`, the time the
/// file gave, no zone), `added_at` as the contacts' own times.
fn membership_columns(text: bool) -> impl Iterator<Item = String> {
    MEMBERSHIP_COLUMNS.iter().map(move |&name| match name {
        "callback_at" => "strftime(m.callback_at, '%Y-%m-%dT%H:%M:%S') AS callback_at".to_string(),
        _ if text => format!("CAST(m.{name} AS VARCHAR) AS {name}"),
        _ => format!("m.{name}"),
    })
}

/// Ids as a SQL list's items.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::export::FileFormat;

    /// A store of three contacts whose values hold quotes: two share an
    /// email across types, created out of id order.
    fn store() -> (tempfile::TempDir, DuckDb) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = DuckDb::open(&dir.path().join("k.duckdb")).expect("open");
        db.execute_batch(
            "ALTER TABLE contacts ADD COLUMN \"custom.shoe\" VARCHAR; \
             INSERT INTO contacts (id, type, created_at, updated_at, import_id, email, phone, mobile, tags, \"custom.shoe\") VALUES \
             (1, 'person', TIMESTAMP '2026-01-02', TIMESTAMP '2026-01-02', 7, 'o''neil@example.cz', '+420601000001', NULL, ['vip', 'it''s'], '44'), \
             (2, 'company', TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-01', NULL, 'o''neil@example.cz', NULL, '+420601000001', [], NULL), \
             (3, 'person', TIMESTAMP '2026-01-03', TIMESTAMP '2026-01-03', 7, 'x@example.cz', NULL, NULL, ['vip'], NULL)",
        )
        .expect("contacts");
        (dir, db)
    }

    fn ids(rows: &ContactRows) -> Vec<String> {
        rows.1.iter().map(|r| r[0].clone().expect("id")).collect()
    }

    #[test]
    fn filters_select_by_every_condition_and_quote_their_values() {
        let (_dir, db) = store();
        let find = |filter: ContactFilter| ids(&db.find_contacts(&filter, 0).expect("find"));
        let email = || Some("o'neil@example.cz".to_string());
        assert_eq!(find(ContactFilter::default()), ["1", "2", "3"]);
        assert_eq!(
            find(ContactFilter {
                email: email(),
                ..Default::default()
            }),
            ["1", "2"]
        );
        let person = Some(ContactType::Person);
        assert_eq!(
            find(ContactFilter {
                email: email(),
                contact_type: person,
                ..Default::default()
            }),
            ["1"]
        );
        let tags = |t: &[&str]| t.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            find(ContactFilter {
                tags: tags(&["vip"]),
                ..Default::default()
            }),
            ["1", "3"]
        );
        assert_eq!(
            find(ContactFilter {
                tags: tags(&["vip", "it's"]),
                ..Default::default()
            }),
            ["1"]
        );
        assert_eq!(
            find(ContactFilter {
                import_id: Some(7),
                ..Default::default()
            }),
            ["1", "3"]
        );
        let phone = Some("+420601000001".to_string());
        assert_eq!(
            find(ContactFilter {
                phone,
                ..Default::default()
            }),
            ["1", "2"]
        );
        // A value is compared, never read as SQL.
        let injected = Some("x' OR '1' = '1".to_string());
        assert!(
            find(ContactFilter {
                email: injected.clone(),
                ..Default::default()
            })
            .is_empty()
        );
        assert_eq!(
            db.count_contacts(&ContactFilter {
                phone: injected,
                ..Default::default()
            })
            .expect("count"),
            0
        );
        assert_eq!(
            db.count_contacts(&ContactFilter {
                import_id: Some(7),
                ..Default::default()
            })
            .expect("count"),
            2
        );
        assert_eq!(
            ids(&db.find_contacts(&ContactFilter::default(), 2).expect("limit")),
            ["1", "2"]
        );
    }

    #[test]
    fn contacts_read_as_text_in_spec_column_order_oldest_first_by_key() {
        let (_dir, db) = store();
        let (names, rows) = db
            .contacts_by(ContactKey::Email("o'neil@example.cz"))
            .expect("by email");
        let stored = db.columns("contacts").expect("columns");
        assert_eq!(names, column_names(&stored));
        assert_eq!(names.last().map(String::as_str), Some("custom.shoe"));
        assert_eq!(ids(&(names.clone(), rows.clone())), ["2", "1"], "oldest first");
        let value = |row: &[Option<String>], name: &str| row[names.iter().position(|n| n == name).expect(name)].clone();
        assert_eq!(value(&rows[1], "tags").as_deref(), Some("vip;it's"));
        assert_eq!(value(&rows[1], "created_at").as_deref(), Some("2026-01-02 00:00:00"));
        assert_eq!(value(&rows[0], "import_id"), None);
        assert_eq!(
            ids(&db.contacts_by(ContactKey::Phone("+420601000001")).expect("phone")),
            ["2", "1"]
        );
        assert_eq!(ids(&db.contacts_by(ContactKey::Id(3)).expect("id")), ["3"]);
        assert!(db.contacts_by(ContactKey::Id(4)).expect("none").1.is_empty());
        let person = db.contact_ids_with_key("email", "o'neil@example.cz", ContactType::Person);
        assert_eq!(person.expect("ids"), [1]);
    }

    #[test]
    fn missing_ids_are_named_and_deletes_remove_only_the_ids_given() {
        let (_dir, db) = store();
        assert_eq!(db.missing_contact_ids(&[9, 1, 4]).expect("missing"), [4, 9]);
        assert!(db.missing_contact_ids(&[3, 1]).expect("none").is_empty());
        assert_eq!(db.delete_contacts(&[1, 3]).expect("delete"), 2);
        assert_eq!(
            ids(&db.find_contacts(&ContactFilter::default(), 0).expect("left")),
            ["2"]
        );
    }

    #[test]
    fn an_export_writes_the_selection_and_a_failed_write_is_the_callers_error() {
        let (dir, db) = store();
        let path = dir.path().join("vip.csv");
        let filter = ContactFilter {
            tags: vec!["vip".to_string()],
            ..Default::default()
        };
        let to = path.to_str().expect("utf-8");
        let n = db.export_contacts(&filter, FileFormat::Csv, to, |_| unreachable!());
        assert_eq!(n.expect("export"), 2);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("id,type,created_at,"), "{text}");
        assert!(text.contains("\n1,person,2026-01-02 00:00:00,2026-01-02 00:00:00,7,,,,,,o'neil@example.cz,+420601000001,,,,,,,,,unknown,unknown,vip;it's,,44\n"), "{text}");
        assert_eq!(text.lines().count(), 3);
        let missing = dir.path().join("no/such/dir/x.parquet");
        let failed = db.export_contacts(&filter, FileFormat::Parquet, missing.to_str().expect("utf-8"), |m| {
            crate::error::Error::usage(format!("failed: {m}"))
        });
        assert!(matches!(failed, Err(crate::error::Error::Usage(m)) if m.starts_with("failed: ")));
        let mut seen = Vec::new();
        let n = db.for_each_contact(&filter, |values| {
            seen.push(values[0].clone());
            Ok(())
        });
        assert_eq!(n.expect("rows"), 2);
        assert_eq!(
            seen,
            [Some("id".to_string()), Some("1".to_string()), Some("3".to_string())]
        );
    }
}
