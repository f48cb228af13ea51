"""The comparison report of ``deepgu:compare``: one self-contained HTML page (no file beside it, no script).

What it shows, for the methods that ran on one scene (or its EXTENT window):

- a table, one row per method: seconds, the weights it used (as its log states them), the reconstruction error
  ``RMSE_Y = sqrt(mean_n mean_l (y_ln - (M_n a_n)_l)^2)`` over the valid pixels and, with a reference, the paper's
  ``RMSE_A`` (eq. 14, the method's materials matched to the reference's) and, with true per-pixel endmembers,
  ``RMSE_M`` and ``SAM_M`` (eq. 15), as :mod:`core.evaluation.metrics` computes them;
- the abundance maps side by side: one row per material, one column per method (the reference first when there is
  one), grey from 0 (black) to 1 (white);
- the per-pixel reconstruction RMSE map of each method, on one grey scale for all (0 to the largest 99th
  percentile among the methods), so the columns compare;
- each method's log, folded.

Maps are PNG images embedded as base64 ``data:`` URIs, written by :func:`png` (grey, or grey and alpha where
there is nodata: nodata is transparent), with zlib alone: the report needs no plotting package.
"""

import base64
import html
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

#: the scores against the truth, in the summary's column order (:class:`core.evaluation.metrics.MetricsAccumulator`'s).
SCORES = ("RMSE_A", "RMSE_M", "SAM_M")
#: percentile of the pixels' reconstruction RMSE that is white on the error maps (the largest among the methods).
RMSE_WHITE_PERCENTILE = 99.0


def png(gray, alpha=None):
    """PNG file bytes of an 8-bit image: ``gray`` (rows, cols) uint8; ``alpha`` (rows, cols) uint8 or None.

    Colour type 0 (grey) or 4 (grey and alpha), bit depth 8, filter 0 (None) on every row, one IDAT chunk
    (the PNG specification, sections 11-12)."""
    gray = np.asarray(gray, dtype=np.uint8)
    rows, cols = gray.shape
    pixels = gray[:, :, None] if alpha is None else np.stack([gray, np.asarray(alpha, dtype=np.uint8)], axis=2)
    raw = np.zeros((rows, 1 + pixels.shape[2] * cols), dtype=np.uint8)     # column 0: each row's filter type
    raw[:, 1:] = pixels.reshape(rows, -1)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", cols, rows, 8, 0 if alpha is None else 4, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))


