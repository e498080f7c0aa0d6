//! Link against the prebuilt libduckdb.so fetched by `scripts/setup`, and record
//! its directory as the binary's rpath so `kontakt` runs without LD_LIBRARY_PATH.
//! With `--features bundled` DuckDB is compiled from source and none of this applies.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        return;
    }
    let Some(dir) = env::var_os("DUCKDB_LIB_DIR") else {
        panic!(
            "DUCKDB_LIB_DIR is not set: run scripts/setup (it fetches libduckdb.so), or build with --features bundled"
        );
    };
    let dir = Path::new(&dir);
    if !dir.join("libduckdb.so").exists() {
        panic!(
            "{} has no libduckdb.so: run scripts/setup first, or build with --features bundled",
            dir.display()
        );
    }
    println!("cargo:rerun-if-changed={}", dir.join("libduckdb.so").display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
