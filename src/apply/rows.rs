//! The store's rows of an import, built from normalized batches (pure):
//! ids, timestamps and import id for new contacts, the fields typed as the
//! store keeps them (dates, tags with `--tag`, consents), and the hash
//! column of each key field.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder, TimestampMicrosecondArray,
    UInt32Array, UInt64Array,
};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field as ArrowField, Schema, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::actions::Master;
use crate::fields::{FieldKind, KEY_FIELDS, hash_column, key_hash, standard_field};
use crate::normalize::NormalizedBatch;
use crate::store::commit::{ImportSpec, StagedRows};

/// A stored field the import writes: its name and kind.
#[derive(Debug, Clone)]
pub struct StoreField {
    pub name: String,
    pub kind: FieldKind,
    /// Column of the field in the normalized batch; `None` for `tags`
    /// added only to carry `--tag`.
    pub column: Option<usize>,
}

/// Builds the store's rows from normalized batches: ids, timestamps and
/// import id for new contacts, typed fields (dates, tags with `--tag`,
/// consents), and the hash column of each key field.
pub(crate) struct Rows {
    import_id: Option<i64>,
    /// The import's time: new contacts' `created_at` and `updated_at`,
    /// updated contacts' `updated_at`.
    pub(crate) now: i64,
    /// The id the next new contact gets.
    pub(crate) next_id: i64,
    /// The id of the first contact this import inserts.
    pub(crate) first_id: i64,
    contact_type: &'static str,
    fields: Vec<StoreField>,
    /// Key fields among `fields` (their positions): each also writes its
    /// hash column, the store's key index.
    hashed: Vec<usize>,
    /// `--tag` values, added to every imported or updated contact.
    tags: Vec<String>,
    insert_schema: Arc<Schema>,
    update_schema: Arc<Schema>,
}

impl Rows {
    /// The rows of an import of contacts of `contact_type` into group
    /// `import_id` (none for `contacts add`), made at `now`; ids are given
    /// from the store's counter once it is read ([`Rows::start_at`]).
    pub(crate) fn new(
        import_id: Option<i64>,
        now: i64,
        contact_type: &'static str,
        fields: Vec<StoreField>,
        tags: Vec<String>,
    ) -> Rows {
        let hashed: Vec<usize> = (0..fields.len())
            .filter(|&i| KEY_FIELDS.contains(&fields[i].name.as_str()))
            .collect();
        let mut insert_fields = vec![
            ArrowField::new("id", DataType::Int64, false),
            ArrowField::new("type", DataType::Utf8, false),
            ArrowField::new("created_at", DataType::Timestamp(TimeUnit::Microsecond, None), false),
            ArrowField::new("updated_at", DataType::Timestamp(TimeUnit::Microsecond, None), false),
            ArrowField::new("import_id", DataType::Int64, true),
        ];
        let mut update_fields = vec![
            ArrowField::new("contact_id", DataType::Int64, false),
            ArrowField::new("row", DataType::UInt64, false),
        ];
        for field in &fields {
            let arrow = ArrowField::new(&field.name, store_type(field.kind), true);
            insert_fields.push(arrow.clone());
            update_fields.push(arrow);
        }
        for &i in &hashed {
            let arrow = ArrowField::new(hash_column(&fields[i].name), DataType::UInt64, true);
            insert_fields.push(arrow.clone());
            update_fields.push(arrow);
        }
        Rows {
            import_id,
            now,
            next_id: 0,
            first_id: 0,
            contact_type,
            fields,
            hashed,
            tags,
            insert_schema: Arc::new(Schema::new(insert_fields)),
            update_schema: Arc::new(Schema::new(update_fields)),
        }
    }

