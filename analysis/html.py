"""A report as one self-contained HTML page: ``report.md`` rendered, every image embedded in the file.

The page needs no network and no folder beside it: it opens in any browser, and can be mailed or
archived alone.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

from trainable.layout import replacing

__all__ = ["write_html"]

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1180px; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0 1.4em; font-size: 0.86em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr:nth-child(even) { background: #f6f6f6; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0 1.4em; }
code { background: #f1f1f1; padding: 0 0.25em; border-radius: 3px; }
h1, h2, h3 { line-height: 1.2; }
"""

_IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)(")')


def _embedded(page: str, folder: Path) -> str:
    """``page`` with each image's relative ``src`` replaced by the image itself (a ``data:`` URI)."""
    def embed(match: re.Match) -> str:
        path = folder / html.unescape(match.group(2))
        if not path.is_file():  # the report names every picture it drew: a missing one is a bug, shown as such
            raise FileNotFoundError(f"{path}: an image of the report is missing")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"{match.group(1)}data:image/{path.suffix.lstrip('.').lower()};base64,{data}{match.group(3)}"

    return _IMG_SRC.sub(embed, page)


def write_html(report: Path) -> Path:
    """Render ``report`` (a report's Markdown, its images relative to its folder) into the page of the same
    name ending in ``.html`` beside it (``report.md``: ``report.html``)."""
    text = report.read_text()
    title = next((line.lstrip("# ").replace("`", "") for line in text.splitlines() if line.startswith("# ")),
                 report.parent.name)
    body = _embedded(markdown.markdown(text, extensions=["tables"]), report.parent)
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
    out = report.with_suffix(".html")
    with replacing(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out
