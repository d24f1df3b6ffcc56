//! Finds libsmyrf for the linker.
//!
//! 1. `SMYRF_LIB_DIR` (the folder holding libsmyrf.so) and `SMYRF_INCLUDE_DIR` (the folder
//!    holding smyrf/smyrf.h), when `SMYRF_LIB_DIR` is set: both are then required.
//! 2. Otherwise the `pkg-config` command (or the one named by `PKG_CONFIG`) asked for the
//!    `smyrf` package; set `PKG_CONFIG_PATH` for a prefix it does not search.
//!
//! The include folder is passed on to dependents as `DEP_SMYRF_INCLUDE` and to this
//! crate's tests as `SMYRF_SYS_INCLUDE_DIR` (they check the constants against the header).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Where the library and its header are.
struct Found {
    lib_dirs: Vec<PathBuf>,
    include_dir: PathBuf,
}

fn main() {
    for var in ["SMYRF_LIB_DIR", "SMYRF_INCLUDE_DIR", "PKG_CONFIG", "PKG_CONFIG_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let found = match env::var_os("SMYRF_LIB_DIR") {
        Some(lib_dir) => from_env(PathBuf::from(lib_dir)),
        None => from_pkg_config(),
    };
    let found = found.unwrap_or_else(|why| panic!("smyrf-sys: cannot find libsmyrf: {why}"));
    let header = found.include_dir.join("smyrf").join("smyrf.h");
    if !header.is_file() {
        panic!("smyrf-sys: {} does not exist", header.display());
    }
    println!("cargo:rerun-if-changed={}", header.display());
    for dir in &found.lib_dirs {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    println!("cargo:rustc-link-lib=dylib=smyrf");
    println!("cargo:include={}", found.include_dir.display());
    println!("cargo:rustc-env=SMYRF_SYS_INCLUDE_DIR={}", found.include_dir.display());
}

/// The explicit folders of `SMYRF_LIB_DIR` and `SMYRF_INCLUDE_DIR`.
fn from_env(lib_dir: PathBuf) -> Result<Found, String> {
    let include_dir = env::var_os("SMYRF_INCLUDE_DIR")
        .ok_or("SMYRF_LIB_DIR is set, so SMYRF_INCLUDE_DIR must be set too")?;
    Ok(Found { lib_dirs: vec![lib_dir], include_dir: PathBuf::from(include_dir) })
}

/// The folders `pkg-config smyrf` reports.
fn from_pkg_config() -> Result<Found, String> {
    let libs = pkg_config(&["--libs-only-L", "smyrf"])?;
    let lib_dirs = libs
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-L"))
        .map(PathBuf::from)
        .collect();
    let include_dir = pkg_config(&["--variable=includedir", "smyrf"])?;
    Ok(Found { lib_dirs, include_dir: PathBuf::from(include_dir.trim()) })
}

/// Runs pkg-config with `args` and returns its standard output.
fn pkg_config(args: &[&str]) -> Result<String, String> {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = Command::new(&program).args(args).output().map_err(|e| {
        format!("could not run `{program}` ({e}); set SMYRF_LIB_DIR and SMYRF_INCLUDE_DIR")
    })?;
    if !output.status.success() {
        return Err(format!(
            "`{program} {}` failed: {}; set PKG_CONFIG_PATH, or SMYRF_LIB_DIR and SMYRF_INCLUDE_DIR",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout)
        .map_err(|e| format!("`{program}` printed non-UTF-8 output: {e}"))
}
