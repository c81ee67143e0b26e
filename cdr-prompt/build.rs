//! Sets `cfg(cdr_has_templates)` when `.cache/assets/templates/expected.json` (from `tools/fetch_assets.sh templates`) is
//! there, so the tests that need it are reported as ignored, with the reason, rather than passed.
//! Under `CDR_REQUIRE_ASSETS` (CI) the cfg is always set: those tests run and fail without it.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cdr_has_templates)");
    println!("cargo::rerun-if-env-changed=CDR_REQUIRE_ASSETS");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let assets = manifest.join("../.cache/assets");
    // Watching a missing file would rerun this script, and so rebuild the crate and all that
    // depends on it, on every build; the (ignored) directory is made so that it can be watched,
    // and a fetch into it reruns the script.
    if std::fs::create_dir_all(&assets).is_ok() {
        println!("cargo::rerun-if-changed={}", assets.display());
    } else {
        println!("cargo::rerun-if-changed=build.rs");
    }
    let required = std::env::var_os("CDR_REQUIRE_ASSETS").is_some_and(|v| !v.is_empty());
    if required || assets.join("templates/expected.json").is_file() {
        println!("cargo::rustc-cfg=cdr_has_templates");
    }
}
