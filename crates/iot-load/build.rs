//! Lets `load`, its tests and benchmarks find DuckDB's prebuilt library at run time.
//!
//! The duckdb crate links the library in `DUCKDB_LIB_DIR` (set by
//! `.cargo/config.toml`, filled by `scripts/libduckdb.sh install`) but leaves finding
//! it again at run time to the loader's search path. Recording the folder as the
//! rpath makes the binaries run as they are, without `LD_LIBRARY_PATH`. The
//! end-to-end tests crate uses this file too. With the `bundled` feature DuckDB is
//! compiled in and there is nothing to find.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        return;
    }
    // Unset: the library is installed where the system looks anyway.
    let Some(dir) = std::env::var_os("DUCKDB_LIB_DIR") else {
        return;
    };
    let library = Path::new(&dir).join("libduckdb.so");
    println!("cargo:rerun-if-changed={}", library.display());
    // The real folder, not the clone's link to it: a binary outlives its clone.
    match library.canonicalize() {
        Ok(library) => {
            let folder = library.parent().expect("a file is in a folder");
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", folder.display());
        }
        Err(_) => {
            eprintln!(
                "DuckDB's prebuilt library is not at {}.\n\
                 Fetch it once with `scripts/libduckdb.sh install` (the scripts in \
                 scripts/ do this themselves), or build DuckDB from source with \
                 `--features iot-load/bundled` (30+ minutes).",
                library.display()
            );
            std::process::exit(1);
        }
    }
}
