"""The chart's RBAC is exactly manifests/rbac.yaml, and covers every API call the controller's code makes.

The controller's code is read, not run: `scan()` finds the kinds it reaches through the API (`Api::<Ingress>`,
`Api<Lease>`, `self.api::<Service>()`, `Store<K>`, `Controller::new(...)`) and what is done with them: a file
with watchers or controllers lists and watches every kind it names; `.get(`, `.get_opt(`, `.create(`, `.replace(`,
`.patch(`, `.delete(`, `.patch_status(`, `.replace_status(` count for the kind their receiver was declared with
(`let api: Api<Service>`, `api: &Api<Lease>`), or for every kind of the file when the receiver is an unbound
`api`/`lease…` handle; kube-runtime's `Recorder` creates and patches Events. A kind missing from KINDS fails the
test, so a new watch or writer cannot slip through unmapped.
"""

import re
from pathlib import Path

import pytest
import yaml

from holdfast_chart import ROOT, render

CONTROLLER_SRC = ROOT / "controller" / "src"
RBAC_YAML = ROOT / "manifests" / "rbac.yaml"

# Rust type name -> (API group, resource).
KINDS = {
    "Ingress": ("networking.k8s.io", "ingresses"),
    "IngressClass": ("networking.k8s.io", "ingressclasses"),
    "Service": ("", "services"),
    "Endpoints": ("", "endpoints"),
    "EndpointSlice": ("discovery.k8s.io", "endpointslices"),
    "Secret": ("", "secrets"),
    "ConfigMap": ("", "configmaps"),
    "Pod": ("", "pods"),
    "Node": ("", "nodes"),
    "Namespace": ("", "namespaces"),
    "UploadPolicy": ("holdfast.io", "uploadpolicies"),
    "Lease": ("coordination.k8s.io", "leases"),
    "Event": ("events.k8s.io", "events"),
}
# Kinds whose status the controller may write (they have a status subresource).
WITH_STATUS = {"Ingress", "UploadPolicy"}

KIND_PATTERNS = [
    r"\bApi\s*(?:::)?\s*<\s*(\w+)\s*>",
    r"\bapi\s*::\s*<\s*(\w+)\s*>",
    r"\b(?:Store|Writer|ObjectRef)\s*<\s*(\w+)\s*>",
    r"\bController\s*::\s*<\s*(\w+)\s*>",
]
WATCH_MARKERS = ("watcher(", "reflector(", "metadata_watcher(", "Controller::new(", "Controller::<")
# `name: Api<Kind>` (a parameter or an annotated let) or `let name = Api::<Kind>::…`: later calls on `name` are on Kind.
BINDING = re.compile(r"\b(\w+)\s*:\s*&?\s*Api\s*<\s*(\w+)\s*>|\blet\s+(?:mut\s+)?(\w+)\s*=\s*Api\s*::\s*<\s*(\w+)\s*>")
CALL = re.compile(
    r"\b(\w+)\s*\.\s*(get|get_opt|create|replace|patch|delete|list|get_status|patch_status|replace_status)\s*\(")
CALL_VERBS = {"get": "get", "get_opt": "get", "create": "create", "replace": "update", "patch": "patch",
              "delete": "delete", "list": "list", "get_status": "get", "patch_status": "patch",
              "replace_status": "update"}


def generic_params(text: str) -> set[str]:
    """Type parameters declared in the file (`fn f<K: Resource>`, `impl<K>`, `where K:`): not kinds."""
    names = set()
    for group in re.findall(r"(?:fn\s+\w+|impl|struct\s+\w+|enum\s+\w+)\s*<([^>{(]*)>", text):
        names.update(re.findall(r"(?:^|,)\s*(\w+)", group))
    names.update(re.findall(r"\bwhere\s+(\w+)\s*:", text))
    return names


