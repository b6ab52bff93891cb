//! Where the workspace's binaries are. `env!("CARGO_BIN_EXE_…")` only names binaries of the package under test, so
//! `holdfast-controller`, `holdfast-dataplane` and `holdfast-hash-upstream` are looked up in the target directory
//! this test was built into (then `target/debug`, `target/release` of the workspace), and built with
//! `cargo build -p PACKAGE` when none is there. An existing binary is used as it is: rebuild it when it is stale.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the parent of this crate.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e/ has a parent").to_path_buf()
}

/// The profile directory this test binary was built into (`<target>/<profile>/deps/<test>`), if it looks like one.
fn own_profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    deps.parent().map(Path::to_path_buf)
}

fn own_target_dir() -> Option<PathBuf> {
    own_profile_dir()?.parent().map(Path::to_path_buf)
}

/// Profile directories to search, most likely first: the binaries built along with this test come first.
fn candidates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = own_profile_dir().into_iter().collect();
    let targets = [own_target_dir(), std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)];
    for target in targets.into_iter().flatten().chain([workspace_root().join("target")]) {
        dirs.extend([target.join("debug"), target.join("release")]);
    }
    dirs
}

/// The path of binary `bin` of workspace package `package`, built first when it is nowhere to be found.
pub fn locate(bin: &str, package: &str) -> anyhow::Result<PathBuf> {
    let find = || candidates().into_iter().map(|dir| dir.join(bin)).find(|path| path.is_file());
    if let Some(path) = find() {
        return Ok(path);
    }
    let target = own_target_dir().unwrap_or_else(|| workspace_root().join("target"));
    eprintln!("{bin} not found; building it: cargo build -p {package} (target dir {})", target.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", package])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("cannot run cargo build -p {package}"))?;
    anyhow::ensure!(status.success(), "cargo build -p {package} failed: {status}");
    find().with_context(|| format!("cargo build -p {package} succeeded but {bin} is still not in {target:?}"))
}
