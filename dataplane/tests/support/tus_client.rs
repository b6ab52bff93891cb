//! Real tus clients as child processes: tus-js-client (Node) and tuspy (Python), through the drivers in
//! `tests/tus-clients/`, installed by `scripts/tus-clients-setup` (once per test binary). Each run prints one JSON
//! line, returned here.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

struct Clients {
    node: PathBuf,
    python: PathBuf,
    dir: PathBuf,
}

fn clients() -> &'static Clients {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let out = std::process::Command::new("bash")
            .arg(repo.join("scripts/tus-clients-setup"))
            .output()
            .expect("run scripts/tus-clients-setup");
        assert!(out.status.success(), "tus-clients-setup failed: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let find = |key: &str| {
            let line = stdout.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("{key} in {stdout}"));
            PathBuf::from(line.trim().trim_matches('"').trim_matches('\''))
        };
        Clients { node: find("TUS_NODE="), python: find("TUS_PYTHON="), dir: repo.join("tests/tus-clients") }
    })
}

/// Which client.
#[derive(Clone, Copy, Debug)]
pub enum Client {
    TusJs,
    TusPy,
}

/// Runs one upload with `client` and its options (see tests/tus-clients/README.md); returns its JSON line. Panics
/// when the driver prints nothing parseable within `limit`.
pub async fn run(client: Client, args: &[String], limit: Duration) -> Value {
    let c = clients();
    let mut command = match client {
        Client::TusJs => {
            let mut command = tokio::process::Command::new(&c.node);
            command.arg(c.dir.join("tusjs.mjs"));
            command
        }
        Client::TusPy => {
            let mut command = tokio::process::Command::new(&c.python);
            command.arg(c.dir.join("tuspy_client.py"));
            command
        }
    };
    command.args(args).kill_on_drop(true).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = command.spawn().expect("start a tus client");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{client:?} {args:?} did not end within {limit:?}"))
        .expect("wait for the tus client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_else(|| {
        panic!("{client:?} printed no result; stdout: {stdout}; stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{client:?} printed {line}: {e}"))
}

/// One upload of `file` to the creation URL `endpoint` with `client` and more options, within two minutes.
pub async fn upload(client: Client, endpoint: &str, file: &str, more: &[&str]) -> Value {
    let mut all = vec!["--endpoint", endpoint, "--file", file];
    all.extend_from_slice(more);
    run(client, &args(&all), Duration::from_secs(120)).await
}

/// Arguments from string slices.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A file of `len` pseudo-random bytes in `dir`, and its SHA-256 in hex.
pub fn random_file(dir: &Path, name: &str, len: u64, seed: u64) -> (PathBuf, String) {
    use sha2::Digest;
    let mut payload = super::client::Payload::new(seed);
    let mut bytes = vec![0u8; len as usize];
    payload.fill(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, super::client::hex(&sha2::Sha256::digest(&bytes)))
}

/// The files of the resumable uploads in a spool directory, sorted.
pub fn upload_files(spool: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spool.join("tus"))
        .map(|dir| dir.filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string())).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The upload id in an upload URL.
pub fn id_of(url: &str) -> String {
    url.split("holdfast-upload=").nth(1).expect("an upload URL").split('&').next().unwrap().to_string()
}
