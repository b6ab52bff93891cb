"""The Grafana dashboard the chart ships: a ConfigMap for Grafana's dashboard sidecar, off unless asked for, whose
JSON is the chart's dashboards/holdfast.json and a dashboard that draws from the Prometheus chosen in Grafana.

Whether every metric it queries exists is checked against real scrapes of the binaries, in the e2e crate
(`e2e/tests/dashboard_metrics.rs`)."""

import json

import helm_python
import pytest

from holdfast_chart import CHART, render

DASHBOARD = CHART / "dashboards" / "holdfast.json"
ENABLED = {"metrics": {"enabled": True, "grafanaDashboard": {"enabled": True}}}


def config_maps(values):
    return [o for o in render(values) if o["kind"] == "ConfigMap"]


def dashboard():
    return json.loads(DASHBOARD.read_text())


def test_no_dashboard_unless_asked_for():
    assert config_maps({}) == []
    assert config_maps({"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}}}) == []


def test_the_dashboard_config_map_carries_the_sidecar_label_and_the_dashboard_file():
    [config_map] = config_maps(ENABLED)
    assert config_map["metadata"]["name"] == "holdfast-dashboard"
    assert config_map["metadata"]["namespace"] == "holdfast-system"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["labels"]["app.kubernetes.io/instance"] == "holdfast"
    assert "annotations" not in config_map["metadata"]
    assert list(config_map["data"]) == ["holdfast.json"]
    assert json.loads(config_map["data"]["holdfast.json"]) == dashboard()


def test_label_namespace_and_annotations_follow_the_sidecar_settings():
    values = {"metrics": {"enabled": True, "grafanaDashboard": {
        "enabled": True, "label": "grafana.example.com/dashboard", "labelValue": "holdfast",
        "namespace": "monitoring", "annotations": {"grafana_folder": "Ingress"}}}}
    [config_map] = config_maps(values)
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana.example.com/dashboard"] == "holdfast"
    assert "grafana_dashboard" not in config_map["metadata"]["labels"]
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Ingress"}


@pytest.mark.parametrize(
    "values, complaint",
    [
        ({"metrics": {"grafanaDashboard": {"enabled": True}}}, "needs metrics.enabled"),
        ({"metrics": {"enabled": True, "grafanaDashboard": {"enabled": True, "label": "not a label"}}},
         "does not match pattern"),
        ({"metrics": {"grafanaDashboard": {"folder": "x"}}}, "additional properties 'folder' not allowed"),
    ],
)
def test_a_dashboard_without_metrics_or_with_a_bad_label_fails_with_the_reason(values, complaint):
    with pytest.raises(helm_python.HelmError, match=complaint):
        render(values)


def test_the_dashboard_fits_a_config_map_applied_client_side():
    # kubectl's client-side apply copies the object into an annotation, which may hold 256 KiB.
    assert DASHBOARD.stat().st_size < 256 * 1024


def test_the_dashboard_draws_from_the_chosen_prometheus_and_filters_by_the_route_labels():
    board = dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] == "holdfast" and board.get("id") is None
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    for name in ("namespace", "ingress", "service"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["datasource"]["uid"] == "${datasource}", name
        assert variable["query"].startswith("label_values(holdfast_") and variable["query"].endswith(f", {name})")
        assert variable["includeAll"] and variable["allValue"] == ".*", f"{name}: All must match empty labels too"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"]), "panel ids are unique"
    for panel in panels:
        where = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), where
        assert all(t["expr"].strip() for t in panel["targets"]), where
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where


def test_route_panels_follow_the_namespace_ingress_and_service_variables():
    route_queries = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])
                     if "holdfast_route_" in t["expr"]]
    assert route_queries
    for expr in route_queries:
        for name in ("namespace", "ingress", "service"):
            assert f'{name}=~"${name}"' in expr, expr
