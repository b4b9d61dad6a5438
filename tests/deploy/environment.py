"""The environment variables the service reads, found in its source code (not listed by hand).

A variable counts when its name is the first argument, as a string literal, of a reader:
``config.get_str/get_bool/get_int/get_float/get_list/get_choice`` anywhere, the same functions
and ``_read`` inside ``secureconnect/config.py`` (where the ``DB_*`` and ``DATABASE_URL`` reads
are), or a function of the same module that hands its first parameter to a reader (such as
``_throttle_rate`` in the settings).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG_MODULE = ROOT / "secureconnect" / "config.py"
SKIPPED_DIRS = {".venv", ".venv-test", ".git", "tests", "migrations", "var", "node_modules", "test-artifacts", "bench"}
GETTERS = ("get_str", "get_bool", "get_int", "get_float", "get_list", "get_choice")
NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")


def service_sources() -> list[Path]:
    return sorted(
        path for path in ROOT.rglob("*.py") if not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts[:-1])
    )


def _callee(call: ast.Call) -> str | None:
    """``config.get_str`` for an attribute call on ``config``, the bare name for a plain call."""
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    if isinstance(func, ast.Name):
        return func.id
    return None


def _first_argument(call: ast.Call) -> ast.expr | None:
    return call.args[0] if call.args else None


def _readers(tree: ast.Module, initial: set[str]) -> set[str]:
    """The initial readers plus the module's functions that pass their first parameter to one."""
    readers = set(initial)
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.args.args]
    changed = True
    while changed:
        changed = False
        for function in functions:
            if function.name in readers:
                continue
            parameter = function.args.args[0].arg
            if any(
                isinstance(call, ast.Call)
                and _callee(call) in readers
                and isinstance(_first_argument(call), ast.Name)
                and _first_argument(call).id == parameter
                for call in ast.walk(function)
            ):
                readers.add(function.name)
                changed = True
    return readers


def names_read_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    initial = {f"config.{getter}" for getter in GETTERS}
    if path == CONFIG_MODULE:
        initial |= {*GETTERS, "_read"}
    readers = _readers(tree, initial)
    names = set()
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and _callee(call) in readers:
            argument = _first_argument(call)
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str) and NAME.match(argument.value):
                names.add(argument.value)
    return names


def variables_read_by_the_service() -> set[str]:
    return set().union(*(names_read_in(path) for path in service_sources()))


def variables_read_by_the_tests() -> set[str]:
    """Test-only variables (TEST_DATABASE_URL): in README's table, not in .env.example."""
    text = (ROOT / "tests" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r"os\.environ\.get\(\s*\"([A-Z][A-Z0-9_]*)\"", text)) - variables_read_by_the_service()


def readme_configuration_table() -> set[str]:
    """The variables in the first column of README.md's table under "## Configuration"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", section, flags=re.MULTILINE))


def env_example_names() -> set[str]:
    """Every ``NAME=`` line of .env.example, commented out (``# NAME=``) or not."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^(?:# ?)?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
