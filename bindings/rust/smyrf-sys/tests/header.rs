//! The declarations match include/smyrf/smyrf.h: every enumerator and version macro of the
//! header has a constant of the same value here, every `SMYRF_API` function a declaration
//! (which links), and nothing here is missing from the header.

use std::collections::BTreeMap;
use std::path::Path;

use smyrf_sys::*;

/// Every constant this crate declares, by its C name.
const CONSTANTS: &[(&str, u32)] = &[
    ("SMYRF_VERSION_MAJOR", SMYRF_VERSION_MAJOR),
    ("SMYRF_VERSION_MINOR", SMYRF_VERSION_MINOR),
    ("SMYRF_VERSION_PATCH", SMYRF_VERSION_PATCH),
    ("SMYRF_OK", SMYRF_OK),
    ("SMYRF_ERR_INVALID_ARGUMENT", SMYRF_ERR_INVALID_ARGUMENT),
    ("SMYRF_ERR_UNSUPPORTED", SMYRF_ERR_UNSUPPORTED),
    ("SMYRF_ERR_OUT_OF_MEMORY", SMYRF_ERR_OUT_OF_MEMORY),
    ("SMYRF_ERR_BACKEND_UNAVAILABLE", SMYRF_ERR_BACKEND_UNAVAILABLE),
    ("SMYRF_ERR_DEVICE", SMYRF_ERR_DEVICE),
    ("SMYRF_ERR_INTERNAL", SMYRF_ERR_INTERNAL),
    ("SMYRF_PARAM_BATCH", SMYRF_PARAM_BATCH),
    ("SMYRF_PARAM_HEADS", SMYRF_PARAM_HEADS),
    ("SMYRF_PARAM_KV_HEADS", SMYRF_PARAM_KV_HEADS),
    ("SMYRF_PARAM_Q_LEN", SMYRF_PARAM_Q_LEN),
    ("SMYRF_PARAM_K_LEN", SMYRF_PARAM_K_LEN),
    ("SMYRF_PARAM_QK_DIM", SMYRF_PARAM_QK_DIM),
    ("SMYRF_PARAM_V_DIM", SMYRF_PARAM_V_DIM),
    ("SMYRF_PARAM_MODE", SMYRF_PARAM_MODE),
    ("SMYRF_PARAM_N_HASHES", SMYRF_PARAM_N_HASHES),
    ("SMYRF_PARAM_Q_CLUSTER_SIZE", SMYRF_PARAM_Q_CLUSTER_SIZE),
    ("SMYRF_PARAM_K_CLUSTER_SIZE", SMYRF_PARAM_K_CLUSTER_SIZE),
    ("SMYRF_PARAM_CAUSAL", SMYRF_PARAM_CAUSAL),
    ("SMYRF_PARAM_SEED", SMYRF_PARAM_SEED),
    ("SMYRF_PARAM_DTYPE", SMYRF_PARAM_DTYPE),
    ("SMYRF_PARAM_BACKEND", SMYRF_PARAM_BACKEND),
    ("SMYRF_PARAM_DEVICE", SMYRF_PARAM_DEVICE),
    ("SMYRF_PARAM_THREADS", SMYRF_PARAM_THREADS),
    ("SMYRF_PARAM_LAYOUT", SMYRF_PARAM_LAYOUT),
    ("SMYRF_PARAM_BUDGET", SMYRF_PARAM_BUDGET),
    ("SMYRF_PARAM_WINDOW", SMYRF_PARAM_WINDOW),
    ("SMYRF_PARAM_SUMMARIES", SMYRF_PARAM_SUMMARIES),
    ("SMYRF_PARAM_SINKS", SMYRF_PARAM_SINKS),
    ("SMYRF_PARAM_KMEANS_ITERS", SMYRF_PARAM_KMEANS_ITERS),
    ("SMYRF_PARAM_Q_STRIDE_BATCH", SMYRF_PARAM_Q_STRIDE_BATCH),
    ("SMYRF_PARAM_Q_STRIDE_HEAD", SMYRF_PARAM_Q_STRIDE_HEAD),
    ("SMYRF_PARAM_Q_STRIDE_TOKEN", SMYRF_PARAM_Q_STRIDE_TOKEN),
    ("SMYRF_PARAM_K_STRIDE_BATCH", SMYRF_PARAM_K_STRIDE_BATCH),
    ("SMYRF_PARAM_K_STRIDE_HEAD", SMYRF_PARAM_K_STRIDE_HEAD),
    ("SMYRF_PARAM_K_STRIDE_TOKEN", SMYRF_PARAM_K_STRIDE_TOKEN),
    ("SMYRF_PARAM_V_STRIDE_BATCH", SMYRF_PARAM_V_STRIDE_BATCH),
    ("SMYRF_PARAM_V_STRIDE_HEAD", SMYRF_PARAM_V_STRIDE_HEAD),
    ("SMYRF_PARAM_V_STRIDE_TOKEN", SMYRF_PARAM_V_STRIDE_TOKEN),
    ("SMYRF_PARAM_OUT_STRIDE_BATCH", SMYRF_PARAM_OUT_STRIDE_BATCH),
    ("SMYRF_PARAM_OUT_STRIDE_HEAD", SMYRF_PARAM_OUT_STRIDE_HEAD),
    ("SMYRF_PARAM_OUT_STRIDE_TOKEN", SMYRF_PARAM_OUT_STRIDE_TOKEN),
    ("SMYRF_PARAM_EXPAND", SMYRF_PARAM_EXPAND),
    ("SMYRF_MODE_SMYRF", SMYRF_MODE_SMYRF),
    ("SMYRF_MODE_DENSE", SMYRF_MODE_DENSE),
    ("SMYRF_MODE_HYBRID", SMYRF_MODE_HYBRID),
    ("SMYRF_DTYPE_F32", SMYRF_DTYPE_F32),
    ("SMYRF_DTYPE_F16", SMYRF_DTYPE_F16),
    ("SMYRF_DTYPE_BF16", SMYRF_DTYPE_BF16),
    ("SMYRF_BACKEND_AUTO", SMYRF_BACKEND_AUTO),
    ("SMYRF_BACKEND_CPU", SMYRF_BACKEND_CPU),
    ("SMYRF_BACKEND_CUDA", SMYRF_BACKEND_CUDA),
    ("SMYRF_LAYOUT_BHND", SMYRF_LAYOUT_BHND),
    ("SMYRF_LAYOUT_BNHD", SMYRF_LAYOUT_BNHD),
];