    /// What the store is told of these rows when the import begins.
    pub(crate) fn spec(&self, master: Master) -> ImportSpec<'_> {
        ImportSpec {
            fields: &self.fields,
            hashed: &self.hashed,
            master,
            undo_of: self.import_id,
            insert_schema: &self.insert_schema,
            update_schema: &self.update_schema,
        }
    }

    /// New contacts get ids from `first_id` on.
    pub(crate) fn start_at(&mut self, first_id: i64) {
        self.first_id = first_id;
        self.next_id = first_id;
    }

    /// Rows of one normalized batch: `inserts` as new contacts; row
    /// `update_rows[k]` updating the stored contact `update_ids[k]`.
    pub(crate) fn staged(
        &mut self,
        batch: &RecordBatch,
        inserts: &[u32],
        update_rows: &[u32],
        update_ids: &[i64],
    ) -> Result<StagedRows, ArrowError> {
        let inserts = if inserts.is_empty() {
            None
        } else {
            Some(self.inserts(batch, inserts)?)
        };
        let updates = if update_rows.is_empty() {
            None
        } else {
            Some(self.updates(batch, update_rows, update_ids)?)
        };
        Ok(StagedRows { inserts, updates })
    }

    /// The rows `indices` of a normalized batch as new contacts.
    fn inserts(&mut self, batch: &RecordBatch, indices: &[u32]) -> Result<RecordBatch, ArrowError> {
        let n = indices.len();
        let indices = UInt32Array::from(indices.to_vec());
        let ids = Int64Array::from_iter_values(self.next_id..self.next_id + n as i64);
        self.next_id += n as i64;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(ids),
            Arc::new(StringArray::from(vec![self.contact_type; n])),
            Arc::new(TimestampMicrosecondArray::from(vec![self.now; n])),
            Arc::new(TimestampMicrosecondArray::from(vec![self.now; n])),
            Arc::new(Int64Array::from(vec![self.import_id; n])),
        ];
        for field in &self.fields {
            columns.push(self.field_values(batch, field, &indices, true)?);
        }
        self.push_hashes(&mut columns, 5);
        RecordBatch::try_new(self.insert_schema.clone(), columns)
    }

    /// Updates: row `indices[k]` of a normalized batch updates the stored
    /// contact `contact_ids[k]`.
    fn updates(&self, batch: &RecordBatch, indices: &[u32], contact_ids: &[i64]) -> Result<RecordBatch, ArrowError> {
        let indices = UInt32Array::from(indices.to_vec());
        let rows = take(batch.column(NormalizedBatch::ROW_NUMBERS), &indices, None)?;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(contact_ids.to_vec())), rows];
        for field in &self.fields {
            columns.push(self.field_values(batch, field, &indices, false)?);
        }
        self.push_hashes(&mut columns, 2);
        RecordBatch::try_new(self.update_schema.clone(), columns)
    }

    /// Appends the hash column of each key field; `first` is the column of
    /// the first field in `columns`.
    fn push_hashes(&self, columns: &mut Vec<ArrayRef>, first: usize) {
        for &i in &self.hashed {
            let values = columns[first + i].as_string::<i32>();
            let hashes: UInt64Array = values.iter().map(|v| v.map(key_hash)).collect();
            columns.push(Arc::new(hashes));
        }
    }

    /// A field's values for the given rows, typed as the store keeps them.
    fn field_values(
        &self,
        batch: &RecordBatch,
        field: &StoreField,
        indices: &UInt32Array,
        insert: bool,
    ) -> Result<ArrayRef, ArrowError> {
        let n = indices.len();
        let values: Option<ArrayRef> = field.column.map(|c| take(batch.column(c), indices, None)).transpose()?;
        Ok(match field.kind {
            FieldKind::Date => match values {
                Some(v) => cast(&v, &DataType::Date32)?,
                None => arrow::array::new_null_array(&DataType::Date32, n),
            },
            FieldKind::Tags => {
                let strings = values.as_ref().map(|v| v.as_string::<i32>());
                let mut builder = ListBuilder::new(StringBuilder::new());
                let mut seen: Vec<&str> = Vec::new();
                for i in 0..n {
                    seen.clear();
                    if let Some(s) = strings
                        && s.is_valid(i)
                    {
                        seen.extend(s.value(i).split(';').filter(|t| !t.is_empty()));
                    }
                    for tag in &self.tags {
                        if !seen.contains(&tag.as_str()) {
                            seen.push(tag);
                        }
                    }
                    for tag in &seen {
                        builder.values().append_value(tag);
                    }
                    builder.append(true);
                }
                Arc::new(builder.finish())
            }
            FieldKind::Consent if insert => {
                let strings = values.as_ref().map(|v| v.as_string::<i32>());
                let filled: StringArray = (0..n)
                    .map(|i| Some(strings.filter(|s| s.is_valid(i)).map_or("unknown", |s| s.value(i))))
                    .collect();
                Arc::new(filled)
            }
            _ => values.unwrap_or_else(|| arrow::array::new_null_array(&DataType::Utf8, n)),
        })
    }
}

/// The Arrow type a field has in the contacts table.
fn store_type(kind: FieldKind) -> DataType {
    match kind {
        FieldKind::Date => DataType::Date32,
        FieldKind::Tags => DataType::List(Arc::new(ArrowField::new("item", DataType::Utf8, true))),
        _ => DataType::Utf8,
    }
}

/// The stored fields of an import: the normalized batch's fields (columns
/// 1..), plus `tags` when only `--tag` gives tags.
pub fn store_fields(names: &[String], tags: &[String]) -> Vec<StoreField> {
    let mut fields: Vec<StoreField> = names
        .iter()
        .enumerate()
        // The contact id only matches; the store assigns ids.
        .filter(|(_, name)| name.as_str() != crate::fields::ID_FIELD.name)
        .map(|(i, name)| StoreField {
            name: name.clone(),
            kind: standard_field(name).map_or(FieldKind::Text, |f| f.kind),
            column: Some(NormalizedBatch::field_column(i)),
        })
        .collect();
    if !tags.is_empty() && !names.iter().any(|n| n == "tags") {
        fields.push(StoreField {
            name: "tags".into(),
            kind: FieldKind::Tags,
            column: None,
        });
    }
    fields
}

