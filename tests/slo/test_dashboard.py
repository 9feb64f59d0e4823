"""`slo.dashboard`: the generated Grafana dashboard, pinned by golden files and checked
against Grafana's schema (grafana-foundation-sdk's models), its layout rules, and promtool's
PromQL parser. That its queries return data is tests/test_rules_integration.py's job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from prober.config import load_config, parse_config
from prober.slos import engine_spec
from slo.dashboard import dashboard_queries, generate_dashboard, render_dashboard
from tests.conftest import REPO

CONFIGS = {
    "demo": REPO / "config" / "demo.yaml",
    "mirror-collective": REPO / "config" / "mirror-collective.yaml",
}
ROWS = ["SLO overview", "Journeys", "Alerts", "Prober health"]
PANEL_TYPES = {"row", "stat", "timeseries", "state-timeline", "table"}


def dashboard_of(config: str) -> dict[str, Any]:
    return generate_dashboard(engine_spec(load_config(CONFIGS[config])))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_golden(config: str, golden: Any) -> None:
    """The whole dashboard JSON is pinned (review the diff after `make golden`)."""
    golden(f"dashboard/{config}.json", render_dashboard(dashboard_of(config)))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_round_trips_through_grafanas_schema(config: str) -> None:
    """Grafana's dashboard model (grafana-foundation-sdk) reads it back unchanged."""
    dashboard = dashboard_of(config)
    model = Dashboard.from_json(json.loads(json.dumps(dashboard)))
    assert json.loads(json.dumps(model, cls=JSONEncoder)) == dashboard
    assert dashboard["schemaVersion"] == 41


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_layout(config: str) -> None:
    """Rows in order, unique ids, panels inside the 24-column grid and not overlapping,
    every query with its own refId and the dashboard's datasource variable."""
    dashboard = dashboard_of(config)
    panels = dashboard["panels"]
    assert [panel["title"] for panel in panels if panel["type"] == "row"] == ROWS
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in PANEL_TYPES
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"])
    assert len(dashboard["uid"]) <= 40


def test_variables() -> None:
    """Data source, SLO and journey variables, the latter two multi-valued with All."""
    variables = dashboard_of("demo")["templating"]["list"]
    assert [variable["name"] for variable in variables] == ["datasource", "slo", "journey"]
    assert variables[0]["type"] == "datasource"
    assert variables[0]["query"] == "prometheus"
    for variable in variables[1:]:
        assert variable["type"] == "query"
        assert variable["multi"] is True
        assert variable["includeAll"] is True
    assert 'sloth_service="mirror-collective-api"' in variables[1]["query"]
    assert 'journey=~"chat|healthcheck"' in variables[2]["query"]


def test_burn_rate_panel_draws_every_policy_threshold() -> None:
    """Each distinct burn-rate threshold is a dashed line, coloured by its severity."""
    spec = engine_spec(
        parse_config(
            """
journeys: [{name: chat, steps: [{name: s, url: /}]}]
slos:
  - {name: month, journey: chat, objective: 99%, window: 30d}
  - {name: week, journey: chat, objective: 99%, window: 7d}
"""
        )
    )
    dashboard = generate_dashboard(spec)
    panel = next(panel for panel in dashboard["panels"] if panel["title"] == "Burn rate by window")
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"] == {"mode": "dashed"}
    steps = [(step["value"], step["color"]) for step in defaults["thresholds"]["steps"]]
    expected = {round(policy.threshold, 9) for slo in spec.slos for policy in slo.policies}
    assert steps[0] == (None, "green")
    assert {value for value, _ in steps[1:]} == expected
    assert (14.4, "red") in steps  # 30d's fast page
    assert (1.0, "orange") in steps  # 30d's slow ticket
    assert (round(0.02 * 7 * 24, 9), "red") in steps  # 7d's fast page: 3.36


def test_queries_filter_by_the_variables() -> None:
    """SLO panels filter on the service and $slo, journey panels on $journey."""
    queries = list(dashboard_queries(dashboard_of("demo")))
    titles = {title for title, _ in queries}
    assert {"Error budget remaining", "Burn rate by window", "Notification queue"} <= titles
    for title, expr in queries:
        if "slo:" in expr:
            assert 'sloth_service="mirror-collective-api"' in expr, title
            assert 'sloth_slo=~"$slo"' in expr, title
        elif "journey" in expr and title != "Firing alerts (Prometheus)":
            assert 'journey=~"$journey"' in expr, title


def test_every_query_parses(tmp_path: Path) -> None:
    """promtool accepts every query (variables filled in) as a rule expression."""
    binary = shutil.which("promtool")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(
                "promtool is not installed (.ci/run installs the Debian package prometheus)"
            )
        pytest.skip("promtool is not installed")
    queries = [
        expr.replace("$__rate_interval", "1m").replace("$slo", ".*").replace("$journey", ".*")
        for _, expr in dashboard_queries(dashboard_of("mirror-collective"))
    ]
    rules = [
        {"record": f"dashboard:query_{index}:test", "expr": expr}
        for index, expr in enumerate(queries)
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [binary, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(queries)} rules found" in result.stdout
