"""`make run` and `make test` never share a virtualenv: installing the test tools must not touch
files a running dev server has loaded (its autoreloader would restart it and drop live calls).

Read from `make -n -B` (print every command, run none), so the check follows the Makefile as it is.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from tests.deploy.compose import ROOT

pytestmark = pytest.mark.portable


def commands(target: str, *variables: str) -> list[str]:
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target, *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if line.strip()]


def venvs_used(lines: list[str]) -> set[str]:
    """The virtualenv directories the commands create, install into or run from."""
    used = set()
    for line in lines:
        words = shlex.split(line)
        for index, word in enumerate(words):
            if word == "venv" and index > 0 and words[index - 1] == "-m":
                used.add(words[index + 1].rstrip("/"))
            match = re.match(r"(?:.*/)?([^/\s]+)/bin/", word)
            if match:
                used.add(word.split("/bin/")[0])
    return used


def test_run_and_test_use_different_virtualenvs():
    run, test = venvs_used(commands("run")), venvs_used(commands("test"))
    assert run == {".venv"}, run
    assert test == {".venv-test"}, test


@pytest.mark.parametrize("target", ["lint", "e2e", "bench"])
def test_the_other_tool_targets_stay_out_of_the_run_virtualenv(target):
    assert ".venv" not in venvs_used(commands(target))


def test_every_test_install_goes_to_the_test_virtualenv():
    installs = [line for line in commands("test") if " pip install " in line]
    assert installs and all(line.startswith(".venv-test/bin/python -m pip install") for line in installs), installs


def test_make_run_takes_the_port_documented_in_the_readme():
    assert commands("run", "PORT=8091")[-1].endswith("runserver 127.0.0.1:8091")
    assert "make run PORT=8091" in (ROOT / "README.md").read_text()


def test_the_test_virtualenv_is_ignored_by_git_docker_and_the_source_scan():
    from tests.deploy.environment import SKIPPED_DIRS

    assert ".venv-test/" in (ROOT / ".gitignore").read_text().splitlines()
    assert ".venv-test" in (ROOT / ".dockerignore").read_text().splitlines()
    assert ".venv-test" in SKIPPED_DIRS
