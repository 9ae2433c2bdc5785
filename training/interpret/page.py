"""The report's page: its sections and figures, and the HTML that shows them."""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Figure:
    file: str
    caption: str


@dataclass
class Section:
    title: str
    intro: str
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0


def render_html(sections: list[Section], notes: list[str], seconds: float) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>livestyle: network report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}"
        "figcaption{color:#444;font-size:0.92em;margin-top:0.3em}h2{border-bottom:1px solid #ccc}</style>",
        "</head><body><h1>livestyle: what the networks learned</h1>",
        f"<p>Generated in {seconds:.0f} s. Classifier: EfficientNet-Lite0; loss network: VGG19; "
        "style network: the bundled checkpoint.</p>",
    ]
    parts += [f"<p><i>{html.escape(n)}</i></p>" for n in notes]
    parts.append(
        "<ul>"
        + "".join(f"<li><a href='#s{i}'>{html.escape(s.title)}</a></li>" for i, s in enumerate(sections))
        + "</ul>"
    )
    for i, s in enumerate(sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(s.title)}</h2><p>{s.intro}</p>")
        for fig in s.figures:
            parts.append(
                f"<figure><img src='{fig.file}' alt='{html.escape(fig.caption)}'>"
                f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
            )
        parts.append(f"<p style='color:#888;font-size:0.8em'>{s.seconds:.1f} s</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
