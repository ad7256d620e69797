"""Pages of the documentation site generated at build time (mkdocs-gen-files): the home
page from README.md, copies of the repository files the documents link to (under
``repo/``, their links rewritten by ``links.py``), the command-line reference from the
typer app itself (so it cannot drift from ``--help``) and the API reference of every
package's modules from their docstrings (mkdocstrings)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
# Repository files outside docs/ that the documents link to, mirrored under repo/.
MIRRORED = ("CHANGELOG.md", "results/README.md", "examples/sweep_space.toml")
MIRRORED_GLOBS = ("results/**/*.png",)
PACKAGES = ("finetune", "probes", "landscape")


def mirror() -> None:
    """The home page and the mirrored repository files."""
    with mkdocs_gen_files.open("index.md", "w") as page:
        page.write((ROOT / "README.md").read_text())
    files = [ROOT / name for name in MIRRORED]
    files += [path for pattern in MIRRORED_GLOBS for path in sorted(ROOT.glob(pattern))]
    for path in files:
        relative = path.relative_to(ROOT)
        if "runs" in relative.parts or "demo" in relative.parts:
            continue
        with mkdocs_gen_files.open(f"repo/{relative}", "wb") as copy:
            copy.write(path.read_bytes())


def cli_reference() -> None:
    """Every command's ``--help`` as the command prints it, in the order of ``landscape
    --help``."""
    from typer.testing import CliRunner

    from cli.main import ORDER, app

    runner = CliRunner(env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    lines = ["# Command line", "", "Generated from the `landscape` command itself.", ""]
    for name, args in [("landscape", ["--help"])] + [(f"landscape {c}", [c, "--help"])
                                                      for c in ORDER]:  # fmt: skip
        output = runner.invoke(app, args).output
        title = [] if name == "landscape" else [f"## {name}", ""]
        lines += [*title, "```text", output.rstrip(), "```", ""]
    with mkdocs_gen_files.open("reference/cli.md", "w") as page:
        page.write("\n".join(lines))


def modules() -> list[str]:
    """The importable modules of the packages, in order."""
    found = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        found.append(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            found.append(info.name)
    return sorted(found)


def api_reference() -> None:
    """One section per module, rendered by mkdocstrings from its docstrings."""
    lines = ["# Python API", "", "Generated from the docstrings of every module.", ""]
    for name in modules():
        lines += [f"::: {name}", "    options:", "      show_submodules: false",
                  "      heading_level: 2", ""]  # fmt: skip
    with mkdocs_gen_files.open("reference/api.md", "w") as page:
        page.write("\n".join(lines))


mirror()
cli_reference()
api_reference()
