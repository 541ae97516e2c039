"""Layering: the library never imports its applications (the world generator, the CLI, the
server), and `data/` holds formats only. An AST scan of every source file, lazy imports inside
functions included, with relative imports resolved."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "pixsearch"
APPLICATIONS = ("world", "cli", "serve")
# what a data format may build on: the shared types, masks (COCO RLE), and other formats
DATA_MAY_IMPORT = ("pixsearch.data", "pixsearch.types", "pixsearch.masks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of every module `source` imports (`from a import b` counts `a` and
    `a.b`, since `b` may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.add(name)
            out.update(f"{name}.{alias.name}" for alias in node.names)
    return out


def _imports() -> dict[str, set[str]]:
    return {module_name(p): imported_modules(p.read_text(encoding="utf-8"), module_name(p),
                                             p.name == "__init__.py")
            for p in sorted(PACKAGE.rglob("*.py"))}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _application(module: str) -> str | None:
    return next((a for a in APPLICATIONS if _within(module, f"pixsearch.{a}")), None)


def test_library_never_imports_its_applications():
    imports = _imports()
    assert len(imports) > 50 and "pixsearch.world.build" in imports  # the scan sees the tree
    bad = []
    for module, names in imports.items():
        own = _application(module)
        for name in names:
            app = _application(name)
            # the library imports no application; the world generator imports the library
            # only, not the front ends (cli, serve), which may use it and each other
            if app is not None and app != own and (own is None or own == "world"):
                bad.append(f"{module} imports {name}")
    assert not bad, "library → application imports:\n" + "\n".join(sorted(bad))


def test_data_holds_formats_only():
    bad = [f"{module} imports {name}" for module, names in _imports().items()
           if _within(module, "pixsearch.data") for name in names
           if _within(name, "pixsearch") and name != "pixsearch"
           and not any(_within(name, ok) for ok in DATA_MAY_IMPORT)]
    assert not bad, "\n".join(bad)


def test_the_scan_resolves_relative_and_lazy_imports():
    source = ("from ..world import build\n"
              "from . import records\n"
              "def f():\n    import pixsearch.cli.world\n    from pixsearch import serve\n")
    names = imported_modules(source, "pixsearch.train.data", is_package=False)
    assert {"pixsearch.world", "pixsearch.world.build", "pixsearch.train.records",
            "pixsearch.cli.world", "pixsearch.serve"} <= names
    assert "pixsearch.data.records" in imported_modules("from .records import Record",
                                                        "pixsearch.data", is_package=True)
    # the real tree: the CLI does use the generator (the positive control of the first test)
    assert "pixsearch.world.build" in _imports()["pixsearch.cli.world"]
