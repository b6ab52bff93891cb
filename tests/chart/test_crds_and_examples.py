"""The chart ships the CRDs the crds crate generates, and the shipped examples are valid: UploadPolicies against the
generated CRD's schema, everything else against Kubernetes' own schemas."""

import copy

import jsonschema
import kubernetes_validate
import pytest
import yaml

from holdfast_chart import ROOT, chart_crds, generated_crds

EXAMPLES = sorted((ROOT / "manifests" / "examples").glob("*.yaml"))


def test_chart_crds_are_the_generated_crds():
    generated, shipped = generated_crds(), chart_crds()
    assert generated, "no CRD YAML in crds/"
    assert shipped == generated, (
        "charts/holdfast/crds/ differs from crds/*.yaml: run scripts/chart-test --update "
        f"(generated {sorted(generated)}, chart {sorted(shipped)})"
    )


def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a validator of the CRD's openAPIV3Schema, read as the API server does with strict field
    validation: `nullable` allows null, and fields the schema does not name are errors (the server would prune them)."""
    validators = {}
    for data in generated_crds().values():
        for crd in yaml.safe_load_all(data):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = to_json_schema(version["schema"]["openAPIV3Schema"])
                schema["properties"].update(
                    apiVersion={"const": f"{group}/{version['name']}"},
                    kind={"const": kind},
                    metadata={"type": "object"},
                )
                schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
                jsonschema.Draft7Validator.check_schema(schema)
                validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def to_json_schema(node):
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def example_documents():
    return [
        pytest.param(doc, id=f"{path.name}[{i}]")
        for path in EXAMPLES
        for i, doc in enumerate(yaml.safe_load_all(path.read_text()))
        if doc is not None
    ]


def validate_example(doc, validators):
    key = (doc["apiVersion"], doc["kind"])
    if key in validators:
        return [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in validators[key].iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, "1.35.0", strict=True)
    except kubernetes_validate.ValidationError as error:
        return [error.message]
    return []


def test_examples_cover_both_upload_policies():
    kinds = [d.values[0]["kind"] for d in example_documents()]
    assert kinds.count("UploadPolicy") >= 2 and "Ingress" in kinds


@pytest.mark.parametrize("doc", example_documents())
def test_example_is_valid(doc):
    assert validate_example(doc, crd_validators()) == []


@pytest.mark.parametrize(
    "change, complaint",
    [
        (lambda s: s.update(mode="Bufferred"), "is not one of"),
        (lambda s: s.update(maxBodySize="10 GB"), "does not match"),
        (lambda s: s.update(maxBodysize="10Gi"), "Additional properties"),
        (lambda s: s["replay"].update(maxAttempts=0), "less than the minimum"),
        (lambda s: s["replay"].update(upstreamWaitTimeout="120"), "does not match"),
        (lambda s: s.update(targetRefs=[{"kind": "Deployment", "name": "x"}]), "is not one of"),
    ],
)
def test_crd_schema_catches_mistakes_in_a_policy(change, complaint):
    policy = yaml.safe_load((ROOT / "manifests" / "examples" / "uploadpolicy-photos.yaml").read_text())
    broken = copy.deepcopy(policy)
    change(broken["spec"])
    errors = validate_example(broken, crd_validators())
    assert any(complaint in e for e in errors), errors
