"""The one-way data flow, checked in the imports.

users -> samples -> run store -> monitor and reports: a package may import only what lies upstream of it.
Every ``import`` and ``from ... import`` of every module counts, at module level or inside a function
(a lazy import is still a dependency), read with :mod:`ast` without importing anything.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("reference_server", "nextauth_tokens", "loadtest", "runstore", "monitor", "reports", "probe")

ALLOWED: dict[str, frozenset[str]] = {
    "nextauth_tokens": frozenset(),
    "runstore": frozenset(),
    "reference_server": frozenset({"nextauth_tokens"}),
    "loadtest": frozenset({"runstore", "nextauth_tokens"}),
    # The production probe writes the store like a load test and reads alert rules with the gate's parser
    # (reports.thresholds); it never imports the load generator (Locust/gevent) or the server it watches.
    "probe": frozenset({"runstore", "nextauth_tokens", "reports"}),
}
"""First-party packages each package may import, besides itself."""

INTEGRATION_POINTS = {"loadtest/_integration.py": frozenset({"monitor", "reports"})}
"""The one module where the load generator is wired to what runs downstream of the store."""


@dataclass(frozen=True)
class Import:
    module: str
    """The importing file, relative to the repository (``loadtest/_lifecycle.py``)."""
    line: int
    target: str
    """The imported module, absolute (``monitor.app``)."""

    @property
    def package(self) -> str:
        return self.target.split(".", 1)[0]


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.removesuffix(".py").split("/")
    base = parts[: len(parts) - node.level]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_in(source: str, module: str) -> list[Import]:
    """Every import in ``source`` (the text of ``module``), relative ones made absolute."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, filename=module)):
        if isinstance(node, ast.Import):
            found.extend(Import(module, node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append(Import(module, node.lineno, _absolute(module, node)))
    return found


def imports_of(path: Path) -> list[Import]:
    return imports_in(path.read_text(encoding="utf-8"), path.relative_to(REPO_ROOT).as_posix())


def forbidden(imports: list[Import], package: str) -> list[str]:
    """``file:line imports target`` for each of ``imports`` (from ``package``) that the flow forbids."""
    allowed = ALLOWED[package] | {package}
    return [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for imp in imports
        if imp.package in FIRST_PARTY
        and imp.package not in allowed
        and imp.package not in INTEGRATION_POINTS.get(imp.module, frozenset())
    ]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_lies_upstream(package: str) -> None:
    assert (REPO_ROOT / package / "__init__.py").is_file(), f"{package}/ is not a package any more"
    modules = sorted((REPO_ROOT / package).rglob("*.py"))
    assert forbidden([i for path in modules for i in imports_of(path)], package) == []


def test_the_integration_point_is_what_the_entry_files_import() -> None:
    # The entry files (the locustfiles Locust loads) each import the integration point, so the monitor and
    # report are wired into every run; no shared module imports it.
    entries = [p for p in sorted((REPO_ROOT / "loadtest").glob("*.py")) if not p.name.startswith("_")]
    assert entries, "no entry files in loadtest/"
    for path in entries:
        assert "loadtest._integration" in {i.target for i in imports_of(path)}, path.name
    for path in sorted((REPO_ROOT / "loadtest").glob("_*.py")):
        assert "loadtest._integration" not in {i.target for i in imports_of(path)}, path.name


def test_lazy_relative_and_plain_imports_all_count() -> None:
    source = (
        "import reports.build\n"
        "from . import _settings\n"
        "from reference_server.app import create_app\n"
        "def later():\n"
        "    from monitor.app import create_app\n"
    )
    imports = imports_in(source, "loadtest/_probe.py")
    assert [(i.line, i.target) for i in imports] == [
        (1, "reports.build"),
        (2, "loadtest"),
        (3, "reference_server.app"),
        (5, "monitor.app"),
    ]
    assert forbidden(imports, "loadtest") == [
        "loadtest/_probe.py:1 imports reports.build",
        "loadtest/_probe.py:3 imports reference_server.app",
        "loadtest/_probe.py:5 imports monitor.app",
    ]
    # The same imports are allowed only in the integration point.
    assert forbidden(imports_in(source, "loadtest/_integration.py"), "loadtest") == [
        "loadtest/_integration.py:3 imports reference_server.app"
    ]
