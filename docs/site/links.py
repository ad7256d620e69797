"""An MkDocs hook: the documents link by repository paths (they read right on the
repository's web page), and the site mirrors the repository files outside ``docs/`` under
``repo/`` (``gen_pages.py``). Every relative link of a page is resolved in the repository,
then pointed at the page or file that holds that path in the site."""

from __future__ import annotations

import posixpath
import re

LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")


def repository_path(src: str) -> str:
    """Where a page of the site lives in the repository."""
    if src == "index.md":
        return "README.md"
    if src.startswith("repo/"):
        return src[len("repo/") :]
    return f"docs/{src}"


def site_path(path: str) -> str:
    """Where a repository path lives in the site."""
    if path == "README.md":
        return "index.md"
    if path.startswith("docs/"):
        return path[len("docs/") :]
    return f"repo/{path}"


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001
    here = repository_path(page.file.src_uri)
    folder = posixpath.dirname(here)

    def rewrite(match: re.Match) -> str:
        target = match[2]
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return match[0]
        path, hash_, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(folder, path))
        own = posixpath.dirname(page.file.src_uri)
        relative = posixpath.relpath(site_path(resolved), own or ".")
        return f"{match[1]}{relative}{hash_}{anchor}{match[3]}"

    return LINK.sub(rewrite, markdown)
