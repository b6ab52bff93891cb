//! Writes the UploadPolicy CRD YAML: to the path given as the only argument, or to stdout.
//! `cargo run -p holdfast-crds --bin crdgen -- crds/uploadpolicy.yaml` regenerates the committed file.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let yaml = holdfast_crds::crd_yaml()?;
    match std::env::args().nth(1) {
        Some(path) => std::fs::write(&path, yaml)?,
        None => print!("{yaml}"),
    }
    Ok(())
}
