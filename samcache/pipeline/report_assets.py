"""report.html's style sheet and script, inlined into the page (it opens from disk: no server, no network).

The script sorts tables by a clicked column (numbers by ``data-value``; classes without a value last; the mean
row stays at the foot) and orders the gallery by one run's score or the gap between two runs, filtered by class.
"""

CSS = """
:root { --panel: 180px; --ink: #1b1b1b; --muted: #5f6368; --rule: #1b1b1b; --soft: #e7e7e7; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; font: 14px/1.45 "Helvetica Neue", Helvetica, Arial, sans-serif; }
main { max-width: 1340px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; font-weight: 600; }
h2 { font-size: 17px; margin: 30px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--soft); font-weight: 600; }
h3 { font-size: 14px; margin: 18px 0 6px; font-weight: 600; }
p, li { max-width: 980px; }
.meta { color: var(--muted); margin: 2px 0; }
nav { margin: 10px 0 0; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; }
.flag { border-left: 4px solid #c5221f; background: #fce8e6; padding: 8px 12px; margin: 12px 0; max-width: 980px; }
.note { border-left: 4px solid #e37400; background: #fef7e0; padding: 8px 12px; margin: 12px 0; max-width: 980px; }
table { border-collapse: collapse; margin: 6px 0 14px; font-variant-numeric: tabular-nums; min-width: 340px; }
.row { display: flex; flex-wrap: wrap; gap: 4px 36px; align-items: flex-start; }
table.about td { white-space: normal; text-align: left; max-width: 560px; font-size: 13px; }
table.about th { text-align: left; }
caption { caption-side: top; text-align: left; color: var(--muted); font-size: 13px; padding-bottom: 4px; }
thead th { border-top: 1.5px solid var(--rule); border-bottom: 1px solid var(--rule); }
tbody tr:last-child td { border-bottom: 1px solid var(--rule); }
tfoot td { border-bottom: 1.5px solid var(--rule); font-weight: 600; }
th, td { padding: 4px 12px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th::after { content: " \\2195"; color: #b0b0b0; font-size: 11px; }
table.sortable thead th[aria-sort=ascending]::after { content: " \\25B2"; color: var(--ink); }
table.sortable thead th[aria-sort=descending]::after { content: " \\25BC"; color: var(--ink); }
td.best { font-weight: 700; }
td.na { color: #9aa0a6; }
.scroll { overflow-x: auto; }
figure.chart { margin: 8px 0 18px; flex: 1 1 640px; max-width: 900px; }
figure.chart img { width: 100%; height: auto; border: 1px solid var(--soft); }
figcaption { color: var(--muted); font-size: 13px; }
.controls { position: sticky; top: 0; z-index: 2; background: rgba(255,255,255,.96); border-bottom: 1px solid var(--soft);
            padding: 8px 0; display: flex; flex-wrap: wrap; gap: 8px 18px; align-items: center; font-size: 13px; }
.controls select { font: inherit; padding: 2px 4px; max-width: 320px; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 8px 0; font-size: 12px; }
.legend span.sw { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -2px;
                  border: 1px solid #999; }
#gallery { display: flex; flex-direction: column; gap: 14px; margin-top: 10px; }
.item { margin: 0; padding: 8px 0 10px; border-bottom: 1px solid var(--soft); }
.item[hidden] { display: none; }
.item .head { font-size: 13px; margin-bottom: 6px; }
.item .head b { font-family: Menlo, Consolas, monospace; font-weight: 600; }
.item .gap { color: var(--accent); margin-left: 10px; }
.panels { display: flex; flex-wrap: wrap; gap: 6px; }
.panel { width: var(--panel); }
.panel img { width: 100%; height: auto; display: block; image-rendering: auto; border: 1px solid #ccc; }
.panel img.map { image-rendering: pixelated; }
.panel .cap { font-size: 11.5px; line-height: 1.3; margin-top: 2px; overflow-wrap: anywhere; }
.panel .cap .s { font-weight: 700; font-variant-numeric: tabular-nums; }
.panel .missing { width: 100%; aspect-ratio: 2 / 1; border: 1px dashed #bbb; color: #9aa0a6; font-size: 11px;
                  display: flex; align-items: center; justify-content: center; text-align: center; padding: 4px; }
code { font-family: Menlo, Consolas, monospace; font-size: 12px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""

JS = """
(function () {
  "use strict";
  function cellKey(cell) {
    var v = cell.getAttribute("data-value");
    if (v === null) { return cell.textContent.trim().toLowerCase(); }
    return v === "" ? null : parseFloat(v);
  }
  function compare(a, b, asc) {
    if (a === null || b === null) { return a === b ? 0 : (a === null ? 1 : -1); }  // no value: always last
    var c = typeof a === "string" ? a.localeCompare(b) : a - b;
    return asc ? c : -c;
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (x, y) { return compare(cellKey(x.cells[col]), cellKey(y.cells[col]), asc); });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  var gallery = document.getElementById("gallery");
  if (!gallery) { return; }
  var byId = function (id) { return document.getElementById(id); };
  var sortA = byId("sort-a"), sortB = byId("sort-b"), order = byId("order"), filter = byId("class-filter"),
      size = byId("panel-size"), shown = byId("shown");
  var items = Array.prototype.slice.call(gallery.children);
  items.forEach(function (item, k) { item._scores = JSON.parse(item.getAttribute("data-scores")); item._rank = k; });
  function value(item) {
    var a = item._scores[sortA.value];
    if (a === null || a === undefined) { return null; }
    if (!sortB.value) { return a; }
    var b = item._scores[sortB.value];
    return (b === null || b === undefined) ? null : a - b;
  }
  function update() {
    var asc = order.value === "asc", cls = filter.value, visible = 0;
    items.sort(function (x, y) { return compare(value(x), value(y), asc) || x._rank - y._rank; });
    items.forEach(function (item) {
      gallery.appendChild(item);
      var keep = !cls || item.getAttribute("data-classes").split("|").indexOf(cls) >= 0;
      item.hidden = !keep;
      if (keep) { visible += 1; item.querySelector(".rank").textContent = "#" + visible; }
      var gap = item.querySelector(".gap"), v = value(item);
      gap.textContent = sortB.value ? ("gap " + (v === null ? "n/a" : (v >= 0 ? "+" : "") + v.toFixed(3))) : "";
    });
    shown.textContent = visible + " of " + items.length + " images";
  }
  [sortA, sortB, order, filter].forEach(function (el) { el.addEventListener("change", update); });
  size.addEventListener("change", function () {
    document.documentElement.style.setProperty("--panel", size.value + "px");
  });
  update();
})();
"""