def scan_text(text: str, where: str) -> tuple[set[tuple[str, str, str]], list[str]]:
    """The (group, resource, verb) triples one source file needs, and the kinds it names that KINDS lacks."""
    text = re.sub(r"//[^\n]*", "", text)  # comments name kinds without calling anything
    generics = generic_params(text)
    kinds, unknown = set(), []
    for pattern in KIND_PATTERNS:
        for name in re.findall(pattern, text):
            if name in KINDS:
                kinds.add(name)
            elif name not in generics and not re.fullmatch(r"[A-Z]", name):
                unknown.append(f"{where}: {name} (add it to KINDS in {Path(__file__).name})")
    if "LeaseLock" in text:
        kinds.add("Lease")
    needs = set()
    watches = any(marker in text for marker in WATCH_MARKERS)
    for kind in kinds:
        group, resource = KINDS[kind]
        if watches:
            needs |= {(group, resource, "list"), (group, resource, "watch")}
        if kind == "Lease" and "LeaseLock" in text:
            needs |= {(group, resource, verb) for verb in ("get", "create", "update")}
    needs |= calls(text, kinds)
    if re.search(r"\bRecorder\b", text):
        needs |= {("events.k8s.io", "events", "create"), ("events.k8s.io", "events", "patch")}
    return needs, unknown


def calls(text: str, kinds: set[str]) -> set[tuple[str, str, str]]:
    """Verbs of the API calls in a file, each on the kind its receiver was bound to; a call on an unbound receiver
    named like an API handle (`api`, `leases`) counts for every kind the file names."""
    bound: dict[str, str | None] = {}
    events = [(m.start(), "bind", m) for m in BINDING.finditer(text)] + [(m.start(), "call", m) for m in CALL.finditer(text)]
    needs = set()
    for _, what, m in sorted(events, key=lambda e: e[0]):
        if what == "bind":
            name, kind = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            bound[name] = kind if kind in KINDS else None
            continue
        receiver, method = m.group(1), m.group(2)
        if bound.get(receiver):
            targets = {bound[receiver]}
        elif receiver in bound or re.search(r"api|lease", receiver, re.I):
            targets = kinds
        else:
            continue  # a map's .get(), a builder's .create(): not the API
        for kind in targets:
            group, resource = KINDS[kind]
            if method.endswith("_status"):
                if kind in WITH_STATUS:
                    needs.add((group, f"{resource}/status", CALL_VERBS[method]))
            else:
                needs.add((group, resource, CALL_VERBS[method]))
    return needs


def scan(src: Path = CONTROLLER_SRC) -> tuple[dict[tuple[str, str, str], list[str]], list[str]]:
    """Every (group, resource, verb) the controller's code needs -> the files that need it; and unmapped kinds."""
    needs, unknown = {}, []
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(ROOT)
        if "tests" in path.relative_to(src).parts:
            continue  # test doubles call nothing real
        file_needs, file_unknown = scan_text(path.read_text(), str(rel))
        unknown += file_unknown
        for need in file_needs:
            needs.setdefault(need, []).append(str(rel))
    return needs, unknown


