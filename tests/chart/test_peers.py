"""Peers for resumable uploads: a StatefulSet's controller is told the governing Service whose EndpointSlices list
every replica by pod name (--peers-service) and the dataplane's plain port (--peers-port); a Deployment has no
peers; and RBAC lets the controller watch those EndpointSlices whichever namespace it watches otherwise."""

import pytest

import test_render
from holdfast_chart import NAMESPACE, render
from test_rbac import grants
from test_render import container, flag, workload

STATEFUL = {"spool": {"type": "pvc"}}


def test_a_statefulset_names_its_governing_service_and_the_dataplane_port_as_peers():
    objects = render({**STATEFUL, "replicas": 3, "dataplane": {"port": 9080}})
    w, controller = workload(objects), container(objects, "controller")
    assert w["kind"] == "StatefulSet"
    assert flag(controller, "peers-service") == f"{NAMESPACE}/{w['spec']['serviceName']}"
    assert flag(controller, "peers-port") == "9080"
    assert flag(container(objects, "dataplane"), "listen") == "0.0.0.0:9080"
    headless = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == w["spec"]["serviceName"])
    assert headless["metadata"]["namespace"] == NAMESPACE and headless["spec"]["clusterIP"] == "None"
    # The governing Service selects every replica: its EndpointSlices are the peers.
    assert headless["spec"]["selector"] == w["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("replicas", [1, 2])
def test_a_statefulset_has_peers_with_any_replica_count(replicas):
    controller = container(render({**STATEFUL, "replicas": replicas}), "controller")
    assert flag(controller, "peers-service") == f"{NAMESPACE}/holdfast-pods"


@pytest.mark.parametrize(
    "values",
    [{}, {"replicas": 1, "spool": {"type": "pvc", "pvc": {"existingClaim": "spool"}}}],
    ids=["emptyDir", "existing-claim"],
)
def test_a_deployment_has_no_peers(values):
    objects = render(values)
    assert workload(objects)["kind"] == "Deployment"
    args = container(objects, "controller")["args"]
    assert not [a for a in args if a.startswith("--peers-")]


def role_rules(objects, namespace):
    """(resource, verb) pairs granted by the Roles in `namespace`."""
    roles = [o for o in objects if o["kind"] == "Role" and o["metadata"]["namespace"] == namespace]
    return {(r, v) for (g, r, v) in grants(roles)["Role"]}


@pytest.mark.parametrize("watch_namespace", ["", NAMESPACE])
def test_the_main_watch_covers_the_peers_when_it_watches_their_namespace(watch_namespace):
    objects = render({**STATEFUL, "controller": {"watchNamespace": watch_namespace}})
    assert not [o for o in objects if o["metadata"]["name"].endswith("-peers")]
    granted = set().union(*grants(objects).values())
    assert {("discovery.k8s.io", "endpointslices", v) for v in ("list", "watch")} <= granted


def test_watching_another_namespace_grants_the_peers_endpointslices_in_the_release_namespace():
    objects = render({**STATEFUL, "controller": {"watchNamespace": "apps"}})
    assert {("endpointslices", "list"), ("endpointslices", "watch")} <= role_rules(objects, "apps")
    own = role_rules(objects, NAMESPACE)
    assert {("endpointslices", "list"), ("endpointslices", "watch")} <= own
    binding = next(o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "holdfast-peers")
    assert binding["metadata"]["namespace"] == NAMESPACE and binding["roleRef"]["name"] == "holdfast-peers"
    # A Deployment watching another namespace has no peers, so no such Role.
    objects = render({"controller": {"watchNamespace": "apps"}})
    assert ("endpointslices", "list") not in role_rules(objects, NAMESPACE)


@pytest.mark.parametrize("version", test_render.KUBERNETES_VERSIONS)
def test_a_statefulset_watching_another_namespace_lints_and_validates(version):
    values = ("pvc-statefulset-one-namespace", {**STATEFUL, "controller": {"watchNamespace": "apps"}})
    test_render.test_lint_reports_no_errors(values)
    test_render.test_every_object_is_strictly_valid(values, version)
