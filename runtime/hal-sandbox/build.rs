//! Builds the isolate guests (`isolates/` and the test fixtures' guests) for `wasm32-wasip2` with a nested cargo,
//! into this package's `OUT_DIR`, so the built-in isolates can be embedded in the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// Guests copied to `OUT_DIR` as `<name>.wasm`.
const GUESTS: &[&str] = &["files", "http", "hostile"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.join("../..");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    for watched in ["isolates", "fixtures/isolates", "schemas/wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target_dir = out.join("guests");
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--locked", "--target", TARGET, "--manifest-path"])
        .arg(root.join("isolates/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for variable in
        ["CARGO_TARGET_DIR", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_BUILD_RUSTFLAGS"]
    {
        command.env_remove(variable);
    }
    let status = command.status().expect("run cargo to build the isolate guests");
    if !status.success() {
        panic!(
            "building the isolates for {TARGET} failed (see above). If the target is missing, run \
             `rustup target add {TARGET}` (or `rustup toolchain install`, which reads rust-toolchain.toml)."
        );
    }
    for guest in GUESTS {
        let built = target_dir.join(TARGET).join("release").join(format!("{guest}.wasm"));
        copy(&built, &out.join(format!("{guest}.wasm")));
    }
    println!("cargo:rustc-env=HAL_SANDBOX_GUESTS={}", out.display());
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()));
}
