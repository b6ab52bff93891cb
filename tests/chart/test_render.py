"""The chart renders, lints and produces valid, safe objects for every supported value set."""

import helm_python
import kubernetes_validate
import pytest

from holdfast_chart import CHART, notes, render

# The Kubernetes releases every rendered object must be valid for: the one k8s-openapi is built against in the
# workspace (Cargo.toml's `v1_35`) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.35.0", kubernetes_validate.latest_version()]
# Kinds from CRDs that kubernetes-validate has no schema for.
CUSTOM_KINDS = {"ServiceMonitor"}


def workload(objects):
    return next(o for o in objects if o["kind"] in ("Deployment", "StatefulSet"))


def container(objects, name):
    return next(c for c in workload(objects)["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def flag(c, name):
    """The value of `--name=value` in a container's args (None when absent)."""
    prefix = f"--{name}="
    return next((a[len(prefix):] for a in c["args"] if a.startswith(prefix)), None)


def test_lint_reports_no_errors(value_set):
    _, values = value_set
    report = helm_python.lint(CHART, values, strict=True, namespace="holdfast-system")
    errors = [m for m in report["messages"] if m["severity"] >= 3] + report["errors"]
    assert not errors, errors


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_strictly_valid(value_set, version):
    _, values = value_set
    problems = []
    for obj in render(values):
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            if obj["kind"] not in CUSTOM_KINDS:
                problems.append(f"{where}: no schema in Kubernetes {version}")
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{where}: {error.message} at {'/'.join(map(str, error.path))}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"replica": 3}, "additional properties 'replica' not allowed"),
        ({"spool": {"emptydir": {}}}, "additional properties 'emptydir' not allowed"),
        ({"replicas": "3"}, "got string, want integer"),
        ({"spool": {"type": "hostPath"}}, "value must be one of"),
        ({"spool": {"emptyDir": {"sizeLimit": "10GB"}}}, "does not match pattern"),
        ({"service": {"type": "Ingress"}}, "value must be one of"),
        ({"metrics": {"enabled": "yes"}}, "got string, want boolean"),
        ({"metrics": {"exposeAdmin": True}}, "additional properties 'exposeAdmin' not allowed"),
        ({"controller": {"defaults": {"upstreamWaitTimeout": "120"}}}, "does not match pattern"),
    ],
)
def test_schema_rejects_typos_and_wrong_types(values, complaint):
    with pytest.raises(helm_python.HelmValuesError, match=complaint):
        render(values)


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"spool": {"type": "pvc", "pvc": {"existingClaim": "spool"}}}, "with replicas > 1"),
        ({"metrics": {"serviceMonitor": {"enabled": True}}}, "needs metrics.enabled"),
        ({"metrics": {"enabled": True, "controllerPort": 9913}}, "controllerPort must differ"),
    ],
)
def test_contradictory_values_fail_with_the_reason(values, complaint):
    with pytest.raises(helm_python.HelmError, match=complaint):
        render(values)


def test_pods_run_unprivileged_with_a_read_only_root(value_set):
    _, values = value_set
    objects = render(values)
    pod = workload(objects)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
        assert c["resources"]["requests"], c["name"]
    # The spool is the dataplane's only writable path; the API token is the controller's alone.
    assert [m["name"] for m in container(objects, "dataplane")["volumeMounts"]] == ["spool"]
    assert [m["name"] for m in container(objects, "controller")["volumeMounts"]] == ["kube-api-access"]


def test_admin_listener_stays_on_loopback_and_metrics_get_their_own(value_set):
    name, values = value_set
    objects = render(values)
    dataplane, controller = container(objects, "dataplane"), container(objects, "controller")
    annotations = workload(objects)["spec"]["template"]["metadata"].get("annotations", {})
    assert flag(dataplane, "admin") == "127.0.0.1:9901", "route pushes never leave the pod's loopback"
    if name == "metrics-exposed":
        assert flag(dataplane, "metrics") == "0.0.0.0:9913"
        assert annotations["prometheus.io/port"] == "9913"
        assert [p["name"] for p in dataplane["ports"]] == ["http", "https", "metrics"]
        # The controller's admin listener only reads (metrics, health), so it may face Prometheus.
        assert flag(controller, "admin") == "0.0.0.0:9914"
        assert [(p["name"], p["containerPort"]) for p in controller["ports"]] == [("ctrl-metrics", 9914)]
        service = next(o for o in objects if o["metadata"]["name"].endswith("-metrics"))
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics", "ctrl-metrics"]
        monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics", "ctrl-metrics"]
        assert monitor["spec"]["endpoints"][0]["honorLabels"] is True, "routes keep their namespace and service"
        assert ":9913/metrics" in notes(values) and ":9914/metrics" in notes(values)
    else:
        assert "--metrics" not in " ".join(dataplane["args"])
        assert "prometheus.io/scrape" not in annotations
        assert [p["name"] for p in dataplane["ports"]] == ["http", "https"]
        assert flag(controller, "admin") is None and "ports" not in controller, "the controller's default: loopback"
    assert flag(controller, "dataplane-url") == "http://127.0.0.1:9901/config"


