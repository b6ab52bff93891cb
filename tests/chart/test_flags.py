"""Every flag the chart passes exists in the binary it is passed to: an unknown flag makes clap exit, and the pod
would crash-loop. The flags are read from the clap `Args` structs in the source."""

import re

import pytest

from holdfast_chart import ROOT, render
from conftest import VALUE_SETS

CLI_SOURCES = {
    "controller": ROOT / "controller" / "src" / "config.rs",
    "dataplane": ROOT / "dataplane" / "src" / "cli.rs",
}


def long_flags(path) -> set[str]:
    """`--flag` names of the clap fields in a source file: `#[arg(long ...)] pub field_name` or `long = "name"`."""
    text = path.read_text()
    flags = set()
    for attrs, field in re.findall(r"#\[arg\(([^\]]*)\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub\s+)?(\w+)\s*:", text):
        named = re.search(r'\blong\s*=\s*"([^"]+)"', attrs)
        if named:
            flags.add(named.group(1))
        elif re.search(r"\blong\b", attrs):
            flags.add(field.replace("_", "-"))
    return flags


def test_the_flag_reader_sees_the_known_flags():
    assert {"listen", "admin", "spool-dir", "spool-quota", "drain-timeout", "log-format"} <= long_flags(
        CLI_SOURCES["dataplane"])
    assert {"dataplane-url", "watch-namespace", "publish-service"} <= long_flags(CLI_SOURCES["controller"])


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_chart_passes_only_existing_flags(name):
    workload = next(o for o in render(VALUE_SETS[name]) if o["kind"] in ("Deployment", "StatefulSet"))
    for c in workload["spec"]["template"]["spec"]["containers"]:
        known = long_flags(CLI_SOURCES[c["name"]])
        passed = {re.match(r"--([\w-]+)", a).group(1) for a in c["args"] if a.startswith("--")}
        assert passed <= known, f"{c['name']} has no flag {sorted(passed - known)} ({CLI_SOURCES[c['name']]})"
