"""The import rules of docs/design.md's layout table hold in the code: every import statement
of the four packages (at module level or inside a function) names a module of its own folder
or one its folder's row allows; and the table names every module."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("finetune", "probes", "landscape", "cli")


def allowed_imports(design: str) -> dict[str, tuple[str, ...]]:
    """Each package folder's row of the layout table: its last cell's project modules, the
    part before the first ';' and outside parentheses (the rest says what it may not)."""
    rules = {}
    for folder, cell in re.findall(r"^\| `([a-z_/]+)/` \|.*\| ([^|]*) \|$", design, flags=re.M):
        if folder.split("/")[0] not in PACKAGES:
            continue
        allowed = re.sub(r"\([^)]*\)", "", cell).split(";")[0]
        names = re.findall(r"`([a-z_.]+)`", allowed)
        rules[folder] = tuple(n for n in names if n.split(".")[0] in PACKAGES)
    return rules


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def project_imports(path: Path) -> set[str]:
    """The project modules a file imports (``from a import b`` is ``a.b`` when ``b`` is a
    module, else ``a``; relative imports resolved)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def covered(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def row_of(path: Path, rules: dict[str, tuple[str, ...]]) -> str:
    """The table row that governs a file: its folder's, or its nearest parent's."""
    folder = path.parent.relative_to(ROOT)
    while str(folder) not in rules:
        assert folder != folder.parent, f"{path} is in no row of the layout table"
        folder = folder.parent
    return str(folder)


RULES = allowed_imports((ROOT / "docs" / "design.md").read_text())
FILES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_the_table_has_a_row_for_every_package():
    assert {"finetune", "probes", "cli"} <= set(RULES)
    assert all(RULES.values())


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_is_allowed_by_its_folders_row(path):
    row = row_of(path, RULES)
    own = row.replace("/", ".")
    broken = sorted(name for name in project_imports(path) if not covered(name, (own, *RULES[row])))
    assert broken == [], f"{row}/ may import {RULES[row]}"


def test_a_forbidden_import_is_caught():
    # The rule read from a row like finetune/data's refuses the engine.
    row = "| `finetune/data/` | data | `finetune.config`; not `finetune.engine` |"
    rules = allowed_imports(row)
    assert rules == {"finetune/data": ("finetune.config",)}
    assert not covered("finetune.engine.loop", ("finetune.data", *rules["finetune/data"]))
    assert covered("finetune.config", ("finetune.data", *rules["finetune/data"]))


def named_in_row(path: Path, design: str) -> bool:
    """Whether the layout table names the module ``path`` in its folder's row: its file
    name (or its name without ``.py``), or the sub-folder holding it (a registry folder
    such as ``repro/``, one entry per module)."""
    row = row_of(path, RULES)
    cell = re.search(rf"^\| `{re.escape(row)}/` \| ([^|]*) \|", design, flags=re.M).group(1)
    inside = path.relative_to(ROOT / row).parts
    named = f"`{path.name}`" in cell or f"`{path.stem}`" in cell
    return named or (len(inside) > 1 and f"`{inside[0]}/`" in cell)


def test_the_table_names_every_module():
    design = (ROOT / "docs" / "design.md").read_text()
    unnamed = [
        str(path.relative_to(ROOT))
        for path in FILES
        if path.name != "__init__.py" and not named_in_row(path, design)
    ]
    assert unnamed == []
