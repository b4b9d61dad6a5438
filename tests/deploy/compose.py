"""Reading docker-compose.yml as Compose would, for the static checks (no Docker engine here):
YAML with anchors and merge keys, ``${NAME:-default}`` interpolation, override files."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SINGLE_NODE_FILE = ROOT / "deploy" / "docker-compose.single-node.yml"

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


def load(path: Path = COMPOSE_FILE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def interpolated_names(path: Path = COMPOSE_FILE) -> set[str]:
    """The variables a Compose file takes from the shell or .env (``${NAME...}``)."""
    return {m.group("name") for m in _VARIABLE.finditer(path.read_text(encoding="utf-8")) if m.group("name")}


def interpolate(value, env: dict[str, str] | None = None):
    """Compose's interpolation of one value (recursively for lists and mappings)."""
    env = env or {}
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        current = env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return arg if current is None else current
        if op in (":?", "?"):
            if not current:
                raise KeyError(f"{name} is required: {arg}")
            return current
        return current or ""

    return _VARIABLE.sub(replace, value)


def merge(base: dict, override: dict) -> dict:
    """``docker compose -f base -f override``: mappings merge, everything else is replaced
    (true of ``command``, ``profiles`` and ``entrypoint``, the keys the override file uses)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def active_services(project: dict, profiles: tuple[str, ...] = ()) -> dict:
    """The services ``docker compose up`` starts with these profiles enabled."""
    return {
        name: service
        for name, service in project["services"].items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


def depends_on(service: dict) -> dict[str, str]:
    """Dependency name -> condition (the short list form means service_started)."""
    dependencies = service.get("depends_on") or {}
    if isinstance(dependencies, list):
        return dict.fromkeys(dependencies, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in dependencies.items()}


def environment(service: dict, env: dict[str, str] | None = None) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: "" if value is None else str(interpolate(value, env)) for name, value in raw.items()}


def command_text(service: dict) -> str:
    command = service.get("command") or []
    return command if isinstance(command, str) else " ".join(str(part) for part in command)


def image_tag(image: str) -> tuple[str, str | None]:
    """``repository`` and ``tag`` (None when untagged; a digest counts as a tag)."""
    if "@" in image:
        return image.split("@", 1)[0], image.split("@", 1)[1]
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return image, None
    return repository, tag
