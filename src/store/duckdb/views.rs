//! Arrow streams as views: DuckDB reads a stream of Arrow batches through
//! its own Arrow scan (parallel, no row-by-row conversion), so
//! `INSERT INTO contacts SELECT * FROM <view>` appends a stream to the store
//! far cheaper than the duckdb crate's appender, which converts every value
//! in Rust and then runs one insert query per flush.
//!
//! duckdb-rs has no API for this, so it goes through DuckDB's C API: the
//! store is opened through it ([`Database`]), and a raw connection of its
//! own registers each stream (`duckdb_arrow_scan`). That call creates a
//! view in the connection's default catalog; the raw connection uses an
//! in-memory catalog attached for the purpose ([`SCRATCH`]), so a view is
//! never written to the store file, and every connection of the store (and
//! its transaction) can read it.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::ffi_stream::FFI_ArrowArrayStream;
use arrow::record_batch::RecordBatchReader;
use duckdb::ffi;

/// The in-memory catalog the views live in (attached to the store's
/// database instance, never persisted).
pub const SCRATCH: &str = "kontakt_scratch";

/// A DuckDB database opened through the C API (so raw connections can be
/// made to it beside the duckdb crate's); closed when the last owner goes.
pub struct Database {
    raw: ffi::duckdb_database,
}

// The handle is a pointer to DuckDB's thread-safe database object.
unsafe impl Send for Database {}
unsafe impl Sync for Database {}

impl Database {
    /// Opens (or creates) the database file at `path`; `read_only` opens
    /// an existing file without ever writing it (DuckDB's `READ_ONLY`
    /// access mode: several such processes may read at once).
    pub fn open(path: &Path, read_only: bool) -> Result<Arc<Database>, duckdb::Error> {
        use std::os::unix::ffi::OsStrExt;
        let c_path =
            CString::new(path.as_os_str().as_bytes()).map_err(|_| duckdb::Error::InvalidPath(path.to_path_buf()))?;
        let mut raw: ffi::duckdb_database = std::ptr::null_mut();
        let mut message: *mut std::os::raw::c_char = std::ptr::null_mut();
        let mut config: ffi::duckdb_config = std::ptr::null_mut();
        if read_only {
            // SAFETY: out-pointer; the config is destroyed below in every case.
            let made = unsafe { ffi::duckdb_create_config(&mut config) } == ffi::DuckDBSuccess
                && unsafe { ffi::duckdb_set_config(config, c"access_mode".as_ptr(), c"READ_ONLY".as_ptr()) }
                    == ffi::DuckDBSuccess;
            if !made {
                // SAFETY: created above (or null, which DuckDB ignores).
                unsafe { ffi::duckdb_destroy_config(&mut config) };
                return Err(duckdb::Error::DuckDBFailure(
                    ffi::Error::new(ffi::DuckDBError),
                    Some("could not configure a read-only open".into()),
                ));
            }
        }
        // SAFETY: valid C string and out-pointers; a null config means defaults.
        let state = unsafe { ffi::duckdb_open_ext(c_path.as_ptr(), &mut raw, config, &mut message) };
        if !config.is_null() {
            // SAFETY: created above; DuckDB copied what it needs at open.
            unsafe { ffi::duckdb_destroy_config(&mut config) };
        }
        if state != ffi::DuckDBSuccess {
            let text = (!message.is_null()).then(|| {
                // SAFETY: DuckDB sets `message` to a C string we must free.
                let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned();
                unsafe { ffi::duckdb_free(message.cast()) };
                text
            });
            return Err(duckdb::Error::DuckDBFailure(ffi::Error::new(state), text));
        }
        Ok(Arc::new(Database { raw }))
    }

    /// A duckdb crate connection to this database.
    pub fn connect(&self) -> Result<duckdb::Connection, duckdb::Error> {
        // SAFETY: `raw` is an open database; the connection does not close
        // it (it is closed by `Drop` below, after its users are gone).
        unsafe { duckdb::Connection::open_from_raw(self.raw) }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: opened by `duckdb_open_ext`; connections still open keep
        // DuckDB's instance alive on their own.
        unsafe { ffi::duckdb_close(&mut self.raw) };
    }
}

/// Streams registered as views of the scratch catalog. Dropping it drops
/// the views, then releases the streams.
pub struct ArrowViews {
    /// Kept open while the connection is.
    _db: Arc<Database>,
    conn: ffi::duckdb_connection,
    /// Each view reads the stream at this address until the view is
    /// dropped (DuckDB keeps the pointer), so they are boxed and kept.
    views: Vec<(String, Box<FFI_ArrowArrayStream>)>,
}

// The raw connection is used only by the thread that owns this value.
unsafe impl Send for ArrowViews {}

/// Views are named apart within the process.
static NEXT_VIEW: AtomicU64 = AtomicU64::new(0);

