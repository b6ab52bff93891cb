//! The cluster side: a client from the kubeconfig file (out-of-cluster, like kubectl), the UploadPolicy CRD applied
//! when missing, and [`Scratch`], which owns the test namespace and the cluster-scoped objects the test creates.
//!
//! Deleting them is a step of the test, [`Scratch::delete`], awaited in the test's own runtime, whose failure fails
//! the test. `Drop` cannot do it: it cannot await, and a runtime made for it on the spot (which is what it did) ran
//! into a timer created outside any runtime ("there is no reactor running"), so the objects stayed behind while the
//! test reported ok. A `Scratch` dropped without its delete (a test that panicked first) only says what to delete by
//! hand.

use crate::binaries::workspace_root;
use crate::poll::MAX_WAIT;
use anyhow::Context;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{conditions, wait::await_condition};
use kube::{Api, Client, Config};
use std::path::Path;

/// Field manager of everything the suite applies.
pub const FIELD_MANAGER: &str = "holdfast-e2e";

/// A name unique to this run (time and process id), usable as a DNS label.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{prefix}-{:08x}", (nanos as u32) ^ std::process::id().rotate_left(16))
}

/// A client for the cluster that the kubeconfig file at `path` names (its current context).
pub async fn client(path: &Path) -> anyhow::Result<Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("kubeconfig {} has no usable current context", path.display()))?;
    Client::try_from(config).context("cannot build a Kubernetes client")
}

/// Server-side applies `crds/uploadpolicy.yaml` when the cluster has no UploadPolicy CRD, and waits until it is
/// Established. An existing CRD is left as it is (and is never deleted: other UploadPolicies may depend on it).
pub async fn ensure_crd(client: &Client) -> anyhow::Result<()> {
    let path = workspace_root().join("crds/uploadpolicy.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let name = crd.metadata.name.clone().context("the CRD has no name")?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    if api.get_opt(&name).await.with_context(|| format!("reading CRD {name}"))?.is_some() {
        return Ok(());
    }
    eprintln!("applying {} (server-side)", path.display());
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&crd)).await.context("applying the CRD")?;
    let established = await_condition(api, &name, conditions::is_crd_established());
    tokio::time::timeout(MAX_WAIT, established)
        .await
        .with_context(|| format!("CRD {name} not Established within {MAX_WAIT:?}"))??;
    Ok(())
}

/// What the test created in the cluster, by name.
#[derive(Debug, Clone)]
struct Created {
    namespace: String,
    /// Set once the IngressClass exists, so that only what was created is deleted.
    ingress_class: Option<String>,
}

/// The test's namespace and IngressClass, deleted by [`Scratch::delete`]. Both names are unique to the run.
pub struct Scratch {
    created: Created,
    /// Set once [`Scratch::delete`] ran, whatever its outcome (which it returned).
    deleted: bool,
}

impl Scratch {
    /// Creates a namespace named `name`.
    pub async fn create(client: &Client, name: &str) -> anyhow::Result<Self> {
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { "app.kubernetes.io/created-by": FIELD_MANAGER } },
        }))?;
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(&PostParams::default(), &namespace).await.with_context(|| format!("creating namespace {name}"))?;
        let created = Created { namespace: name.to_string(), ingress_class: None };
        Ok(Scratch { created, deleted: false })
    }

    pub fn namespace(&self) -> &str {
        &self.created.namespace
    }

    /// Creates the IngressClass (cluster-scoped) and records it for deletion.
    pub async fn create_ingress_class(&mut self, client: &Client, class: &IngressClass) -> anyhow::Result<()> {
        let api: Api<IngressClass> = Api::all(client.clone());
        let created = api.create(&PostParams::default(), class).await.context("creating the IngressClass")?;
        self.created.ingress_class = created.metadata.name;
        Ok(())
    }

    /// Deletes the IngressClass and the namespace (everything in it goes with it, in the background), within
    /// [`MAX_WAIT`]. An error names every object left behind. Objects already gone count as deleted.
    pub async fn delete(mut self, client: &Client) -> anyhow::Result<()> {
        self.deleted = true;
        let deletes = tokio::time::timeout(MAX_WAIT, delete(client, &self.created));
        let outcomes = deletes.await.unwrap_or_else(|_| vec![Err(format!("the deletes took over {MAX_WAIT:?}"))]);
        let (namespace, class) = (&self.created.namespace, &self.created.ingress_class);
        let result = gather(outcomes).with_context(|| {
            format!("cleanup failed: delete namespace {namespace} and IngressClass {class:?} by hand")
        });
        if result.is_ok() {
            eprintln!("cleanup: deleted namespace {namespace} and IngressClass {class:?}");
        }
        result
    }
}

/// Sends the deletes: the IngressClass first (cluster-scoped, nothing else removes it), then the namespace.
async fn delete(client: &Client, created: &Created) -> Vec<Result<(), String>> {
    let mut outcomes = Vec::new();
    if let Some(class) = &created.ingress_class {
        let api: Api<IngressClass> = Api::all(client.clone());
        let result = api.delete(class, &DeleteParams::default()).await.map(drop);
        outcomes.push(deleted(&format!("IngressClass {class}"), result));
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let result = api.delete(&created.namespace, &DeleteParams::background()).await.map(drop);
    outcomes.push(deleted(&format!("namespace {}", created.namespace), result));
    outcomes
}

/// One delete's outcome: an object that is already gone (404) was deleted, by whoever did it.
fn deleted(what: &str, result: Result<(), kube::Error>) -> Result<(), String> {
    match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(error) => Err(format!("{what}: {error}")),
    }
}

/// Every delete's failure in one error.
fn gather(outcomes: Vec<Result<(), String>>) -> anyhow::Result<()> {
    let failures: Vec<String> = outcomes.into_iter().filter_map(Result::err).collect();
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Only a warning: deleting needs the test's runtime, which may be the one unwinding.
        if !self.deleted {
            let (namespace, class) = (&self.created.namespace, &self.created.ingress_class);
            eprintln!(
                "warning: the test ended before its cleanup; delete namespace {namespace} and IngressClass {class:?} \
                 by hand"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Status::failure("refused", reason).with_code(code).boxed())
    }

    #[test]
    fn an_object_already_gone_counts_as_deleted_and_any_other_failure_is_named() {
        assert_eq!(deleted("namespace a", Ok(())), Ok(()));
        assert_eq!(deleted("namespace a", Err(api_error(404, "NotFound"))), Ok(()));
        let forbidden = deleted("IngressClass b", Err(api_error(403, "Forbidden"))).unwrap_err();
        assert!(forbidden.starts_with("IngressClass b: "), "{forbidden}");
        let both = gather(vec![Err("IngressClass b: refused".into()), Ok(()), Err("namespace a: refused".into())]);
        let message = both.unwrap_err().to_string();
        assert!(message.contains("IngressClass b") && message.contains("namespace a"), "{message}");
        assert!(gather(vec![Ok(()), Ok(())]).is_ok());
    }

    #[test]
    fn a_scratch_dropped_without_its_delete_only_warns_also_outside_a_runtime() {
        let created = Created { namespace: "holdfast-e2e-x".into(), ingress_class: Some("holdfast-e2e-x".into()) };
        // Where the old `Drop` panicked ("there is no reactor running"); now it prints what to delete by hand.
        drop(Scratch { created, deleted: false });
    }
}