#[cfg(test)]
mod tests {
    use arrow::array::{ListArray, StringArray, UInt64Array};
    use arrow::datatypes::{Int64Type, UInt64Type};

    use super::*;

    /// A normalized batch: `__row`, email, email_opt_in, tags.
    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("__row", Arc::new(UInt64Array::from(vec![1, 2])) as ArrayRef),
            (
                "email",
                Arc::new(StringArray::from(vec![Some("a@x.cz"), None])) as ArrayRef,
            ),
            (
                "email_opt_in",
                Arc::new(StringArray::from(vec![None, Some("yes")])) as ArrayRef,
            ),
            (
                "tags",
                Arc::new(StringArray::from(vec![Some("vip;b2b"), None])) as ArrayRef,
            ),
        ])
        .expect("batch")
    }

    fn rows(tags: &[&str]) -> Rows {
        let names = ["email", "email_opt_in", "tags"].map(String::from);
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let mut rows = Rows::new(Some(7), 1_000, "person", store_fields(&names, &tags), tags);
        rows.start_at(41);
        rows
    }

    fn tags_of(batch: &RecordBatch, column: &str) -> Vec<String> {
        let list = batch
            .column_by_name(column)
            .expect("tags")
            .as_any()
            .downcast_ref::<ListArray>()
            .expect("a list");
        (0..list.len())
            .map(|i| {
                let values = list.value(i);
                let values = values.as_string::<i32>();
                values.iter().flatten().collect::<Vec<_>>().join(";")
            })
            .collect()
    }

    #[test]
    fn new_contacts_take_ids_from_the_counter_and_their_keys_hashes() {
        let mut rows = rows(&[]);
        let staged = rows.staged(&batch(), &[0, 1], &[], &[]).expect("rows");
        assert!(staged.updates.is_none());
        let inserts = staged.inserts.expect("inserts");
        let ids = inserts.column_by_name("id").expect("id").as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[41, 42]);
        assert_eq!((rows.first_id, rows.next_id), (41, 43));
        let hashes = inserts
            .column_by_name(&hash_column("email"))
            .expect("email hash")
            .as_primitive::<UInt64Type>();
        assert_eq!(hashes.iter().collect::<Vec<_>>(), [Some(key_hash("a@x.cz")), None]);
        let import = inserts.column_by_name("import_id").expect("import_id");
        assert_eq!(import.as_primitive::<Int64Type>().values(), &[7, 7]);
    }

    #[test]
    fn a_new_contact_without_consent_is_unknown_but_an_update_leaves_it_alone() {
        let mut rows = rows(&[]);
        let staged = rows.staged(&batch(), &[0, 1], &[0, 1], &[5, 6]).expect("rows");
        let consent = |b: &RecordBatch| -> Vec<Option<String>> {
            let c = b.column_by_name("email_opt_in").expect("consent").as_string::<i32>();
            c.iter().map(|v| v.map(str::to_string)).collect()
        };
        let inserts = staged.inserts.expect("inserts");
        let updates = staged.updates.expect("updates");
        assert_eq!(consent(&inserts), [Some("unknown".into()), Some("yes".into())]);
        assert_eq!(consent(&updates), [None, Some("yes".into())]);
        let targets = updates.column_by_name("contact_id").expect("contact_id");
        assert_eq!(targets.as_primitive::<Int64Type>().values(), &[5, 6]);
        assert_eq!(rows.next_id, 43, "updates take no ids");
    }

    #[test]
    fn tag_option_values_are_added_once_to_the_files_tags() {
        let mut rows = rows(&["b2b", "new"]);
        let staged = rows.staged(&batch(), &[0, 1], &[], &[]).expect("rows");
        assert_eq!(
            tags_of(&staged.inserts.expect("inserts"), "tags"),
            ["vip;b2b;new", "b2b;new"]
        );
    }

    #[test]
    fn the_contact_id_field_is_not_stored_and_tag_option_alone_adds_tags() {
        let names = ["id", "email"].map(String::from);
        let fields = store_fields(&names, &["vip".to_string()]);
        let named: Vec<(&str, Option<usize>)> = fields.iter().map(|f| (f.name.as_str(), f.column)).collect();
        assert_eq!(named, [("email", Some(2)), ("tags", None)]);
        assert_eq!(store_fields(&names, &[]).len(), 1);
    }
}