def map_png(values, low, high):
    """PNG of a map ``values`` (rows, cols), NaN where nodata: grey, ``low`` black to ``high`` white (clipped);
    nodata transparent."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values)
    span = high - low if high > low else 1.0
    gray = np.rint(np.clip((np.where(valid, values, low) - low) / span, 0.0, 1.0) * 255.0).astype(np.uint8)
    return png(gray, None if valid.all() else np.where(valid, 255, 0).astype(np.uint8))


def rmse_white(rmse_maps):
    """The RMSE that is white on every error map: the largest :data:`RMSE_WHITE_PERCENTILE` percentile of the
    valid pixels of ``rmse_maps`` (0 when none has one)."""
    levels = [np.percentile(values[np.isfinite(values)], RMSE_WHITE_PERCENTILE) for values in rmse_maps
              if np.isfinite(values).any()]
    return float(max(levels)) if levels else 0.0


def overall_rmse(rmse_map):
    """``RMSE_Y`` of a method from its per-pixel RMSE map (rows, cols), NaN at nodata: ``sqrt(mean_n rmse_n^2)``,
    the RMSE over every valid pixel and band (each pixel has the same band count)."""
    values = np.asarray(rmse_map, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(values ** 2))) if values.size else float("nan")


@dataclass
class MethodReport:
    """One method's part of the report.

    method: its id (``fcls``, ...); label: as shown (``FCLS``); abundances: (P, rows, cols) in the report's
    material order, NaN at nodata; rmse: (rows, cols) per-pixel reconstruction RMSE, NaN at nodata; seconds: its
    run; weights: what its log says it used; scores: {"RMSE_A"[, "RMSE_M", "SAM_M"]: ...} against the reference
    (None without one);
    log: its log lines."""

    method: str
    label: str
    abundances: np.ndarray
    rmse: np.ndarray
    seconds: float
    weights: str
    scores: dict = None
    log: list = field(default_factory=list)


def _image(data, title):
    return '<img src="data:image/png;base64,%s" alt="%s" title="%s">' % (
        base64.b64encode(data).decode("ascii"), html.escape(title), html.escape(title))


def _number(value, digits=4):
    return "&ndash;" if value is None or not np.isfinite(value) else "%.*g" % (digits, value)


_STYLE = """body{font-family:sans-serif;margin:1em 2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eee}
td.map{padding:2px;text-align:center}img{image-rendering:pixelated;width:%dpx;background:#f4c2c2}
details{margin:.3em 0}pre{font-size:85%%;white-space:pre-wrap}.note{color:#555}"""


def build_html(title, facts, materials, methods, reference=None, notes=()):
    """The report page (a str).

    title: the heading; facts: ``[(name, value)]`` about the run (the scene, the window, the pixels); materials:
    the P row names; methods: :class:`MethodReport` s in column order; reference: (P, rows, cols) reference
    abundances in row order, or None; notes: lines shown under the heading."""
    rows, cols = methods[0].rmse.shape
    width = int(np.clip(cols * 2, 96, 320))
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8"><title>%s</title>' % esc(title),
           "<style>%s</style></head><body>" % (_STYLE % width), "<h1>%s</h1>" % esc(title), "<table>"]
    out += ["<tr><th>%s</th><td>%s</td></tr>" % (esc(name), esc(str(value))) for name, value in facts]
    out.append("</table>")
    out += ['<p class="note">%s</p>' % esc(note) for note in notes]

    scored = reference is not None
    keys = [key for key in SCORES if scored and key in methods[0].scores]
    out.append("<h2>Summary</h2><table><tr><th>Method</th><th>Seconds</th><th>Weights used</th>"
               "<th>Reconstruction RMSE (RMSE_Y)</th>%s</tr>" % "".join("<th>%s</th>" % key for key in keys))
    for m in methods:
        out.append('<tr class="method" id="row-%s"><td>%s</td><td>%.1f</td><td>%s</td><td>%s</td>%s</tr>'
                   % (esc(m.method), esc(m.label), m.seconds, esc(m.weights), _number(overall_rmse(m.rmse)),
                      "".join("<td>%s</td>" % _number(m.scores[key]) for key in keys)))
    out.append("</table>")
    if scored:
        out.append('<p class="note">RMSE_A = sqrt(mean (A - A*)^2) over the pixels valid in both (the DeepGU paper, '
                   'eq. 14)%s, each method\'s materials matched to the reference\'s (the permutation of least %s). '
                   'RMSE_Y from each method\'s per-pixel reconstruction error.</p>'
                   % (("; RMSE_M the same on the per-pixel endmembers, SAM_M the mean over pixels of the sum over "
                       "materials of their spectral angle to the true ones, in radians (eq. 15; FCLS\'s endmembers "
                       "are ENDMEMBERS at every pixel)", "mean spectral angle") if "SAM_M" in keys else
                      ("", "abundance RMSE")))

    out.append("<h2>Abundance maps</h2><p class=\"note\">black 0, white 1; nodata transparent.</p><table><tr>"
               "<th>Material</th>%s%s</tr>" % ("<th>Reference</th>" if scored else "",
                                                "".join("<th>%s</th>" % esc(m.label) for m in methods)))
    for p, name in enumerate(materials):
        cells = [] if reference is None else [reference[p]]
        cells += [m.abundances[p] for m in methods]
        labels = ([] if reference is None else ["reference"]) + [m.method for m in methods]
        out.append("<tr><th>%s</th>%s</tr>" % (esc(name), "".join(
            '<td class="map">%s</td>' % _image(map_png(values, 0.0, 1.0), "abundance %s %s" % (label, name))
            for label, values in zip(labels, cells))))
    out.append("</table>")

    white = rmse_white([m.rmse for m in methods])
    out.append("<h2>Reconstruction error</h2><p class=\"note\">per-pixel RMSE sqrt(mean_l (y - M_n a)^2), black 0, "
               "white %s (the largest %gth percentile among the methods) or more.</p><table><tr>%s</tr><tr>%s</tr>"
               "</table>" % (_number(white), RMSE_WHITE_PERCENTILE,
                             "".join("<th>%s</th>" % esc(m.label) for m in methods),
                             "".join('<td class="map">%s</td>' % _image(map_png(m.rmse, 0.0, white),
                                                                         "rmse %s" % m.method) for m in methods)))
    out.append("<h2>Logs</h2>")
    out += ["<details><summary>%s</summary><pre>%s</pre></details>" % (esc(m.label), esc("\n".join(m.log)))
            for m in methods]
    out.append("</body></html>")
    return "\n".join(out)
