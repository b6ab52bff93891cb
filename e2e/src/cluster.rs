//! The cluster side: a client from the kubeconfig file (out-of-cluster, like kubectl), the UploadPolicy CRD applied
//! when missing, and [`Scratch`], the guard that owns the test namespace and the cluster-scoped objects the test
//! creates and deletes them when dropped — also when the test panics.

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
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    kubeconfig: PathBuf,
    namespace: String,
    /// Set once the IngressClass exists, so that only what was created is deleted.
    ingress_class: Option<String>,
}

/// The test's namespace and IngressClass, deleted on drop. Both names are unique to the run.
pub struct Scratch {
    created: Created,
}

impl Scratch {
    /// Creates a namespace named `name`.
    pub async fn create(client: &Client, kubeconfig: &Path, name: &str) -> anyhow::Result<Self> {
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": { "app.kubernetes.io/created-by": FIELD_MANAGER } },
        }))?;
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(&PostParams::default(), &namespace).await.with_context(|| format!("creating namespace {name}"))?;
        let created =
            Created { kubeconfig: kubeconfig.to_path_buf(), namespace: name.to_string(), ingress_class: None };
        Ok(Scratch { created })
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
}

/// Deletes the IngressClass and the namespace (everything in it goes with it, in the background).
async fn delete(created: Created) -> anyhow::Result<()> {
    let client = client(&created.kubeconfig).await?;
    let mut errors = Vec::new();
    if let Some(class) = &created.ingress_class {
        let api: Api<IngressClass> = Api::all(client.clone());
        if let Err(error) = api.delete(class, &DeleteParams::default()).await {
            errors.push(format!("IngressClass {class}: {error}"));
        }
    }
    let api: Api<Namespace> = Api::all(client);
    if let Err(error) = api.delete(&created.namespace, &DeleteParams::background()).await {
        errors.push(format!("namespace {}: {error}", created.namespace));
    }
    anyhow::ensure!(errors.is_empty(), "{}", errors.join("; "));
    Ok(())
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the one unwinding: the deletes run with a fresh client
        // in a runtime of their own, on a thread of their own, bounded like every other wait.
        let created = self.created.clone();
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let deletes = tokio::time::timeout(Duration::from_secs(30), delete(created));
            runtime.block_on(deletes).context("the deletes timed out")?
        })
        .join();
        let (namespace, class) = (&self.created.namespace, &self.created.ingress_class);
        match deleted {
            Ok(Ok(())) => eprintln!("cleanup: deleted namespace {namespace} and IngressClass {class:?}"),
            Ok(Err(error)) => {
                eprintln!("cleanup failed: {error:#}; delete namespace {namespace}, IngressClass {class:?} by hand")
            }
            Err(_) => eprintln!("cleanup panicked; delete namespace {namespace}, IngressClass {class:?} by hand"),
        }
    }
}
