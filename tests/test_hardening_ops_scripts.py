"""Issue 8, item 17: what `scripts/_venv` installs, and the pinned known-good set.

The script runs for real against a stand-in `.venv/bin/python` that records its arguments (a
real install takes minutes); the fresh-clone run of `./scripts/demo` is checked by hand and in
CI through `.ci/run`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
if [ "$1" = "-c" ]; then echo "$FAKE_ORIGIN"; exit 0; fi
if [ -n "${FAIL_PINNED:-}" ] && [[ " $* " == *" -c constraints.txt "* ]]; then exit 1; fi
exit 0
"""


class Checkout:
    """A copy of the files `_venv` reads, with a stand-in `.venv`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "scripts").mkdir()
        shutil.copy(ROOT / "scripts" / "_venv", root / "scripts" / "_venv")
        shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
        shutil.copy(ROOT / "constraints.txt", root / "constraints.txt")
        python = root / ".venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(_FAKE_PYTHON)
        python.chmod(0o755)
        self.log = root / "calls.log"
        self.editable = str(root / "src" / "ghlsync" / "__init__.py")

    def run(self, need: str, origin: str | None = None, **env: str) -> tuple[list[str], str]:
        self.log.write_text("")
        result = subprocess.run(
            ["bash", "-c", 'source scripts/_venv && echo "READY $(command -v python)"'],
            cwd=self.root,
            env={
                "PATH": "/usr/bin:/bin",
                "GHLSYNC_VENV_NEEDS": need,
                "FAKE_LOG": str(self.log),
                "FAKE_ORIGIN": origin or self.editable,
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert f"READY {self.root}/.venv/bin/python" in result.stdout
        installs = [c for c in self.log.read_text().splitlines() if c.startswith("-m pip install")]
        return [c for c in installs if "--upgrade pip" not in c], result.stderr


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    return Checkout(tmp_path)


def test_the_demo_installs_only_what_it_runs_with_progress_and_pins(checkout: Checkout) -> None:
    [install], _ = checkout.run("run")

    assert install.endswith("-c constraints.txt -e .")  # no [dev]: no pytest, ruff, mypy
    assert " -q" not in install  # pip's progress is shown
    assert checkout.run("run")[0] == []  # nothing to do the second time


def test_the_tests_add_the_dev_tools_and_never_take_them_away(checkout: Checkout) -> None:
    checkout.run("run")

    [dev], _ = checkout.run("dev")
    again, _ = checkout.run("run")

    assert dev.endswith("-c constraints.txt -e .[dev]")
    assert again == []


def test_a_non_editable_install_is_replaced_before_the_tests(checkout: Checkout) -> None:
    checkout.run("dev")

    # `pip install .` into the same .venv: ghlsync now imports from site-packages.
    site = str(checkout.root / ".venv/lib/python3.11/site-packages/ghlsync/__init__.py")
    [install], _ = checkout.run("dev", origin=site)

    assert install.endswith("-e .[dev]")


def test_a_pin_that_conflicts_falls_back_to_an_unpinned_install(checkout: Checkout) -> None:
    installs, err = checkout.run("dev", FAIL_PINNED="1")

    assert [i.endswith("-c constraints.txt -e .[dev]") for i in installs] == [True, False]
    assert installs[1].endswith("-e .[dev]") and "constraints.txt" not in installs[1]
    assert "constraints.txt conflicts with pyproject.toml" in err


def test_constraints_pin_the_dependencies_within_pyproject_bounds() -> None:
    pins = _pins((ROOT / "constraints.txt").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = [_name_and_floor(spec) for spec in project["dependencies"]]

    assert "ghlsync" not in pins
    for name, floor in base:  # every runtime dependency is pinned, at or above its floor
        assert name in pins, f"{name} is not pinned in constraints.txt: run ./scripts/lock"
        assert _version(pins[name]) >= _version(floor), (name, pins[name], floor)
    for spec in project["optional-dependencies"]["dev"]:  # dev ones may lag: never below
        name, floor = _name_and_floor(spec)
        if name in pins:
            assert _version(pins[name]) >= _version(floor), (name, pins[name], floor)


def _pins(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            found[_canonical(name)] = version
    return found


def _name_and_floor(spec: str) -> tuple[str, str]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?>=([0-9.]+)", spec)
    assert match is not None, spec
    return _canonical(match.group(1)), match.group(3)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])
