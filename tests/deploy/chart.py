"""The Helm chart as the tests see it: rendered by Helm's own engine (helm-python-sdk binds
the Helm Go SDK; no `helm` binary, no cluster, no network) and checked by real validators:
kubernetes-validate's Kubernetes 1.30 schemas (strict) for the core kinds, and for the
prometheus-operator kinds (which kubernetes-validate has no schemas for) the models that
cloudcoil generates from prometheus-operator's CRDs, read back to catch unknown fields."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

from tests.conftest import CONFIG_DIR, REPO

CHART = REPO / "helm" / "prober"
FULL_VALUES = Path(__file__).with_name("full-values.yaml")
KUBERNETES_VERSION = "1.30"
RELEASE, NAMESPACE = "prober", "monitoring"

#: Kinds that come from a CRD (prometheus-operator), not from Kubernetes itself.
CUSTOM_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})


def default_values() -> dict[str, Any]:
    """No overrides: the chart's values.yaml as it ships."""
    return {}


def full_values() -> dict[str, Any]:
    """Every optional part on (full-values.yaml), with `config` given as a mapping."""
    values = yaml.safe_load(FULL_VALUES.read_text(encoding="utf-8"))
    values["config"] = yaml.safe_load((CONFIG_DIR / "demo.yaml").read_text(encoding="utf-8"))
    return values


VALUE_SETS = {"default": default_values, "full": full_values}


@dataclass(frozen=True)
class Rendered:
    """One `helm template`: every object, and the NOTES.txt text."""

    objects: tuple[dict[str, Any], ...]
    notes: str
    files: dict[str, str]

    def kinds(self) -> list[str]:
        return sorted(obj["kind"] for obj in self.objects)

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [
            obj
            for obj in self.objects
            if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
        ]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def pod(self) -> dict[str, Any]:
        return dict(self.deployment["spec"]["template"]["spec"])

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.pod["containers"]
        return dict(container)

    @property
    def config_map(self) -> dict[str, Any]:
        return self.one("ConfigMap", RELEASE)

    @property
    def config_text(self) -> str:
        return str(self.config_map["data"]["prober.yaml"])

    def arg(self, flag: str) -> str:
        """The value of `--flag=value` in the container's arguments."""
        values = [a.split("=", 1)[1] for a in self.container["args"] if a.startswith(f"{flag}=")]
        assert len(values) == 1, f"{flag} given {len(values)} times in {self.container['args']}"
        return values[0]


def load_chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(chart: helm.Chart, values: dict[str, Any]) -> Rendered:
    """Render like `helm template prober helm/prober -n monitoring -f values` (schema checked)."""
    files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(tuple(objects), files.get(f"{CHART.name}/templates/NOTES.txt", ""), files)


def lint(values: dict[str, Any]) -> list[dict[str, Any]]:
    """`helm lint --strict --kube-version v1.30.0`: the messages above info level."""
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES_VERSION}.0")
    assert report["total_charts_linted"] == 1, report
    return [message for message in report["messages"] if message["severity"] >= 2] + [
        {"severity": 3, "path": "", "error": error} for error in report["errors"]
    ]


def validate_manifest(obj: dict[str, Any]) -> None:
    """Raise if the object is not valid for Kubernetes 1.30 (unknown fields included)."""
    if obj["kind"] in CUSTOM_KINDS:
        validate_custom_resource(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


class UnknownFieldsError(AssertionError):
    pass


def validate_custom_resource(obj: dict[str, Any]) -> None:
    """Check a monitoring.coreos.com/v1 object against cloudcoil's models of the CRD.

    The models check types, enums and patterns but ignore unknown fields, so the object is
    read back and compared: a field the CRD does not know is missing from the read-back.
    """
    from cloudcoil.models.prometheus_operator import v1  # ~2.5 s: only when asked

    model = {"ServiceMonitor": v1.ServiceMonitor, "PrometheusRule": v1.PrometheusRule}[obj["kind"]]
    echoed = model.model_validate(copy.deepcopy(obj)).model_dump(
        by_alias=True, exclude_unset=True, mode="json"
    )
    lost = sorted(_lost_paths(obj, echoed))
    if lost:
        raise UnknownFieldsError(f"{obj['kind']}: unknown fields or changed values: {lost}")


def _lost_paths(given: Any, echoed: Any, path: str = "") -> Iterator[str]:
    if isinstance(given, dict) and isinstance(echoed, dict):
        for key, value in given.items():
            if key not in echoed:
                yield f"{path}.{key}"
            else:
                yield from _lost_paths(value, echoed[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(echoed, list) and len(given) == len(echoed):
        for index, (a, b) in enumerate(zip(given, echoed, strict=True)):
            yield from _lost_paths(a, b, f"{path}[{index}]")
    elif given != echoed:
        yield f"{path} ({given!r} read back as {echoed!r})"


def promtool_check_rules(spec: dict[str, Any], directory: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on a PrometheusRule's spec (a Prometheus rule file's shape)."""
    path = directory / "rules.json"
    path.write_text(json.dumps({"groups": spec["groups"]}), encoding="utf-8")
    return subprocess.run(
        ["promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
