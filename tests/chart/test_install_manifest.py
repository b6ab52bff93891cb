"""manifests/install.yaml is the chart rendered with its default values."""

import yaml

from holdfast_chart import INSTALL_YAML, install_yaml


def test_install_yaml_is_the_chart_with_default_values():
    assert INSTALL_YAML.exists(), "manifests/install.yaml is missing: run scripts/chart-test --update"
    assert INSTALL_YAML.read_text() == install_yaml(), (
        "manifests/install.yaml is out of date with charts/holdfast: run scripts/chart-test --update"
    )


def test_install_yaml_creates_its_namespace_and_crds_first():
    kinds = [d["kind"] for d in yaml.safe_load_all(INSTALL_YAML.read_text()) if d]
    assert kinds[:2] == ["Namespace", "CustomResourceDefinition"]
    assert kinds.index("ServiceAccount") < kinds.index("Deployment")