impl ArrowViews {
    /// A raw connection to `db` whose default catalog is the scratch one.
    pub fn new(db: &Arc<Database>) -> Result<ArrowViews, String> {
        let mut conn: ffi::duckdb_connection = std::ptr::null_mut();
        // SAFETY: `db` is open; `conn` is an out-pointer.
        if unsafe { ffi::duckdb_connect(db.raw, &mut conn) } != ffi::DuckDBSuccess {
            return Err("could not open a connection to the store".into());
        }
        let views = ArrowViews {
            _db: Arc::clone(db),
            conn,
            views: Vec::new(),
        };
        views.execute(&format!("ATTACH IF NOT EXISTS ':memory:' AS {SCRATCH}; USE {SCRATCH}"))?;
        Ok(views)
    }

    /// Registers `reader` as a view; returns its qualified name, for any
    /// connection of the store. DuckDB pulls the batches when a query
    /// scans the view (under its own lock, on one of its threads); a scan
    /// ends where the reader returns `None`, and the next scan goes on
    /// from there.
    pub fn register(&mut self, prefix: &str, reader: Box<dyn RecordBatchReader + Send>) -> Result<String, String> {
        let name = format!("{prefix}_{}", NEXT_VIEW.fetch_add(1, Ordering::Relaxed));
        let c_name = CString::new(name.as_str()).map_err(|e| e.to_string())?;
        let mut stream = Box::new(FFI_ArrowArrayStream::new(reader));
        let raw: *mut FFI_ArrowArrayStream = &mut *stream;
        // SAFETY: the stream is a valid C stream and outlives the view
        // (`Drop` drops the view first).
        let state = unsafe { ffi::duckdb_arrow_scan(self.conn, c_name.as_ptr(), raw as ffi::duckdb_arrow_stream) };
        if state != ffi::DuckDBSuccess {
            return Err(format!("could not register the Arrow stream {name}"));
        }
        self.views.push((name.clone(), stream));
        Ok(format!("{SCRATCH}.main.{name}"))
    }

    fn execute(&self, sql: &str) -> Result<(), String> {
        let c_sql = CString::new(sql).map_err(|e| e.to_string())?;
        // SAFETY: `duckdb_result` is a plain C struct DuckDB fills in; it is
        // destroyed below whatever the outcome.
        let mut result: ffi::duckdb_result = unsafe { std::mem::zeroed() };
        let state = unsafe { ffi::duckdb_query(self.conn, c_sql.as_ptr(), &mut result) };
        let outcome = if state == ffi::DuckDBSuccess {
            Ok(())
        } else {
            // SAFETY: the error message belongs to `result`, read before it is destroyed.
            let message = unsafe { ffi::duckdb_result_error(&mut result) };
            Err(if message.is_null() {
                format!("{sql}: failed")
            } else {
                unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
            })
        };
        unsafe { ffi::duckdb_destroy_result(&mut result) };
        outcome
    }
}

impl Drop for ArrowViews {
    fn drop(&mut self) {
        for (name, _) in &self.views {
            let _ = self.execute(&format!("DROP VIEW IF EXISTS {SCRATCH}.main.{name}"));
        }
        // SAFETY: opened by `duckdb_connect` in `new`; the database outlives
        // it (`self._db`).
        unsafe { ffi::duckdb_disconnect(&mut self.conn) };
        // The streams are released after their views are gone.
        self.views.clear();
    }
}

impl std::fmt::Debug for ArrowViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrowViews")
            .field("views", &self.views.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Int64Array, RecordBatchIterator};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    #[test]
    fn another_connection_reads_a_stream_in_its_transaction_and_the_store_keeps_no_view() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.duckdb");
        let db = Database::open(&path, false).expect("open");
        let conn = db.connect().expect("connect");
        conn.execute_batch("CREATE TABLE t (n BIGINT)").expect("table");
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batches: Vec<RecordBatch> = [vec![1, 2], vec![3]]
            .into_iter()
            .map(|n| {
                let column: ArrayRef = Arc::new(Int64Array::from(n));
                RecordBatch::try_new(schema.clone(), vec![column]).expect("batch")
            })
            .collect();
        let mut views = ArrowViews::new(&db).expect("views");
        let view = views
            .register(
                "test_rows",
                Box::new(RecordBatchIterator::new(batches.into_iter().map(Ok), schema)),
            )
            .expect("register");
        assert!(view.starts_with(&format!("{SCRATCH}.main.test_rows_")));
        conn.execute_batch(&format!("BEGIN; INSERT INTO t SELECT * FROM {view}; COMMIT"))
            .expect("insert");
        let sum: i64 = conn.query_row("SELECT sum(n) FROM t", [], |r| r.get(0)).expect("sum");
        assert_eq!(sum, 6);
        drop(views);
        let views_left = |conn: &duckdb::Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM duckdb_views() WHERE NOT internal", [], |r| {
                r.get(0)
            })
            .expect("views")
        };
        assert_eq!(views_left(&conn), 0);
        drop(conn);
        drop(db);
        let db = Database::open(&path, false).expect("reopen");
        assert_eq!(views_left(&db.connect().expect("connect")), 0);
    }
}
