"""report.html: the report as one self-contained web page (styles, script and pictures inline; no network).

Sections: what is scored, the Phase 1 vs Phase 2 tables (sortable), the charts, every head run's training
curves, the cost table, the gallery (``report_gallery``) and the runs. ``report.py`` gathers the facts; this
module only lays them out.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

from samcache.pipeline.report_assets import CSS, JS
from samcache.pipeline.report_gallery import Gallery, legend

LOWER_IS_BETTER = ("noc@",)  # metrics whose best value in a row is the smallest
PANEL_SIZES = (140, 180, 260, 384)


@dataclass
class Page:
    """What the page shows, gathered by ``report.build_report``."""

    scope: list[str]  # what is scored: split, images, class set and its classes, model
    notes: list[str]  # RANDOM weights, TRAIN=VAL: shown as flags above everything
    tables: list[tuple]  # (title, class set, columns, rows) as report.md has them
    compared: set[str]  # titles of the tables whose columns are runs (best value per row in bold)
    charts: list[tuple[str, Path]]  # (caption, PNG file)
    curves: list[tuple[str, bytes | None, str]]  # (run label, PNG or None, note)
    costs: list[dict]
    cost_columns: list[str]
    cost_text: str
    runs: list[tuple[str, str, str]]  # (label, folder, provenance in words)
    generated: str
    gallery: Gallery | None = None
    gallery_note: str = ""  # why there is no gallery


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _number(value, column: str = "") -> tuple[str, str | None]:
    """(shown text, data-value) of a table cell: IoUs with 4 decimals, NoC (a mean number of clicks) with 2."""
    if isinstance(value, float):
        if math.isnan(value):
            return "-", ""
        places = 2 if column.startswith(LOWER_IS_BETTER) else 4
        return (f"{value:.{places}f}" if abs(value) < 10 else f"{value:.1f}"), repr(value)
    if isinstance(value, int):
        return str(value), str(value)
    return escape(str(value)), None


def _table(title: str, cs: str, columns: list[str], rows: list[dict], best_of_row: bool, sortable: bool = True) -> str:
    head = "".join(f"<th scope=col>{escape(c)}</th>" for c in ["class", *columns])
    body, foot = [], []
    for row in rows:
        values = [row.get(c, math.nan) for c in columns]
        finite = [v for v in values if isinstance(v, float) and math.isfinite(v)]
        best = max(finite) if best_of_row and len(finite) > 1 else None  # compared tables: IoUs, higher is better
        cells = [f"<td>{escape(str(row['class']))}</td>"]
        for c, v in zip(columns, values):
            text, key = _number(v, c)
            attrs = "" if key is None else f' data-value="{key}"'
            cls = " class=best" if best is not None and v == best else (" class=na" if text == "-" else "")
            cells.append(f"<td{cls}{attrs}>{text}</td>")
        (foot if row["class"] in ("mean", "all") else body).append("<tr>" + "".join(cells) + "</tr>")
    caption = f"{escape(title)} &middot; class set {escape(str(cs))}" if cs else escape(title)
    return (f"<div class=scroll><table class='{'sortable' if sortable else ''}'><caption>{caption}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody><tfoot>{''.join(foot)}</tfoot></table></div>")


def _cost_table(page: Page) -> str:
    head = "".join(f"<th scope=col>{escape(c)}</th>" for c in page.cost_columns)
    rows = "".join("<tr>" + "".join(f"<td>{escape(str(r.get(c, '')))}</td>" for c in page.cost_columns) + "</tr>"
                   for r in page.costs)
    return (f"<div class=scroll><table><caption>{escape(page.cost_text)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


def _panel(uri: str | None, caption: str, is_map: bool, missing: str) -> str:
    picture = (f"<img class='{'map' if is_map else 'photo'}' src='{uri}' alt='{escape(caption, quote=True)}'>"
               if uri else f"<div class=missing>{escape(missing)}</div>")
    return f"<div class=panel>{picture}<div class=cap>{caption}</div></div>"


def _gallery(page: Page) -> str:
    g = page.gallery
    labels = [run.label for run in g.runs]
    options = "".join(f"<option value='{escape(lab, quote=True)}'>{escape(lab)}</option>" for lab in labels)
    classes = "".join(f"<option>{escape(c)}</option>" for c in g.class_set.eval_names)
    sizes = "".join(f"<option value={s}{' selected' if s == 180 else ''}>{s} px</option>" for s in PANEL_SIZES)
    swatches = "".join(f"<span><span class=sw style='background:rgb{tuple(c)}'></span>{escape(n)}</span>"
                       for n, c in legend(g.class_set))
    items = []
    for k, item in enumerate(g.items):
        scores = item["scores"]
        panels = [_panel(item["image"], "image", False, "image not found in the data folder"),
                  _panel(item["gt"], "ground truth", True, "")]
        for run in g.runs:
            s = scores[run.label]
            shown = "n/a" if s is None else f"{s:.3f}"
            panels.append(_panel(item["maps"][run.label], f"{escape(run.label)} <span class=s>{shown}</span>", True,
                                 "not scored by this run" if run.scores and s is None else "no label map"))
        items.append(
            f"<figure class=item data-id='{escape(item['id'], quote=True)}' "
            f"data-classes='{escape('|'.join(item['classes']), quote=True)}' "
            f"data-scores='{escape(json.dumps(scores), quote=True)}'>"
            f"<figcaption class=head><span class=rank>#{k + 1}</span> <b>{escape(item['id'])}</b> &middot; "
            f"{escape(', '.join(item['classes']) or 'no scored class')}<span class=gap></span></figcaption>"
            f"<div class=panels>{''.join(panels)}</div></figure>")
    sources = "".join(f"<tr><td>{escape(run.label)}</td><td>{escape(run.score)}</td><td>{escape(run.source)}</td></tr>"
                      for run in g.runs)
    left = "".join(f"<li>{escape(x)}</li>" for x in g.left_out)
    flags = "".join(f"<div class=flag>{escape(n)}</div>" for n in page.notes)  # pictures travel without the header
    return (flags + f"<p>Split <b>{escape(g.split)}</b>, class set <b>{escape(g.class_set.name)}</b>: the "
            f"{len(g.items)} images with the lowest score of <b>{escape(labels[0])}</b> first, of the "
            f"{g.images_scored} the runs scored (<code>--gallery</code> sets how many). Per image: the photo, its "
            f"ground truth and each run's label map in Cityscapes' colours, with the image's score under it.</p>"
            f"<div class=scroll><table class=about><thead><tr><th>run</th><th>an image's score</th><th>label maps</th>"
            f"</tr></thead><tbody>{sources}</tbody></table></div>"
            + (f"<p>Not in the gallery:</p><ul>{left}</ul>" if left else "")
            + f"<div class=legend>{swatches}</div>"
            f"<div class=controls><label>sort by <select id=sort-a>{options}</select></label>"
            f"<label>minus <select id=sort-b><option value=''>(nothing: its score)</option>{options}</select></label>"
            f"<label>order <select id=order><option value=asc>lowest first</option>"
            f"<option value=desc>highest first</option></select></label>"
            f"<label>class <select id=class-filter><option value=''>all</option>{classes}</select></label>"
            f"<label>panel <select id=panel-size>{sizes}</select></label><span id=shown></span></div>"
            f"<div id=gallery>{''.join(items)}</div>")


def render(page: Page) -> str:
    """The whole page as one string."""
    notes = "".join(f"<div class=flag>{escape(n)}</div>" for n in page.notes)
    scope = "".join(f"<p class=meta>{escape(s)}</p>" for s in page.scope)
    tables = "<div class=row>" + "".join(_table(t, cs, cols, rows, t in page.compared)
                                         for t, cs, cols, rows in page.tables) + "</div>"
    charts = "<div class=row>" + "".join(f"<figure class=chart><img src='{png_uri(p.read_bytes())}' "
                                         f"alt='{escape(c, quote=True)}'><figcaption>{escape(c)}</figcaption></figure>"
                                         for c, p in page.charts) + "</div>"
    curves = "".join(f"<h3>{escape(label)}</h3>" + (f"<figure class=chart><img src='{png_uri(png)}' alt='training "
                                                     f"curves of {escape(label, quote=True)}'><figcaption>"
                                                     f"{escape(note)}</figcaption></figure>" if png else
                                                     f"<p>{escape(note)}</p>")
                     for label, png, note in page.curves)
    sections = [("accuracy", "Accuracy: Phase 1 vs Phase 2", tables), ("charts", "Charts", charts)]
    if curves:
        sections.append(("training", "Training curves", curves))
    sections.append(("cost", "Cost", _cost_table(page)))
    gallery = _gallery(page) if page.gallery is not None else f"<p>{escape(page.gallery_note)}</p>"
    sections.append(("per-image", "Per-image gallery", gallery))
    runs = "".join(f"<li><b>{escape(lab)}</b>: {escape(text)} &middot; <code>{escape(d)}</code></li>"
                   for lab, d, text in page.runs)
    sections.append(("runs", "Runs", f"<ul>{runs}</ul>"))
    nav = "".join(f"<a href='#{key}'>{escape(title.split(':')[0])}</a>" for key, title, _ in sections)
    body = "".join(f"<section id={key}><h2>{escape(title)}</h2>{html}</section>" for key, title, html in sections)
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'><link rel=icon href='data:,'>"
            "<title>samcache report: Phase 1 vs Phase 2</title>"
            f"<style>{CSS}</style></head><body><main><header><h1>samcache report: Phase 1 (zero-shot prompts, "
            f"clicks) vs Phase 2 (semantic head)</h1>{scope}<nav>{nav}</nav></header>{notes}{body}"
            f"<footer>Written by samcache on {escape(page.generated)}. One file: it opens from disk with no "
            f"network.</footer></main><script>{JS}</script></body></html>\n")
