//! The normalize stage's output: the [`NormalizedBatch`], read through
//! accessors by name, and the rows that failed.

use arrow::array::{Array, AsArray, StringArray, UInt64Array};
use arrow::datatypes::UInt64Type;
use arrow::record_batch::RecordBatch;

use crate::read::RawBatch;

/// Why a row failed (SPEC, `failed.csv` reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    WrongFormat,
    MissingKey,
    NoFields,
    NotUnique,
    BadRow,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::WrongFormat => "wrong_format",
            Reason::MissingKey => "missing_key",
            Reason::NoFields => "no_fields",
            Reason::NotUnique => "not_unique",
            Reason::BadRow => "bad_row",
        }
    }
}

/// A row that goes to `failed.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRow {
    pub row: u64,
    pub reason: Reason,
    /// Names the field(s) and the offending value(s).
    pub detail: String,
    /// Where the row's values as read are (see [`NormalizedBatch::original`]).
    pub original: Original,
}

/// The original values of a failed row: a bad row's own fields, or its
/// index in the raw batch (not copied: most failed rows are read fine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Original {
    Fields(Vec<String>),
    RawRow(usize),
}

/// A normalized batch: `__row`, one nullable Utf8 column per mapped field
/// (mapping order, then `--set` fields), `warnings`, and the key hashes.
/// Read it through its accessors ([`row_numbers`](Self::row_numbers),
/// [`field`](Self::field), [`warnings`](Self::warnings),
/// [`keys`](Self::keys)), which alone know where each column is.
#[derive(Debug, Clone)]
pub struct NormalizedBatch {
    /// Every row read as a row of the table (a bad row is only in
    /// `failed`), failed ones included (see `dropped`).
    pub batch: RecordBatch,
    pub failed: Vec<FailedRow>,
    /// Per row of `batch`: it failed (it is in `failed`), and whatever
    /// reads the batch skips it ([`is_kept`](Self::is_kept)). Empty when
    /// no row of the batch failed.
    pub dropped: Vec<bool>,
    /// The input batch (shared, not copied), for failed rows' values.
    pub raw: RawBatch,
    /// The field index of the primary and the secondary key's values.
    pub(super) keys: [Option<usize>; 2],
}

/// One matching key's columns in a normalized batch: each row's xxh3 hash
/// of the value, and the values (`None` when the key is not in use).
#[derive(Debug, Clone, Copy)]
pub struct KeyColumn<'a> {
    /// The key's field name (`email`, …), when the key is in use.
    pub field: Option<&'a str>,
    pub hashes: &'a UInt64Array,
    pub values: Option<&'a StringArray>,
}

impl<'a> KeyColumn<'a> {
    /// The key's value in row `i` with its hash; `None` when empty.
    #[inline]
    pub fn at(&self, i: usize) -> Option<(u64, &'a str)> {
        let values = self.values?;
        (values.is_valid(i)).then(|| (self.hashes.value(i), values.value(i)))
    }

    /// The hash of the key's value in row `i`, if it has one (for a
    /// prefetch: `i` may be past the end).
    #[inline]
    pub fn hash_at(&self, i: usize) -> Option<u64> {
        self.values
            .filter(|v| i < v.len() && v.is_valid(i))
            .map(|_| self.hashes.value(i))
    }
}

/// Where the columns of a normalized batch are, by its width: `__row`
/// first, then the fields, then `warnings` and the two key hashes (the
/// order [`Plan::new`] builds the schema in).
mod layout {
    pub const ROW_NUMBERS: usize = 0;
    pub const FIRST_FIELD: usize = 1;
    /// Columns besides the fields.
    pub const OTHERS: usize = 4;
    pub fn warnings(width: usize) -> usize {
        width - 3
    }
    pub fn hash(width: usize, key: usize) -> usize {
        width - 2 + key
    }
}

impl NormalizedBatch {
    /// The column of each row's number in the input (`__row`), in a batch
    /// of this layout (the commit reads it from the batch alone).
    pub const ROW_NUMBERS: usize = layout::ROW_NUMBERS;

    /// The column of field `f` (in the plan's field order) in a batch of
    /// this layout.
    pub fn field_column(f: usize) -> usize {
        layout::FIRST_FIELD + f
    }

    /// Each row's number in the input.
    pub fn row_numbers(&self) -> &UInt64Array {
        self.batch.column(layout::ROW_NUMBERS).as_primitive::<UInt64Type>()
    }

    /// How many fields the batch has.
    pub fn field_count(&self) -> usize {
        self.batch.num_columns() - layout::OTHERS
    }

    /// The normalized values of field `f` (in the plan's field order).
    pub fn field(&self, f: usize) -> &StringArray {
        self.batch.column(Self::field_column(f)).as_string::<i32>()
    }

    /// The values dropped from each row (`--invalid-values drop`).
    pub fn warnings(&self) -> &StringArray {
        self.batch
            .column(layout::warnings(self.batch.num_columns()))
            .as_string::<i32>()
    }

