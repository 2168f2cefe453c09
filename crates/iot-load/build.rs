//! Links DuckDB's prebuilt library for `load`, its tests and benchmarks, and lets
//! them find it again at run time. The end-to-end test crates use this file too.
//!
//! The library is the one `scripts/libduckdb.sh install` fetches into a cache and
//! links from the workspace's `.local/duckdb` (or wherever `DUCKDB_LIB_DIR` says).
//! Found here, from the workspace, rather than through cargo configuration, so a
//! build works from any directory. Its real folder becomes the binaries' rpath:
//! they run without `LD_LIBRARY_PATH`, and outlive the clone. With the `bundled`
//! feature DuckDB is compiled in, and there is nothing to find.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        return;
    }
    let folder = match std::env::var_os("DUCKDB_LIB_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let manifest =
                PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
            let workspace = manifest
                .ancestors()
                .find(|dir| dir.join("Cargo.lock").exists())
                .unwrap_or(&manifest)
                .to_path_buf();
            workspace.join(".local/duckdb")
        }
    };
    let library = folder.join("libduckdb.so");
    println!("cargo:rerun-if-changed={}", library.display());
    match library.canonicalize() {
        Ok(library) => {
            let folder = library.parent().unwrap_or(Path::new("/"));
            println!("cargo:rustc-link-search=native={}", folder.display());
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", folder.display());
        }
        Err(_) => {
            eprintln!(
                "DuckDB's prebuilt library is not at {}.\n\
                 Fetch it once with `scripts/libduckdb.sh install` (the scripts in scripts/ \
                 do this themselves), point DUCKDB_LIB_DIR at a folder holding libduckdb.so, \
                 or build DuckDB from source with `--features iot-load/bundled` (30+ minutes).",
                library.display()
            );
            std::process::exit(1);
        }
    }
}
