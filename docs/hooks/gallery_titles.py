"""mkdocs hook: a page of the example gallery is titled by its script's heading ("Channels of one layer"), not
by its file name: mkdocs-gallery puts a download note before the heading, where mkdocs does not look for it."""
from __future__ import annotations

import re

GALLERY = "generated/gallery/"
_HEADING = re.compile(r"^# (.+)$", re.MULTILINE)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith(GALLERY) and "title" not in page.meta:
        found = _HEADING.search(markdown)
        if found:
            page.meta["title"] = found.group(1).strip()
    return markdown
