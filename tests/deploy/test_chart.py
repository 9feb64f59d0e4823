"""The Helm chart (helm/prober) through Helm's own engine: lint and render with the default
values and with every optional part on, every object valid for Kubernetes 1.30 (strict),
the pod hardened and probed, the config passing `prober validate`, bad values refused at
install with a message."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pydantic
import pytest
import yaml

from tests.conftest import CONFIG_DIR, REPO, run_prober
from tests.deploy.chart import (
    CHART,
    RELEASE,
    VALUE_SETS,
    Rendered,
    UnknownFieldsError,
    default_values,
    full_values,
    lint,
    load_chart,
    promtool_check_rules,
    render,
    validate_custom_resource,
    validate_manifest,
)
from tests.deploy.chart import (
    NAMESPACE as NS,
)

SETS = sorted(VALUE_SETS)
EXPECTED_OBJECTS = {
    "default": [
        ("ConfigMap", RELEASE),
        ("Deployment", RELEASE),
        ("Service", RELEASE),
        ("ServiceAccount", RELEASE),
    ],
    "full": [
        ("ConfigMap", RELEASE),
        ("ConfigMap", f"{RELEASE}-dashboard"),
        ("Deployment", RELEASE),
        ("NetworkPolicy", RELEASE),
        ("PersistentVolumeClaim", RELEASE),
        ("PodDisruptionBudget", RELEASE),
        ("PrometheusRule", RELEASE),
        ("Service", RELEASE),
        ("ServiceAccount", "prober-sa"),
        ("ServiceMonitor", RELEASE),
    ],
}

#: A PrometheusRule as `prober rules --format prometheusrule` writes one.
OWN_RULES = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PrometheusRule",
    "metadata": {"name": "prober-mine"},
    "spec": {
        "groups": [
            {
                "name": "mine",
                "rules": [
                    {"record": "slo:sli_error:ratio_rate5m", "expr": "vector(0.1)"},
                    {
                        "alert": "Mine",
                        "expr": "slo:sli_error:ratio_rate5m > 0.5",
                        "for": "5m",
                        "labels": {"severity": "critical"},
                        "annotations": {"summary": "{{ $labels.sloth_slo }} is burning"},
                    },
                ],
            }
        ]
    },
}


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return load_chart()


@pytest.fixture(scope="module", params=SETS)
def value_set(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def rendered(chart: helm.Chart, value_set: str) -> Rendered:
    return render(chart, VALUE_SETS[value_set]())


def values_of(value_set: str) -> dict[str, Any]:
    """The chart's defaults merged with the set's overrides, as an install sees them."""
    chart = load_chart()
    try:
        return chart.merge_values(VALUE_SETS[value_set]())
    finally:
        chart.close()


# ------------------------------------------------------------------------ lint and render


@pytest.mark.parametrize("value_set", SETS)
def test_lint_clean(value_set: str) -> None:
    """`helm lint --strict` (Kubernetes 1.30) finds no warning and no error."""
    assert lint(VALUE_SETS[value_set]()) == []


def test_renders_the_expected_objects(rendered: Rendered, value_set: str) -> None:
    """Default values: the core four; full values: every optional object too."""
    found = sorted((obj["kind"], obj["metadata"]["name"]) for obj in rendered.objects)
    assert found == EXPECTED_OBJECTS[value_set]
    for obj in rendered.objects:
        expected_ns = "grafana" if obj["metadata"]["name"].endswith("-dashboard") else NS
        assert obj["metadata"]["namespace"] == expected_ns, obj["kind"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_every_object_validates(rendered: Rendered) -> None:
    """Core kinds against Kubernetes 1.30's schemas (strict); CRD kinds against the CRD models."""
    for obj in rendered.objects:
        validate_manifest(obj)