def test_connection_balancing_is_off_unless_asked_for():
    assert "--balance-connections" not in container(render({}), "dataplane")["args"]
    balanced = container(render({"dataplane": {"balanceConnections": True}}), "dataplane")
    assert "--balance-connections" in balanced["args"]


def test_probes_ask_the_admin_listener_from_inside_the_pod(value_set):
    _, values = value_set
    dataplane = container(render(values), "dataplane")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        command = dataplane[probe]["exec"]["command"]
        assert command[:2] == ["/bin/bash", "-c"] and "/dev/tcp/127.0.0.1/9901" in command[2]
        assert f"GET {path} " in command[2]


def test_grace_period_covers_the_shutdown_delay_and_the_drain():
    objects = render({"dataplane": {"drainTimeoutSeconds": 300, "shutdownDelaySeconds": 10}})
    dataplane = container(objects, "dataplane")
    assert flag(dataplane, "drain-timeout") == "300s" and flag(dataplane, "shutdown-delay") == "10s"
    assert workload(objects)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 300 + 10 + 15
    # The controller outlives the drain: its preStop waits for the dataplane's admin listener to close.
    wait = container(objects, "controller")["lifecycle"]["preStop"]["exec"]["command"]
    assert wait[:2] == ["/bin/bash", "-c"] and "/dev/tcp/127.0.0.1/9901" in wait[2]


@pytest.mark.parametrize(
    "values, quota",
    [
        ({}, str(10 * 2**30 * 90 // 100)),
        ({"spool": {"emptyDir": {"sizeLimit": "500M"}, "quotaPercent": 80}}, "400000000"),
        ({"replicas": 1, "spool": {"type": "pvc", "pvc": {"existingClaim": "c", "size": "1Ti"}}},
         str(2**40 * 90 // 100)),
        ({"spool": {"quota": "7Gi"}}, "7Gi"),
        ({"spool": {"emptyDir": {"sizeLimit": "0"}}}, "0"),
    ],
)
def test_spool_quota_follows_the_volume_size(values, quota):
    assert flag(container(render(values), "dataplane"), "spool-quota") == quota


def test_spool_volume_matches_the_storage_type(value_set):
    name, values = value_set
    objects = render(values)
    w = workload(objects)
    volumes = {v["name"]: v for v in w["spec"]["template"]["spec"]["volumes"]}
    if name == "pvc-statefulset":
        assert w["kind"] == "StatefulSet" and "spool" not in volumes
        claim = w["spec"]["volumeClaimTemplates"][0]
        assert claim["metadata"]["name"] == "spool"
        assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
        assert claim["spec"]["storageClassName"] == "fast"
        headless = next(o for o in objects if o["metadata"]["name"] == w["spec"]["serviceName"])
        assert headless["spec"]["clusterIP"] == "None"
    elif name == "pvc-existing-claim":
        assert w["kind"] == "Deployment"
        assert volumes["spool"]["persistentVolumeClaim"] == {"claimName": "spool"}
    else:
        assert w["kind"] == "Deployment"
        assert "sizeLimit" in volumes["spool"]["emptyDir"]


def test_spreads_across_nodes_only_with_several_replicas():
    assert "topologySpreadConstraints" in workload(render({"replicas": 3}))["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in workload(render({"replicas": 1}))["spec"]["template"]["spec"]


def test_service_type_and_traffic_policy():
    objects = render({"service": {"type": "NodePort", "externalTrafficPolicy": "Local", "nodePort": 30080}})
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["spec"]["type"] == "NodePort" and service["spec"]["externalTrafficPolicy"] == "Local"
    assert service["spec"]["ports"][0]["nodePort"] == 30080
    cluster_ip = next(o for o in render({"service": {"type": "ClusterIP", "externalTrafficPolicy": "Local"}})
                      if o["kind"] == "Service")
    assert "externalTrafficPolicy" not in cluster_ip["spec"]
    assert next(o for o in render({}) if o["kind"] == "Service")["spec"]["type"] == "LoadBalancer"


def test_ingress_class_and_default_class_annotation():
    [cls] = [o for o in render({}) if o["kind"] == "IngressClass"]
    assert cls["metadata"]["name"] == "holdfast" and cls["spec"]["controller"] == "holdfast.io/ingress-controller"
    assert "annotations" not in cls["metadata"]
    [cls] = [o for o in render({"ingressClass": {"default": True}}) if o["kind"] == "IngressClass"]
    assert cls["metadata"]["annotations"] == {"ingressclass.kubernetes.io/is-default-class": "true"}


def test_installs_a_disruption_budget_and_notes_for_first_steps():
    [pdb] = [o for o in render({}) if o["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    text = notes({})
    assert "ingressClassName: holdfast" in text and "kind: UploadPolicy" in text
