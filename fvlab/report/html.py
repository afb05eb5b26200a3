"""A self-contained HTML report: sections of text, number tables and images (embedded as
base64 data URIs, so the file opens anywhere with no external URL)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;
padding:0 1em;color:#222;line-height:1.5}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left} th{background:#f3f3f3}
figure{margin:1em 0} figcaption{font-size:.9em;color:#555}
img{image-rendering:pixelated;max-width:100%;border:1px solid #ddd}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}
nav a{margin-right:1em} code{background:#f4f4f4;padding:0 .25em}
"""


def data_uri(path: str | Path) -> str:
    """The PNG at ``path`` as a data URI."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{encoded}"


@dataclass
class Section:
    """One report section; ``blocks`` are HTML fragments built with the helpers below."""

    anchor: str
    title: str
    blocks: list[str] = field(default_factory=list)

    def text(self, paragraph: str) -> Section:
        self.blocks.append(f"<p>{paragraph}</p>")
        return self

    def note(self, paragraph: str) -> Section:
        self.blocks.append(f'<p class="note">{paragraph}</p>')
        return self

    def table(self, rows: list[list[object]], header: list[str] | None = None) -> Section:
        head = ""
        if header:
            head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>"
            for row in rows
        )
        self.blocks.append(f"<table>{head}{body}</table>")
        return self

    def image(self, path: str | Path, caption: str, width: int | None = None) -> Section:
        style = f' style="width:{width}px"' if width else ""
        self.blocks.append(
            f'<figure><img src="{data_uri(path)}" alt="{html.escape(caption)}"{style}>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return self

    def code(self, command: str) -> Section:
        self.blocks.append(f"<pre><code>{html.escape(command)}</code></pre>")
        return self


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(path: str | Path, title: str, intro: str, sections: list[Section]) -> Path:
    """Write the report; returns its path."""
    nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<h2 id="{s.anchor}">{html.escape(s.title)}</h2>' + "".join(s.blocks) for s in sections
    )
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{intro}</p><nav>{nav}</nav>{body}</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(path)
    return path
