"""HTML building blocks of the report: the inline CSS, escaping, tables, inline PNGs, and
the scrubbing of configuration keys that could name a patient.
"""
from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from breastlab.core.rundir import RunConfig


log = logging.getLogger(__name__)

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;color:#222;line-height:1.45;padding:0 1em}
h1{border-bottom:3px solid #1f77b4;padding-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;vertical-align:top}
th{background:#f0f4f8}td.l,th.l{text-align:left}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:.6em 1em;margin:1em 0}
.warn{background:#fdecea;border-left:4px solid #d62728;padding:.6em 1em;margin:1em 0}
.small{font-size:.85em;color:#555}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
img{max-width:100%}pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.8em}
.grid{display:flex;flex-wrap:wrap;gap:1em}.grid figure{flex:0 1 auto}
"""

BINARY_COLUMNS = [("accuracy", "Accuracy"), ("sensitivity", "Sensitivity"),
                  ("specificity", "Specificity"), ("ppv", "PPV"), ("npv", "NPV"),
                  ("auc", "AUC")]


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1,
          raw: bool = False) -> str:
    """HTML table; the first ``left`` columns left-aligned; cells escaped unless ``raw``."""
    def cell(tag: str, i: int, v: Any) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{v if raw else esc(v)}</{tag}>"
    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def scrub(obj: Any) -> Any:
    """Drop keys that could carry patient identifiers from configuration blocks."""
    if isinstance(obj, Mapping):
        return {k: scrub(v) for k, v in obj.items()
                if not any(w in str(k).lower() for w in ("patient", "phi", "name_of"))}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def is_phantom(prov: Mapping[str, Any]) -> bool:
    """Phantom, demo or synthetic data, as the run configuration records it."""
    cfg = prov.get("config") or {}
    if not isinstance(cfg, Mapping):
        return False
    try:
        return RunConfig.from_dict(cfg).synthetic
    except ValueError:  # a configuration without class names still says what it is
        return any(bool(cfg.get(k)) for k in ("phantom", "demo", "synthetic"))
