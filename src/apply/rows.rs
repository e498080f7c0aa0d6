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
        let rows = take(batch.column(0), &indices, None)?;
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
            column: Some(i + 1),
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
