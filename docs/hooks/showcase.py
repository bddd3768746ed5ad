"""mkdocs hook: the showcase gallery in the repository's gallery/ folder becomes the site's showcase/ folder.

`featviz gallery` wrote that folder as a static site of its own (relative links, its own CSS and JavaScript),
so its files are copied as they are, without a copy in docs/. Its manifest and the dataset pass's cache are
left out: the pages do not read them.
"""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

SHOWCASE = Path(__file__).resolve().parents[2] / "gallery"
PREFIX = "showcase"
LEFT_OUT = {"manifest.json"}


def on_files(files, config):
    if not (SHOWCASE / "index.html").is_file():
        raise SystemExit(f"the showcase gallery {SHOWCASE}/index.html is missing: the Galleries page links to it")
    for path in sorted(SHOWCASE.rglob("*")):
        relative = path.relative_to(SHOWCASE)
        if not path.is_file() or relative.parts[0].startswith(".") or relative.name in LEFT_OUT:
            continue
        files.append(File.generated(config, f"{PREFIX}/{relative.as_posix()}", abs_src_path=str(path)))
    return files
