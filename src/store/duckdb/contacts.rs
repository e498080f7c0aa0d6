//! The `contacts` commands' queries: the contact columns as text, the
//! filters as a `WHERE` clause. Filter values become SQL literals only
//! quoted ([`literal`]); field names only as quoted identifiers.

use crate::error::Result;
use crate::map::ContactType;
use crate::store::contacts::{ContactFilter, ContactKey, ContactRows, column_names};

use super::{DuckDb, literal, quote_ident};

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
        let condition = match key {
            ContactKey::Id(id) => format!("id = {id}"),
            ContactKey::Email(email) => format!("email = {}", literal(email)),
            ContactKey::Phone(phone) => {
                let phone = literal(phone);
                format!("phone = {phone} OR mobile = {phone}")
            }
        };
        let columns = self.contact_columns(true)?.join(", ");
        self.text_rows(&format!(
            "SELECT {columns} FROM contacts WHERE {condition} ORDER BY created_at, id"
        ))
    }

    pub(crate) fn contact_ids_with_email(&self, email: &str, contact_type: ContactType) -> Result<Vec<i64>> {
        self.ids(&format!(
            "SELECT id FROM contacts WHERE email = {} AND type = {} ORDER BY created_at, id",
            literal(email),
            literal(contact_type.name())
        ))
    }

    pub(crate) fn missing_contact_ids(&self, ids: &[i64]) -> Result<Vec<i64>> {
        self.ids(&format!(
            "SELECT x FROM unnest([{}]) t(x) WHERE x NOT IN (SELECT id FROM contacts) ORDER BY x",
            id_list(ids)
        ))
    }

    pub(crate) fn delete_contacts(&self, ids: &[i64]) -> Result<usize> {
        self.execute(&format!("DELETE FROM contacts WHERE id IN ({})", id_list(ids)), [])
    }

    pub(crate) fn rollback(&self) -> Result<()> {
        self.execute_batch("ROLLBACK")
    }

    /// The contacts a filter selects, as a query ordered by id (see
    /// [`DuckDb::contact_columns`] for `text`).
    pub(super) fn select_contacts(&self, filter: &ContactFilter, text: bool) -> Result<String> {
        Ok(format!(
            "SELECT {} FROM contacts{} ORDER BY contacts.id",
            self.contact_columns(text)?.join(", "),
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
    let mut conditions = Vec::new();
    if let Some(import_id) = filter.import_id {
        conditions.push(format!("import_id = {import_id}"));
    }
    for tag in &filter.tags {
        conditions.push(format!("list_contains(tags, {})", literal(tag)));
    }
    if let Some(t) = filter.contact_type {
        conditions.push(format!("type = {}", literal(t.name())));
    }
    if let Some(email) = &filter.email {
        conditions.push(format!("email = {}", literal(email)));
    }
    if let Some(phone) = &filter.phone {
        let phone = literal(phone);
        conditions.push(format!("(phone = {phone} OR mobile = {phone})"));
    }
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// Ids as a SQL list's items.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}
