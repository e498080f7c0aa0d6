//! The `contacts` commands' queries and the exports, in PostgreSQL. The
//! text of each value is the DuckDB store's (timestamps `2026-12-03
//! 17:42:04.12`, dates `2026-01-02`, tags joined by `;`), so a command
//! prints and exports the same bytes on either backend.

use std::io::Write;

use crate::error::{Error, Result};
use crate::fields::hash_column;
use crate::map::ContactType;
use crate::store::contacts::{ContactFilter, ContactKey, ContactRows, MEMBERSHIP_COLUMNS, column_names};
use crate::store::export::FileFormat;
use crate::store::sql::{self, key_column};

use super::{Postgres, quote_ident};

impl Postgres {
    pub(crate) fn find_contacts(&self, filter: &ContactFilter, limit: usize) -> Result<ContactRows> {
        let mut sql = self.select_contacts(filter)?;
        if limit > 0 {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        self.text_rows(&sql)
    }

    pub(crate) fn count_contacts(&self, filter: &ContactFilter) -> Result<i64> {
        self.query_one_i64(&format!("SELECT count(*) FROM contacts{}", where_clause(filter)), &[])
    }

    pub(crate) fn contacts_by(&self, key: ContactKey) -> Result<ContactRows> {
        let condition = sql::key_condition(key);
        let columns = self.contact_columns()?.join(", ");
        self.text_rows(&format!(
            "SELECT {columns} FROM contacts WHERE {condition} ORDER BY created_at, id"
        ))
    }

    pub(crate) fn contact_ids_with_key(&self, field: &str, value: &str, contact_type: ContactType) -> Result<Vec<i64>> {
        self.ids(&sql::ids_with_key(field, value, contact_type))
    }

    pub(crate) fn key_hashes(&self, field: &str) -> Result<Vec<(u64, i64)>> {
        let hash = hash_column(key_column(field));
        Ok(self
            .query(
                &format!("SELECT {hash}, id FROM contacts WHERE {hash} IS NOT NULL"),
                &[],
            )?
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect())
    }

    pub(crate) fn count_shared_values(&self, field: &str) -> Result<i64> {
        self.query_one_i64(&sql::count_shared(field), &[])
    }

    pub(crate) fn contact_ids_with_value(&self, field: &str, value: &str) -> Result<Vec<i64>> {
        self.ids(&sql::ids_with_value(field, value))
    }

    pub(crate) fn missing_contact_ids(&self, ids: &[i64]) -> Result<Vec<i64>> {
        Ok(self
            .query(
                "SELECT x FROM unnest($1::bigint[]) AS t(x) WHERE NOT EXISTS (SELECT 1 FROM contacts WHERE id = x) \
                 ORDER BY x",
                &[&ids],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    pub(crate) fn delete_contacts(&self, ids: &[i64]) -> Result<usize> {
        self.begin()?;
        let deleted = (|| {
            self.execute("DELETE FROM list_members WHERE contact_id = ANY($1)", &[&ids])?;
            let n = self.execute("DELETE FROM contacts WHERE id = ANY($1)", &[&ids])?;
            self.commit()?;
            Ok(n as usize)
        })();
        if deleted.is_err() {
            let _ = self.rollback();
        }
        deleted
    }

    pub(crate) fn export_contacts(
        &self,
        filter: &ContactFilter,
        format: FileFormat,
        to: &str,
        failed: impl FnOnce(&str) -> Error,
    ) -> Result<usize> {
        if format == FileFormat::Parquet {
            return self.export_parquet(filter, to, failed);
        }
        let sql = format!(
            "COPY ({}) TO STDOUT (FORMAT csv, HEADER true)",
            self.select_contacts(filter)?
        );
        let written = (|| -> std::result::Result<usize, String> {
            let file = std::fs::File::create(to).map_err(|e| e.to_string())?;
            let mut out = std::io::BufWriter::new(file);
            let mut client = self.client();
            let mut reader = client.copy_out(&sql).map_err(|e| super::describe(&e))?;
            // Rows are counted by their ends outside quotes.
            let mut rows = 0usize;
            let mut quoted = false;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = std::io::Read::read(&mut reader, &mut buf).map_err(|e| super::describe_io(&e))?;
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    match b {
                        b'"' => quoted = !quoted,
                        b'\n' if !quoted => rows += 1,
                        _ => {}
                    }
                }
                out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
            }
            out.flush().map_err(|e| e.to_string())?;
            Ok(rows)
        })();
        let rows = written.map_err(|m| failed(&m))?;
        Ok(rows.saturating_sub(1))
    }

    /// The contacts a filter selects as Parquet, the columns in their
    /// store types (ids `Int64`, times `Timestamp(µs)`, `birth_date`
    /// `Date32`, the rest text; tags joined by `;`), in row groups of 64k,
    /// as the DuckDB store writes them (Snappy here, zstd there: kontakt's
    /// Parquet writer is built without zstd).
    fn export_parquet(&self, filter: &ContactFilter, to: &str, failed: impl FnOnce(&str) -> Error) -> Result<usize> {
        use parquet::arrow::ArrowWriter;
        use parquet::basic::Compression;
        use parquet::file::properties::WriterProperties;

        use super::copy::Out;

        let (sql, names) = self.select_contacts_typed(filter)?;
        let types: Vec<Out> = names
            .iter()
            .map(|name| match name.as_str() {
                "id" | "import_id" => Out::Int64,
                "created_at" | "updated_at" | "added_at" => Out::Timestamp,
                "birth_date" => Out::Date,
                _ => Out::Text,
            })
            .collect();
        let fields: Vec<arrow::datatypes::Field> = names
            .iter()
            .zip(&types)
            .map(|(name, t)| arrow::datatypes::Field::new(name, t.data_type(), true))
            .collect();
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let created = std::fs::File::create(to)
            .map_err(|e| e.to_string())
            .and_then(|file| ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| e.to_string()));
        let mut writer = match created {
            Ok(writer) => writer,
            Err(message) => return Err(failed(&message)),
        };
        // Store errors are the store's; a write that fails is `failed`'s.
        let written = self.copy_out(&sql, names, types, "contacts", |batches| {
            let mut rows = 0;
            for batch in batches {
                let batch = batch?;
                rows += batch.num_rows();
                let wrote = arrow::record_batch::RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                    .map_err(|e| e.to_string())
                    .and_then(|b| writer.write(&b).map_err(|e| e.to_string()));
                if let Err(message) = wrote {
                    return Ok(Err(message));
                }
            }
            Ok(Ok(rows))
        })?;
        written
            .and_then(|rows| writer.close().map(|_| rows).map_err(|e| e.to_string()))
            .map_err(|m| failed(&m))
    }

    /// [`Self::select_contacts`] with the columns in their store types, and
    /// their names.
    fn select_contacts_typed(&self, filter: &ContactFilter) -> Result<(String, Vec<String>)> {
        let stored = self.columns("contacts")?;
        let mut names: Vec<String> = column_names(&stored).into_iter().map(str::to_string).collect();
        let mut columns: Vec<String> = names
            .iter()
            .map(|name| {
                let q = quote_ident(name);
                match name.as_str() {
                    "tags" => format!("array_to_string(contacts.{q}, ';') AS {q}"),
                    "id" | "import_id" | "created_at" | "updated_at" | "birth_date" => format!("contacts.{q}"),
                    _ => format!("contacts.{q}::text AS {q}"),
                }
            })
            .collect();
        let mut from = "contacts".to_string();
        if let (Some(list_id), true) = (filter.list_id, filter.membership) {
            from.push_str(&format!(
                " JOIN (SELECT contact_id, status, agent, callback_at, added_at FROM list_members \
                 WHERE list_id = {list_id}) AS m ON m.contact_id = contacts.id"
            ));
            names.extend(MEMBERSHIP_COLUMNS.iter().map(|n| n.to_string()));
            columns.extend(MEMBERSHIP_COLUMNS.iter().map(|&name| match name {
                "callback_at" => "to_char(m.callback_at, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS callback_at".to_string(),
                "added_at" => "m.added_at".to_string(),
                _ => format!("m.{name}::text AS {name}"),
            }));
        }
        Ok((
            format!(
                "SELECT {} FROM {from}{} ORDER BY contacts.id",
                columns.join(", "),
                where_clause(filter)
            ),
            names,
        ))
    }

    pub(crate) fn for_each_contact(
        &self,
        filter: &ContactFilter,
        mut each: impl FnMut(&[Option<String>]) -> Result<()>,
    ) -> Result<usize> {
        let sql = self.select_contacts(filter)?;
        let mut client = self.client();
        let statement = client.prepare(&sql).map_err(|e| self.error(&e))?;
        let names: Vec<Option<String>> = statement.columns().iter().map(|c| Some(c.name().to_string())).collect();
        each(&names)?;
        let params: [&(dyn postgres::types::ToSql + Sync); 0] = [];
        let mut rows = client
            .query_raw(&statement, params.iter().copied())
            .map_err(|e| self.error(&e))?;
        let mut n = 0;
        let mut values: Vec<Option<String>> = Vec::with_capacity(names.len());
        while let Some(row) =
            postgres::fallible_iterator::FallibleIterator::next(&mut rows).map_err(|e| self.error(&e))?
        {
            values.clear();
            for i in 0..names.len() {
                values.push(row.try_get(i).map_err(|e| self.error(&e))?);
            }
            each(&values)?;
            n += 1;
        }
        Ok(n)
    }

    /// The contacts a filter selects, as text, ordered by id.
    fn select_contacts(&self, filter: &ContactFilter) -> Result<String> {
        let mut columns = self.contact_columns()?;
        let mut from = "contacts".to_string();
        if let (Some(list_id), true) = (filter.list_id, filter.membership) {
            from.push_str(&format!(
                " JOIN (SELECT contact_id, status, agent, callback_at, added_at FROM list_members \
                 WHERE list_id = {list_id}) AS m ON m.contact_id = contacts.id"
            ));
            columns.extend(MEMBERSHIP_COLUMNS.iter().map(|&name| match name {
                "callback_at" => "to_char(m.callback_at, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS callback_at".to_string(),
                _ => format!("m.{name}::text AS {name}"),
            }));
        }
        Ok(format!(
            "SELECT {} FROM {from}{} ORDER BY contacts.id",
            columns.join(", "),
            where_clause(filter)
        ))
    }

    /// The contact columns as text, each named as SPEC names it.
    fn contact_columns(&self) -> Result<Vec<String>> {
        let stored = self.columns("contacts")?;
        Ok(column_names(&stored)
            .into_iter()
            .map(|name| {
                let q = quote_ident(name);
                if name == "tags" {
                    format!("array_to_string(contacts.{q}, ';') AS {q}")
                } else {
                    format!("contacts.{q}::text AS {q}")
                }
            })
            .collect())
    }

    /// A query's rows as text, with its column names.
    fn text_rows(&self, sql: &str) -> Result<ContactRows> {
        let mut names: Option<Vec<String>> = None;
        let mut rows = Vec::new();
        let mut client = self.client();
        let statement = client.prepare(sql).map_err(|e| self.error(&e))?;
        names.get_or_insert_with(|| statement.columns().iter().map(|c| c.name().to_string()).collect());
        for row in client.query(&statement, &[]).map_err(|e| self.error(&e))? {
            let values = (0..row.len())
                .map(|i| row.try_get::<_, Option<String>>(i))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| self.error(&e))?;
            rows.push(values);
        }
        Ok((names.unwrap_or_default(), rows))
    }

    /// The ids a query of one `bigint` column returns, in its order.
    fn ids(&self, sql: &str) -> Result<Vec<i64>> {
        Ok(self.query(sql, &[])?.iter().map(|r| r.get(0)).collect())
    }
}

/// The filter's `WHERE` clause (empty when nothing filters).
fn where_clause(filter: &ContactFilter) -> String {
    sql::where_clause(filter, |tag| format!("{tag} = ANY(tags)"))
}