    /// The fields, then `warnings`: the normalized columns of the output
    /// files, in their order.
    pub fn output_columns(&self) -> impl Iterator<Item = &StringArray> {
        (0..self.field_count()).map(|f| self.field(f)).chain([self.warnings()])
    }

    /// The primary and the secondary key's columns.
    pub fn keys(&self) -> [KeyColumn<'_>; 2] {
        let width = self.batch.num_columns();
        let schema = self.batch.schema_ref();
        [0, 1].map(|k| {
            let column = self.keys[k].map(Self::field_column);
            KeyColumn {
                field: column.map(|c| schema.field(c).name().as_str()),
                hashes: self.batch.column(layout::hash(width, k)).as_primitive::<UInt64Type>(),
                values: column.map(|c| self.batch.column(c).as_string::<i32>()),
            }
        })
    }

    /// Whether row `i` of `batch` goes on (it did not fail).
    pub fn is_kept(&self, i: usize) -> bool {
        self.dropped.get(i).is_none_or(|&dropped| !dropped)
    }

    /// The rows of `batch` that go on.
    pub fn kept_rows(&self) -> usize {
        self.batch.num_rows() - self.dropped.iter().filter(|&&dropped| dropped).count()
    }

    /// The index in the raw batch of a row read fine (by its row number).
    pub fn raw_index(&self, row: u64) -> Option<usize> {
        self.raw.rows().values().binary_search(&row).ok()
    }

    /// A failed row's values as read, in input column order.
    pub fn original<'a>(&'a self, failed: &'a FailedRow) -> Vec<&'a str> {
        match &failed.original {
            Original::Fields(fields) => fields.iter().map(String::as_str).collect(),
            Original::RawRow(i) => (0..self.raw.batch.num_columns() - 1)
                .map(|c| self.raw.column(c).value(*i))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::ArrayRef;

    use super::super::{NormalizeSettings, PRIMARY_HASH, Plan, SECONDARY_HASH, WARNINGS_COLUMN};
    use super::*;
    use crate::fields::standard_field;
    use crate::map::{ContactType, MappedColumn, Mapping, Target};
    use crate::read::raw_schema;

    #[test]
    fn the_accessors_read_the_columns_the_plan_names() {
        let column = |name: &str, index: usize| MappedColumn {
            index,
            column: name.to_string(),
            target: Target::Standard(standard_field(name).expect("field")),
        };
        let mapping = Mapping {
            columns: vec![column("first_name", 0), column("phone", 1), column("email", 2)],
            constants: Vec::new(),
            set_on: Vec::new(),
            tags: Vec::new(),
            contact_type: ContactType::Person,
        };
        let settings = NormalizeSettings {
            primary_key: Some("email"),
            secondary_key: Some("phone"),
            invalid_values: super::super::InvalidValues::Drop,
            ..NormalizeSettings::default()
        };
        let plan = Plan::new(&mapping, settings).expect("plan");
        let values = |v: [&str; 2]| -> ArrayRef { Arc::new(StringArray::from(v.to_vec())) };
        let raw = RawBatch {
            batch: RecordBatch::try_new(
                raw_schema(&["a".into(), "b".into(), "c".into()]),
                vec![
                    Arc::new(UInt64Array::from(vec![7, 9])),
                    values(["Ann", "Bob"]),
                    values(["no phone", "+420777123456"]),
                    values(["A@x.cz", ""]),
                ],
            )
            .expect("raw"),
            bad_rows: Vec::new(),
        };
        let norm = plan.normalize(&raw);
        let schema = norm.batch.schema();
        assert_eq!(norm.row_numbers().values().to_vec(), vec![7, 9]);
        assert_eq!(norm.field_count(), 3);
        for (f, name) in plan.field_names().enumerate() {
            assert_eq!(schema.field(NormalizedBatch::field_column(f)).name(), name);
        }
        assert_eq!(norm.field(0).value(1), "Bob");
        assert!(!norm.warnings().is_null(0));
        assert!(
            norm.warnings().value(0).starts_with("dropped phone"),
            "{:?}",
            norm.warnings()
        );
        let names: Vec<&str> = plan.output_names().collect();
        assert_eq!(names, ["first_name", "phone", "email", WARNINGS_COLUMN]);
        assert_eq!(norm.output_columns().count(), 4);
        let [primary, secondary] = norm.keys();
        assert_eq!((primary.field, secondary.field), (Some("email"), Some("phone")));
        let (hash, email) = primary.at(0).expect("email");
        assert_eq!(email, "a@x.cz");
        assert_eq!(hash, xxhash_rust::xxh3::xxh3_64(b"a@x.cz"));
        assert_eq!(primary.at(1), None);
        assert_eq!(secondary.at(1).map(|(_, v)| v), Some("+420777123456"));
        assert_eq!(secondary.hash_at(1), secondary.at(1).map(|(h, _)| h));
        assert_eq!(secondary.hash_at(2), None);
        let width = schema.fields().len();
        assert_eq!(schema.field(width - 2).name(), PRIMARY_HASH);
        assert_eq!(schema.field(width - 1).name(), SECONDARY_HASH);
    }
}
