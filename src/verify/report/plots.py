"""The report's pictures, drawn with matplotlib (Agg) from ledger records into PNG bytes."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from verify.ledger import BoardFigure, ClaimRecord, HistogramFigure, Measured  # noqa: E402

ROWS = "ABCDEFGH"
HELD, FAILED, NOTE, BOUND = "#2e7d32", "#c62828", "#757575", "#1565c0"


def png(fig) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out.getvalue()


def span(values) -> tuple[float, float]:
    """Axis limits that show every given number (values, interval ends, bounds) with a margin,
    whatever their unit: a rate near 1, a loss of 4.11 nats, a count of 300."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return -1.0, 1.0
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.08 if hi > lo else max(abs(hi) * 0.1, 0.05)
    return lo - pad, hi + pad


def checks_chart(record: ClaimRecord) -> bytes | None:
    """Each judged value (and note) of one claim on its own axis, scaled to its value, interval
    and bounds: a point with its 95% interval, the allowed range drawn behind it, so a point
    outside its band is a check that failed. A line without a value (NaN) says so."""
    lines = record.checks
    if not lines:
        return None
    with plt.rc_context({"text.parse_math": False}):  # names and titles are text, never TeX
        fig, axes = plt.subplots(len(lines), 1, figsize=(8, 0.62 * len(lines) + 1.0), squeeze=False)
        for ax, m in zip(axes[:, 0], lines):
            colour = NOTE if m.kind == "note" else (HELD if m.passed else FAILED)
            lo, hi = span([m.value, m.lo, m.hi, m.bound_lo, m.bound_hi])
            ax.set_xlim(lo, hi)
            ax.set_ylim(-1, 1)
            ax.set_yticks([0], [short(m.what)], fontsize=8)
            ax.tick_params(axis="x", labelsize=7)
            if m.kind == "check":
                band_lo = lo if m.bound_lo is None else m.bound_lo
                band_hi = hi if m.bound_hi is None else m.bound_hi
                ax.axvspan(band_lo, band_hi, color=BOUND, alpha=0.15, lw=0)
                for bound in (m.bound_lo, m.bound_hi):
                    if bound is not None:
                        ax.axvline(bound, color=BOUND, lw=2)
            if m.value is None:
                ax.text(0.5, 0, "no value (NaN)", transform=ax.get_yaxis_transform(), ha="center", va="center",
                        color=FAILED, fontsize=8)
                continue
            low = m.value if m.lo is None else m.lo
            high = m.value if m.hi is None else m.hi
            ax.errorbar(m.value, 0, xerr=[[max(m.value - low, 0)], [max(high - m.value, 0)]], fmt="o", color=colour,
                        ecolor="black", capsize=4, lw=1, ms=7)
            ax.annotate(f"{m.value:.4g}", (m.value, 0), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=7)
        axes[0, 0].set_title(f"{record.claim} on {record.subject}: {record.verdict}", fontsize=10)
        axes[-1, 0].set_xlabel("each line on its own scale: value with 95% interval; blue band and lines: the allowed "
                               "range; grey: reported, not judged", fontsize=8)
        fig.tight_layout()
        return png(fig)


def short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def board(figure: BoardFigure) -> bytes:
    values = np.array([[math.nan if v is None else v for v in row] for row in figure.values], dtype=float)
    with plt.rc_context({"text.parse_math": False}):
        fig, ax = plt.subplots(figsize=(4.6, 4))
        limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
        limit = limit if limit > 0 else 1.0
        image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
        fig.colorbar(image, ax=ax, label=figure.label, fraction=0.046)
        ax.set_xticks(range(8), [str(c) for c in range(8)])
        ax.set_yticks(range(8), list(ROWS))
        for square in figure.marked:  # A0..H7, validated by the ledger's model
            r, c = ROWS.index(square[0]), int(square[1])
            ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", lw=3))
        ax.set_title(figure.title, fontsize=9)
        return png(fig)


def histogram(figure: HistogramFigure) -> bytes:
    with plt.rc_context({"text.parse_math": False}):
        fig, ax = plt.subplots(figsize=(6, 3.2))
        edges = np.asarray(figure.edges)
        for name, counts in figure.series.items():  # one count per bin, validated by the ledger's model
            total = max(sum(counts), 1)
            ax.stairs(np.asarray(counts) / total, edges, label=f"{name} ({sum(counts)})", fill=False, lw=1.5)
        ax.set_xlabel(figure.label)
        ax.set_ylabel("fraction of cases")
        if figure.series:
            ax.legend(fontsize=8)
        ax.set_title(figure.title, fontsize=9)
        return png(fig)


def figure_png(figure) -> bytes:
    return board(figure) if isinstance(figure, BoardFigure) else histogram(figure)


def series_chart(claim: str, records: list[ClaimRecord]) -> bytes | None:
    """One claim across subjects (e.g. checkpoints in training order): each judged line on its own
    panel, scaled to its values, intervals and bounds, with each subject's value and interval and
    its bounds as dashes, so one sees when a finding emerged. Lines are matched by their words, so
    a precondition that failed early shows as its own panel."""
    whats = list(dict.fromkeys(m.what for r in records for m in r.checks if m.kind == "check"))
    if len(records) < 2 or not whats:
        return None
    columns = min(len(whats), 2)
    rows = -(-len(whats) // columns)
    x = np.arange(len(records))
    with plt.rc_context({"text.parse_math": False}):
        fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.0 * rows + 0.6), squeeze=False)
        for ax in axes.flat[len(whats):]:
            ax.set_visible(False)
        for ax, what in zip(axes.flat, whats):
            points = [(xi, m) for xi, r in zip(x, records) for m in r.checks if m.what == what and m.kind == "check"]
            shown = [(xi, m) for xi, m in points if m.value is not None]
            if shown:
                ys = [m.value for _, m in shown]
                lo = [max(m.value - (m.lo if m.lo is not None else m.value), 0) for _, m in shown]
                hi = [max((m.hi if m.hi is not None else m.value) - m.value, 0) for _, m in shown]
                colours = [HELD if m.passed else FAILED for _, m in shown]
                ax.errorbar([p[0] for p in shown], ys, yerr=[lo, hi], color="black", capsize=3, lw=0.8, zorder=1)
                ax.scatter([p[0] for p in shown], ys, c=colours, zorder=2)
            for xi, m in points:
                for b in (m.bound_lo, m.bound_hi):
                    if b is not None:
                        ax.plot([xi - 0.3, xi + 0.3], [b, b], color=BOUND, ls="--", lw=1.2)
            low, high = span([v for _, m in points for v in (m.value, m.lo, m.hi, m.bound_lo, m.bound_hi)])
            ax.set_ylim(low, high)
            ax.set_xlim(-0.5, len(records) - 0.5)
            ax.set_xticks(x, [f"{r.subject}\n{r.verdict}" for r in records], fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.set_title(short(what, 80), fontsize=8)
        fig.suptitle(f"{claim} per subject (green held, red failed; dashed: bounds)", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title above the panels
        return png(fig)