/// Every function this crate declares, by its C name; taking the addresses makes the
/// test binary link each one.
fn functions() -> Vec<(&'static str, *const ())> {
    vec![
        ("smyrf_version_number", smyrf_version_number as *const ()),
        ("smyrf_status_string", smyrf_status_string as *const ()),
        ("smyrf_last_error_message", smyrf_last_error_message as *const ()),
        ("smyrf_param_bounds", smyrf_param_bounds as *const ()),
        ("smyrf_param_name", smyrf_param_name as *const ()),
        ("smyrf_config_create", smyrf_config_create as *const ()),
        ("smyrf_config_destroy", smyrf_config_destroy as *const ()),
        ("smyrf_config_set", smyrf_config_set as *const ()),
        ("smyrf_config_get", smyrf_config_get as *const ()),
        ("smyrf_config_set_scale", smyrf_config_set_scale as *const ()),
        ("smyrf_config_get_scale", smyrf_config_get_scale as *const ()),
        ("smyrf_plan_create", smyrf_plan_create as *const ()),
        ("smyrf_plan_destroy", smyrf_plan_destroy as *const ()),
        ("smyrf_plan_get", smyrf_plan_get as *const ()),
        ("smyrf_plan_get_scale", smyrf_plan_get_scale as *const ()),
        ("smyrf_plan_workspace_size", smyrf_plan_workspace_size as *const ()),
        ("smyrf_plan_backend_name", smyrf_plan_backend_name as *const ()),
        ("smyrf_execute", smyrf_execute as *const ()),
        ("smyrf_plan_backward_workspace_size", smyrf_plan_backward_workspace_size as *const ()),
        ("smyrf_execute_backward", smyrf_execute_backward as *const ()),
    ]
}

fn header_text() -> String {
    let path = Path::new(env!("SMYRF_SYS_INCLUDE_DIR")).join("smyrf").join("smyrf.h");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `NAME = value` enumerators and `#define NAME value` macros with a literal value.
fn header_constants(text: &str) -> BTreeMap<String, u32> {
    let mut found = BTreeMap::new();
    for line in text.lines() {
        let code = line.split("/*").next().unwrap().trim();
        let (name, value) = if let Some(def) = code.strip_prefix("#define ") {
            match def.split_once(' ') {
                Some((name, value)) => (name.trim(), value.trim()),
                None => continue,
            }
        } else if let Some((name, value)) = code.split_once('=') {
            (name.trim(), value.trim().trim_end_matches(','))
        } else {
            continue;
        };
        if !name.starts_with("SMYRF_") {
            continue;
        }
        if let Ok(value) = value.parse::<u32>() {
            found.insert(name.to_owned(), value);
        }
    }
    found
}

/// The names of the `SMYRF_API` function declarations.
fn header_functions(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("SMYRF_API "))
        .map(|decl| {
            let before_paren = decl.split('(').next().unwrap();
            let name = before_paren.rsplit([' ', '*']).next().unwrap();
            name.to_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn constants_match_the_header() {
    let header = header_constants(&header_text());
    assert!(header.len() > 50, "parsed only {} constants from the header", header.len());
    let ours: BTreeMap<String, u32> =
        CONSTANTS.iter().map(|&(name, value)| (name.to_owned(), value)).collect();
    for (name, value) in &header {
        assert_eq!(ours.get(name), Some(value), "{name} = {value} in the header");
    }
    for name in ours.keys() {
        assert!(header.contains_key(name), "{name} is not in the header");
    }
    assert_eq!(SMYRF_VERSION_NUMBER, smyrf_version_number(), "header and library versions");
}

#[test]
fn every_function_is_declared() {
    let header = header_functions(&header_text());
    let mut ours: Vec<String> = functions()
        .into_iter()
        .map(|(name, address)| {
            assert!(!address.is_null(), "{name}");
            name.to_owned()
        })
        .collect();
    ours.sort();
    assert_eq!(header, ours);
}