def grants(objects) -> dict[str, set[tuple[str, str, str]]]:
    """Role kind ('ClusterRole' or 'Role') -> the (group, resource, verb) triples it grants."""
    out = {"ClusterRole": set(), "Role": set()}
    for obj in objects:
        if obj and obj["kind"] in out:
            for rule in obj.get("rules", []):
                assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
                out[obj["kind"]] |= {
                    (g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
                }
    return out


def reference() -> dict[str, set[tuple[str, str, str]]]:
    return grants(yaml.safe_load_all(RBAC_YAML.read_text()))


def fmt(triples) -> str:
    return ", ".join(f"{v} {g or 'core'}/{r}" for g, r, v in sorted(triples))


def test_every_api_call_of_the_controller_has_its_rule():
    needs, unknown = scan()
    assert not unknown, "kinds the test cannot map to a resource:\n" + "\n".join(unknown)
    granted = set().union(*grants(render({})).values())
    missing = {need: files for need, files in needs.items() if need not in granted}
    assert not missing, "the controller needs rules the chart does not grant (add them to manifests/rbac.yaml and " \
        "charts/holdfast/templates/rbac.yaml):\n" + "\n".join(
            f"  {fmt([need])}  (from {', '.join(files)})" for need, files in sorted(missing.items()))


def test_every_reference_rule_is_used_by_the_controller():
    needs, _ = scan()
    unused = set().union(*reference().values()) - set(needs)
    assert not unused, f"manifests/rbac.yaml grants what no code calls (remove it from there and the chart): {fmt(unused)}"


def test_the_controller_source_watches_what_the_issue_lists():
    # Guards the scanner itself: if it stopped seeing the watches, the test above would pass vacuously.
    needs, _ = scan()
    watched = {r for (g, r, v) in needs if v == "watch"}
    assert {"ingresses", "ingressclasses", "services", "endpointslices", "secrets", "uploadpolicies"} <= watched


@pytest.mark.parametrize("values", [{}, {"controller": {"watchNamespace": "apps"}}], ids=["all-namespaces", "one"])
def test_chart_grants_exactly_the_reference_rules(values):
    chart, ref = grants(render(values)), reference()
    assert set().union(*chart.values()) == set().union(*ref.values()), (
        f"beyond manifests/rbac.yaml: {fmt(set().union(*chart.values()) - set().union(*ref.values()))}; "
        f"missing: {fmt(set().union(*ref.values()) - set().union(*chart.values()))}"
    )
    if not values:
        assert chart == ref, "cluster-wide vs namespaced rules differ from manifests/rbac.yaml"


def test_watching_one_namespace_grants_namespaced_kinds_only_there():
    objects = render({"controller": {"watchNamespace": "apps"}})
    cluster_role = next(o for o in objects if o["kind"] == "ClusterRole")
    assert {r for rule in cluster_role["rules"] for r in rule["resources"]} == {"ingressclasses"}
    roles = {o["metadata"]["namespace"]: o for o in objects if o["kind"] == "Role"}
    assert set(roles) == {"apps", "holdfast-system"}
    own = {(r, v) for rule in roles["holdfast-system"]["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert own == {("leases", "get"), ("leases", "create"), ("leases", "update"), ("services", "get")}


def test_no_wildcards_and_bindings_name_the_service_account():
    objects = render({"controller": {"watchNamespace": "apps"}})
    for obj in objects:
        for rule in obj.get("rules", []) if obj["kind"] in ("Role", "ClusterRole") else []:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert obj["subjects"] == [{"kind": "ServiceAccount", "name": "holdfast", "namespace": "holdfast-system"}]


# The scanner on small sources: what a new watch or writer would look like.
@pytest.mark.parametrize(
    "source, expected",
    [
        ("let s = watcher(Api::<Pod>::all(c), cfg);",
         {("", "pods", "list"), ("", "pods", "watch")}),
        ("fn api<K>(&self) -> Api<K> { todo!() }\nwatcher(self.api::<Secret>(), cfg)",
         {("", "secrets", "list"), ("", "secrets", "watch")}),
        ("let api: Api<Ingress> = Api::all(c); api.patch_status(name, &pp, &patch).await",
         {("networking.k8s.io", "ingresses/status", "patch")}),
        ("let api: Api<Ingress> = Api::all(c); api.get_status(name).await",
         {("networking.k8s.io", "ingresses/status", "get")}),
        ("let leases: Api<Lease> = Api::namespaced(c, ns); leases.get_opt(n); leases.create(&pp, &l); "
         "leases.replace(n, &pp, &l)",
         {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}),
        ("let api: Api<UploadPolicy> = x; api.patch_status(n, &pp, &p);\n"
         "let api: Api<Service> = y; api.get(n);\nlet seen = cache.get(&n);",
         {("holdfast.io", "uploadpolicies/status", "patch"), ("", "services", "get")}),
        ("let recorder = Recorder::new(client, reporter);",
         {("events.k8s.io", "events", "create"), ("events.k8s.io", "events", "patch")}),
        ("// Api::<ConfigMap> mentioned in a comment only\nlet x = map.get(&k);", set()),
    ],
)
def test_scanner_finds_the_calls(source, expected):
    needs, unknown = scan_text(source, "example.rs")
    assert (needs, unknown) == (expected, [])


def test_scanner_refuses_unknown_kinds():
    _, unknown = scan_text("watcher(Api::<HorizontalPodAutoscaler>::all(c), cfg)", "example.rs")
    assert unknown and "HorizontalPodAutoscaler" in unknown[0]
