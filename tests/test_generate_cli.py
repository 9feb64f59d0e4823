"""`prober rules` and `prober dashboard` as a user runs them: standard output or `-o`, the
`PROBER_*` twins, exit 2 with `path: message` for a bad config or bad usage. One test runs
the real command line; the table rows call `prober.cli.main` in-process (the same parser and
code path, a second less each)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import pytest

from prober.cli import main
from tests.conftest import REPO, run_prober

DEMO = "config/demo.yaml"
GOLDEN = REPO / "tests" / "golden"


class Result(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def prober(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """`prober(*args, env={...})`: the CLI in-process, from the repo, with a clean PROBER_* env."""

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        monkeypatch.chdir(REPO)
        for key in [key for key in os.environ if key.startswith("PROBER_")]:
            monkeypatch.delenv(key)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit:  # argparse refusing a flag
            code = int(exit.code or 0)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke


def test_the_real_command_line(tmp_path: Path) -> None:
    """`prober rules` and `prober dashboard` as subprocesses: exit 0, the golden outputs."""
    result = run_prober("rules", "-c", DEMO)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (GOLDEN / "rules/demo.yml").read_text()
    output = tmp_path / "dashboard.json"
    result = run_prober("dashboard", env={"PROBER_CONFIG": DEMO, "PROBER_OUTPUT": str(output)})
    assert result.returncode == 0, result.stderr
    assert output.read_text() == (GOLDEN / "dashboard/demo.json").read_text()


@pytest.mark.parametrize(
    ("args", "env", "golden"),
    [
        (("rules", "-c", DEMO), {}, "rules/demo.yml"),
        (("rules",), {"PROBER_CONFIG": DEMO}, "rules/demo.yml"),
        (
            ("rules", "-c", "config/mirror-collective.yaml", "--format", "prometheusrule"),
            {},
            "rules/mirror-collective.prometheusrule.yml",
        ),
        (
            ("rules", "-c", "config/mirror-collective.yaml"),
            {"PROBER_FORMAT": "prometheusrule"},
            "rules/mirror-collective.prometheusrule.yml",
        ),
        (
            ("rules", "-c", "config/mirror-collective.yaml", "--inhibit-rules"),
            {},
            "rules/mirror-collective.inhibit.yml",
        ),
        (
            ("rules", "-c", "config/mirror-collective.yaml"),
            {"PROBER_INHIBIT_RULES": "true"},
            "rules/mirror-collective.inhibit.yml",
        ),
        (("dashboard", "-c", DEMO), {}, "dashboard/demo.json"),
        (("dashboard",), {"PROBER_CONFIG": DEMO}, "dashboard/demo.json"),
    ],
)
def test_writes_to_standard_output(
    prober, args: tuple[str, ...], env: dict[str, str], golden: str
) -> None:  # type: ignore[no-untyped-def]
    """Without -o the output goes to stdout, exactly the golden file; exit 0."""
    result = prober(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (GOLDEN / golden).read_text()


@pytest.mark.parametrize(
    ("command", "golden"), [("rules", "rules/demo.yml"), ("dashboard", "dashboard/demo.json")]
)
@pytest.mark.parametrize("how", ["flag", "env"])
def test_writes_to_a_file(prober, command: str, golden: str, how: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """-o FILE (or PROBER_OUTPUT) writes the file and nothing to stdout."""
    output = tmp_path / "out"
    if how == "flag":
        result = prober(command, "-c", DEMO, "-o", str(output))
    else:
        result = prober(command, "-c", DEMO, env={"PROBER_OUTPUT": str(output)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert output.read_text() == (GOLDEN / golden).read_text()
    if command == "dashboard":
        assert json.loads(output.read_text())["title"] == "prober: mirror-collective-api"


def test_rules_name_what_they_cannot_translate(prober) -> None:  # type: ignore[no-untyped-def]
    """Rules the metrics cannot express are named on stderr, with the reason."""
    result = prober("rules", "-c", DEMO)
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert [line.split()[2] for line in lines] == ["RateLimited", "HighTokenUse", "NewDeployment"]
    assert all("is not translated" in line for line in lines)


@pytest.mark.parametrize("command", ["rules", "dashboard"])
def test_config_error_exits_2(prober, command: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A bad config is `path: message` on stderr, exit 2, no traceback, no output."""
    config = tmp_path / "bad.yaml"
    config.write_text(
        "journeys: [{name: chat, steps: [{name: s, url: /}]}]\nslos: [{name: x, journey: nope, objective: 99%}]\n"
    )
    result = prober(command, "-c", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "slos[0].journey: " in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ("rules", "-c", DEMO, "--inhibit-rules", "--format", "prometheusrule"),
            {},
            "takes no --format",
        ),
        (("rules", "-c", DEMO), {"PROBER_FORMAT": "json"}, "PROBER_FORMAT: expected one of prometheus, prometheusrule"),
        (("rules", "-c", DEMO, "--format", "json"), {}, "expected one of prometheus, prometheusrule, got 'json'"),
        (("rules", "-c", DEMO, "-o", "/nonexistent/dir/rules.yml"), {}, "--output: cannot write"),
        (("dashboard", "-c", DEMO, "-o", "/nonexistent/dir/d.json"), {}, "--output: cannot write"),
    ],
)
def test_usage_errors_exit_2(
    prober, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:  # type: ignore[no-untyped-def]
    """Bad flags are one line on stderr and exit 2."""
    result = prober(*args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