def test_validators_reject_an_unknown_field(chart: helm.Chart) -> None:
    """The validation above can fail: a misspelt field is refused in core and CRD kinds."""
    objects = render(chart, full_values()).objects
    deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="securityContxt"):
        validate_manifest(deployment)
    monitor = next(obj for obj in objects if obj["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["scrapeIntervall"] = "30s"
    with pytest.raises(UnknownFieldsError, match="scrapeIntervall"):
        validate_custom_resource(monitor)
    rule = next(obj for obj in objects if obj["kind"] == "PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    with pytest.raises(pydantic.ValidationError, match="for"):
        validate_custom_resource(rule)


def test_shipped_rules_and_dashboard_are_current(tmp_path: Path) -> None:
    """helm/prober/files/ holds what `prober rules` and `prober dashboard` write for the
    chart's default config today (`make chart-assets` regenerates them)."""
    config = tmp_path / "prober.yaml"
    config.write_text(values_of("default")["config"], encoding="utf-8")
    for command, shipped in (
        (("rules", "--format", "prometheusrule"), "prometheusrule.yaml"),
        (("dashboard",), "dashboard.json"),
    ):
        fresh = tmp_path / shipped
        result = run_prober(*command, "-c", str(config), "-o", str(fresh))
        assert result.returncode == 0, result.stderr
        current = (CHART / "files" / shipped).read_text(encoding="utf-8")
        assert current == fresh.read_text(encoding="utf-8"), (
            f"helm/prober/files/{shipped} is stale: run `make chart-assets` and review the diff"
        )


def test_shipped_rules_and_dashboard_are_installed(chart: helm.Chart, tmp_path: Path) -> None:
    """The PrometheusRule carries the shipped rules (valid for `promtool check rules`); the
    dashboard ConfigMap carries the shipped JSON as it is, for the Grafana sidecar."""
    out = render(chart, full_values())
    shipped = yaml.safe_load((CHART / "files" / "prometheusrule.yaml").read_text(encoding="utf-8"))
    rule = out.one("PrometheusRule")
    assert rule["spec"] == shipped["spec"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    result = promtool_check_rules(rule["spec"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    dashboard = out.one("ConfigMap", f"{RELEASE}-dashboard")
    text = (CHART / "files" / "dashboard.json").read_text(encoding="utf-8")
    assert dashboard["data"]["prober-dashboard.json"] == text
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "SLOs"}
    assert len(yaml.safe_dump(dashboard).encode()) < 1024 * 1024  # a ConfigMap's limit


# ---------------------------------------------------------------------- the pod


def test_pod_is_hardened(rendered: Rendered) -> None:
    """Non-root, read-only root fs, no privilege escalation, no capabilities, seccomp."""
    pod, container = rendered.pod, rendered.container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]


def test_pod_is_probed(rendered: Rendered) -> None:
    """Liveness on /healthz, readiness on /readyz, both on the port prober listens on."""
    container = rendered.container
    (port,) = container["ports"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert rendered.arg("--listen") == f"0.0.0.0:{port['containerPort']}"


def test_shutdown_outlasts_the_drain(rendered: Rendered) -> None:
    """terminationGracePeriodSeconds is above --grace: the drain ends before SIGKILL."""
    grace = rendered.arg("--grace")
    assert re.fullmatch(r"[0-9]+s", grace), grace
    assert rendered.pod["terminationGracePeriodSeconds"] > int(grace[:-1])


def test_writable_paths_are_volumes(rendered: Rendered) -> None:
    """With a read-only root: the state file's directory and /tmp are volumes; the config
    is the ConfigMap, mounted where --config points."""
    mounts = {m["mountPath"]: m for m in rendered.container["volumeMounts"]}
    volumes = {v["name"]: v for v in rendered.pod["volumes"]}
    state = Path(rendered.arg("--state"))
    assert mounts[str(state.parent)].get("readOnly") is not True
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    config = Path(rendered.arg("--config"))
    assert mounts[str(config.parent)]["readOnly"] is True
    source = volumes[mounts[str(config.parent)]["name"]]["configMap"]
    assert source["name"] == rendered.config_map["metadata"]["name"]
    assert config.name in rendered.config_map["data"]


def test_persistence_claims_the_state_volume(chart: helm.Chart) -> None:
    """persistence.enabled: the state volume is the PVC and the Deployment recreates (RWO)."""
    full = render(chart, full_values())
    state = next(v for v in full.pod["volumes"] if v["name"] == "state")
    pvc = full.one("PersistentVolumeClaim")
    assert state["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pvc["spec"]["storageClassName"] == "fast-ssd"
    assert full.deployment["spec"]["strategy"] == {"type": "Recreate"}
    claimed = render(chart, {"persistence": {"enabled": True, "existingClaim": "kept"}})
    assert [obj["kind"] for obj in claimed.objects if obj["kind"] == "PersistentVolumeClaim"] == []
    state = next(v for v in claimed.pod["volumes"] if v["name"] == "state")
    assert state["persistentVolumeClaim"]["claimName"] == "kept"
    default = render(chart, default_values())
    state = next(v for v in default.pod["volumes"] if v["name"] == "state")
    assert state == {"name": "state", "emptyDir": {}}
    assert default.deployment["spec"]["strategy"]["type"] == "RollingUpdate"


def test_config_checksum_rolls_the_pod(
    chart: helm.Chart, rendered: Rendered, value_set: str
) -> None:
    """checksum/config is the rendered ConfigMap's sha256, so a config change rolls the pod."""
    annotations = rendered.deployment["spec"]["template"]["metadata"]["annotations"]
    text = rendered.files[f"{CHART.name}/templates/configmap.yaml"]
    assert annotations["checksum/config"] == hashlib.sha256(text.encode()).hexdigest()
    values = VALUE_SETS[value_set]()
    values["config"] = values_of(value_set)["config"]
    if isinstance(values["config"], str):
        values["config"] = values["config"].replace("interval: 15s", "interval: 20s", 1)
    else:
        values["config"]["journeys"][0]["interval"] = "20s"
    changed = render(chart, values).deployment["spec"]["template"]["metadata"]["annotations"]
    assert changed["checksum/config"] != annotations["checksum/config"]


# --------------------------------------------------------------------- the config


def test_rendered_config_passes_prober_validate(rendered: Rendered, tmp_path: Path) -> None:
    """The ConfigMap's prober.yaml is a valid config for the real `prober validate`."""
    path = tmp_path / "prober.yaml"
    path.write_text(rendered.config_text, encoding="utf-8")
    result = run_prober("validate", "-c", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("config OK")


def test_config_passes_through_unchanged(chart: helm.Chart) -> None:
    """A string config is carried byte for byte (`${...}` untouched); a mapping as its data."""
    default = render(chart, default_values())
    assert default.config_text == values_of("default")["config"]
    assert "${secret.PROBE_PASSWORD}" in default.config_text
    full = render(chart, full_values())
    demo = yaml.safe_load((CONFIG_DIR / "demo.yaml").read_text(encoding="utf-8"))
    assert yaml.safe_load(full.config_text) == demo
    text = 'service: x  # {{ not helm }}\njourneys: [{name: "${env.A}"}]\n'
    assert render(chart, {"config": text}).config_text == text


def test_secrets_come_from_secret_key_refs(chart: helm.Chart) -> None:
    """secretEnv → secretKeyRef (existingSecret by default, key = the name); env → values."""
    env = {entry["name"]: entry for entry in render(chart, full_values()).container["env"]}
    assert env["DEMO_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "prober-secrets", "key": "DEMO_PASSWORD"}
    }
    assert env["SLACK_WEBHOOK_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "slack-webhook", "key": "url", "optional": True}
    }
    assert env["PROBER_TARGET__BASE_URL"] == {
        "name": "PROBER_TARGET__BASE_URL",
        "value": "https://staging.example.com",
    }
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "value" not in env["DEMO_PASSWORD"]


def test_notes_say_how_to_reach_the_status_page(rendered: Rendered) -> None:
    """NOTES.txt: the port-forward command and the status page's URL."""
    port = rendered.one("Service")["spec"]["ports"][0]["port"]
    assert f"port-forward service/{RELEASE} {port}:{port}" in rendered.notes
    assert f"http://127.0.0.1:{port}/ " in rendered.notes
    assert f"http://{RELEASE}.{NS}.svc:{port}/" in rendered.notes


def test_notes_name_unset_environment_variables(chart: helm.Chart) -> None:
    """The config's ${secret.X}/${env.X} that nothing sets are named; escaped $${...} not."""
    default = render(chart, default_values()).notes
    assert "PROBE_EMAIL, PROBE_PASSWORD, SLACK_WEBHOOK_URL." in default
    assert "WARNING" not in render(chart, full_values()).notes
    config = 'a: "${env.SET}"\nb: "$${secret.ESCAPED}"\nc: "${secret.MISSING}"\n'
    notes = render(chart, {"config": config, "env": {"SET": "1"}}).notes
    assert "(unless extraEnvFrom does): MISSING." in notes


def test_selectors_find_the_pods(rendered: Rendered) -> None:
    """Service, ServiceMonitor, PDB and NetworkPolicy select the Deployment's pods by port name."""
    pod_labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    service = rendered.one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == rendered.container["ports"][0]["name"]
    for obj in rendered.objects:
        if obj["kind"] in ("PodDisruptionBudget", "NetworkPolicy"):
            key = "selector" if obj["kind"] == "PodDisruptionBudget" else "podSelector"
            assert obj["spec"][key]["matchLabels"].items() <= pod_labels.items()
        if obj["kind"] == "ServiceMonitor":
            assert (
                obj["spec"]["selector"]["matchLabels"].items()
                <= service["metadata"]["labels"].items()
            )
            assert obj["spec"]["endpoints"][0]["port"] == service_port["name"]
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].endswith("-dashboard"):
            assert obj["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_own_rules_and_dashboard_replace_the_shipped_ones(
    chart: helm.Chart, tmp_path: Path
) -> None:
    """prometheusRule.content / dashboard.content (your config's output) are carried as they
    are (`{{ $labels }}` untouched), valid for the CRD and for `promtool check rules`."""
    dashboard = '{"title": "mine", "panels": []}'
    out = render(
        chart,
        {
            "prometheusRule": {"enabled": True, "content": yaml.safe_dump(OWN_RULES)},
            "dashboard": {"enabled": True, "content": dashboard},
        },
    )
    rule = out.one("PrometheusRule")
    assert rule["spec"] == OWN_RULES["spec"]
    assert rule["metadata"]["name"] == RELEASE
    validate_manifest(rule)
    result = promtool_check_rules(rule["spec"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    config_map = out.one("ConfigMap", f"{RELEASE}-dashboard")
    assert config_map["data"]["prober-dashboard.json"] == dashboard + "\n"
    validate_manifest(config_map)


# ------------------------------------------------------------------ values refused

SCHEMA_PREFIX = "values don't meet the specifications of the schema(s)"

#: (id, values, what the message must say). Each is refused before anything renders.
BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("typo-top-level", {"replicas": 2}, "at '': additional properties 'replicas' not allowed"),
    (
        "typo-nested",
        {"persistence": {"enable": True}},
        "at '/persistence': additional properties 'enable' not allowed",
    ),
    ("config-empty", {"config": ""}, "at '/config': minLength: got 0, want 1"),
    ("config-list", {"config": ["service: x"]}, "at '/config': got array, want string or object"),
    ("replicas-zero", {"replicaCount": 0}, "at '/replicaCount': minimum: got 0, want 1"),
    ("tag-number", {"image": {"tag": 1.5}}, "at '/image/tag': got number, want string"),
    (
        "pull-policy",
        {"image": {"pullPolicy": "Sometimes"}},
        "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
    ),
    (
        "digest",
        {"image": {"digest": "latest"}},
        "at '/image/digest': 'latest' does not match pattern",
    ),
    (
        "port-range",
        {"service": {"port": 70000}},
        "at '/service/port': maximum: got 70,000, want 65,535",
    ),
    (
        "log-level",
        {"logLevel": "verbose"},
        "at '/logLevel': value must be one of 'debug', 'info', 'warning', 'error'",
    ),
    ("drain-zero", {"drainSeconds": 0}, "at '/drainSeconds': minimum: got 0, want 1"),
    ("drain-string", {"drainSeconds": "10s"}, "at '/drainSeconds': got string, want integer"),
    (
        "state-relative",
        {"state": {"path": "state.db"}},
        "at '/state/path': 'state.db' does not match pattern",
    ),
    (
        "pvc-size",
        {"persistence": {"size": "lots"}},
        "at '/persistence/size': 'lots' does not match pattern",
    ),
    (
        "secret-env-name",
        {"secretEnv": {"probe-password": {}}},
        "at '/secretEnv': additional properties 'probe-password' not allowed",
    ),
    (
        "secret-env-field",
        {"secretEnv": {"A": {"secret": "s"}}},
        "at '/secretEnv/A': additional properties 'secret' not allowed",
    ),
    (
        "env-object",
        {"env": {"A": {"value": "x"}}},
        "at '/env/A': got object, want boolean or number or string",
    ),
    (
        "memory-limit",
        {"resources": {"limits": {"memory": "lots"}}},
        "at '/resources/limits/memory': 'lots' does not match pattern",
    ),
    (
        "run-as-root",
        {"securityContext": {"runAsUser": 0}},
        "at '/securityContext/runAsUser': minimum: got 0, want 1",
    ),
    (
        "monitor-interval",
        {"serviceMonitor": {"interval": "30 seconds"}},
        "at '/serviceMonitor/interval': '30 seconds' does not match pattern",
    ),
    (
        "dashboard-label",
        {"dashboard": {"labels": {"grafana_dashboard": 1}}},
        "at '/dashboard/labels/grafana_dashboard': got number, want string",
    ),
    (
        "pdb-percent",
        {"podDisruptionBudget": {"maxUnavailable": "half"}},
        "at '/podDisruptionBudget/maxUnavailable': 'half' does not match pattern",
    ),
    (
        "egress-port",
        {"networkPolicy": {"egressPorts": ["https"]}},
        "at '/networkPolicy/egressPorts/0': got string, want integer",
    ),
]


@pytest.mark.parametrize(
    ("values", "message"), [row[1:] for row in BAD_VALUES], ids=[row[0] for row in BAD_VALUES]
)
def test_schema_refuses_bad_values(chart: helm.Chart, values: dict[str, Any], message: str) -> None:
    """values.schema.json refuses the value at install, naming it."""
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.render(values, name=RELEASE, namespace=NS)
    assert SCHEMA_PREFIX in str(refused.value)
    assert message in str(refused.value)


#: Refusals the schema cannot express: the templates `fail` with these messages.
BAD_COMBINATIONS: list[tuple[str, dict[str, Any], str]] = [
    (
        "secret-without-source",
        {"secretEnv": {"PROBE_PASSWORD": {}}},
        "secretEnv.PROBE_PASSWORD: no Secret to read it from: give secretEnv.PROBE_PASSWORD.secretName or existingSecret",
    ),
    (
        "state-in-tmp",
        {"state": {"path": "/tmp/prober.db"}},
        "state.path: /tmp/prober.db is in /tmp, which is not the state volume",
    ),
    (
        "replicas-sharing-a-state-file",
        {"replicaCount": 2, "persistence": {"enabled": True}},
        "replicaCount: 2 replicas cannot share one state file (persistence.enabled)",
    ),
    (
        "rules-not-a-rule",
        {"prometheusRule": {"enabled": True, "content": "groups: []"}},
        "prometheusRule.content: not a PrometheusRule with spec.groups",
    ),
    (
        "dashboard-not-json",
        {"dashboard": {"enabled": True, "content": "<html>"}},
        "dashboard.content: not a Grafana dashboard",
    ),
]


@pytest.mark.parametrize(
    ("values", "message"),
    [row[1:] for row in BAD_COMBINATIONS],
    ids=[row[0] for row in BAD_COMBINATIONS],
)
def test_templates_refuse_bad_combinations(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    """What the schema cannot check fails the render with a message naming the value."""
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        chart.render(values, name=RELEASE, namespace=NS)


def test_defaults_and_full_values_satisfy_the_schema() -> None:
    """The schema itself is valid JSON Schema, and both value sets pass it."""
    import json

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    for value_set in SETS:
        jsonschema.Draft7Validator(schema).validate(values_of(value_set))


# ---------------------------------------------------------- versions agree everywhere


def test_versions_agree() -> None:
    """Chart appVersion (the default image tag) = prober's version = the image's VERSION."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    chart_meta = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert chart_meta["appVersion"] == project["version"]
    assert f"ARG VERSION={project['version']}\n" in dockerfile
