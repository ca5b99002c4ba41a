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


def drawable(m: Measured) -> bool:
    """Rates, correlations and margins share one axis; counts and sizes would flatten them."""
    return m.value is not None and abs(m.value) <= 1.0


def checks_chart(record: ClaimRecord) -> bytes | None:
    """Each judged value (and note) of one claim as a bar with its 95% interval; the allowed range
    drawn behind it, so a bar outside its band is a check that failed."""
    lines = [m for m in record.checks if drawable(m)]
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(lines) + 1.2))
    y = np.arange(len(lines))[::-1]
    for yi, m in zip(y, lines):
        colour = NOTE if m.kind == "note" else (HELD if m.passed else FAILED)
        ax.barh(yi, m.value, color=colour, alpha=0.8, height=0.6)
        if m.lo is not None and m.hi is not None:
            ax.errorbar(m.value, yi, xerr=[[m.value - m.lo], [m.hi - m.value]], color="black", capsize=3, lw=1)
        if m.kind == "check":
            lo = -1.05 if m.bound_lo is None else max(m.bound_lo, -1.05)
            hi = 1.05 if m.bound_hi is None else min(m.bound_hi, 1.05)
            ax.plot([lo, hi], [yi, yi], color=BOUND, lw=10, alpha=0.18, solid_capstyle="butt")
            for bound in (m.bound_lo, m.bound_hi):
                if bound is not None and abs(bound) <= 1.05:
                    ax.plot([bound, bound], [yi - 0.4, yi + 0.4], color=BOUND, lw=2)
    ax.set_yticks(y, [short(m.what) for m in lines], fontsize=8)
    lows = [min(m.lo if m.lo is not None else m.value, m.bound_lo if m.bound_lo is not None else 0) for m in lines]
    ax.set_xlim(min(-0.05, min(lows) - 0.05), 1.05)
    ax.axvline(0, color="black", lw=0.5)
    ax.set_title(f"{record.claim} on {record.subject}: {record.verdict}", fontsize=10)
    ax.set_xlabel("value with 95% interval; blue band and ticks: the allowed range; grey: reported, not judged", fontsize=8)
    return png(fig)


def short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def board(figure: BoardFigure) -> bytes:
    values = np.array([[math.nan if v is None else v for v in row] for row in figure.values], dtype=float)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    limit = np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=ax, label=figure.label, fraction=0.046)
    ax.set_xticks(range(8), [str(c) for c in range(8)])
    ax.set_yticks(range(8), list(ROWS))
    for square in figure.marked:
        r, c = ROWS.index(square[0]), int(square[1])
        ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", lw=3))
    ax.set_title(figure.title, fontsize=9)
    return png(fig)


def histogram(figure: HistogramFigure) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    edges = np.asarray(figure.edges)
    for name, counts in figure.series.items():
        total = max(sum(counts), 1)
        ax.stairs(np.asarray(counts) / total, edges, label=f"{name} ({sum(counts)})", fill=False, lw=1.5)
    ax.set_xlabel(figure.label)
    ax.set_ylabel("fraction of cases")
    ax.legend(fontsize=8)
    ax.set_title(figure.title, fontsize=9)
    return png(fig)


def figure_png(figure) -> bytes:
    return board(figure) if isinstance(figure, BoardFigure) else histogram(figure)


def series_chart(claim: str, records: list[ClaimRecord]) -> bytes | None:
    """One claim across subjects (e.g. checkpoints in training order): each judged value with its
    interval per subject, and its bounds dashed, so one sees when a finding emerged. Lines are
    matched by their words, so a precondition that failed early shows as its own line."""
    whats = list(dict.fromkeys(m.what for r in records for m in r.checks if m.kind == "check" and drawable(m)))
    if len(records) < 2 or not whats:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = np.arange(len(records))
    colours = plt.cm.tab20.colors
    for i, what in enumerate(whats):
        points = [(xi, m) for xi, r in zip(x, records) for m in r.checks if m.what == what and drawable(m)]
        colour = colours[i % len(colours)]
        ys = [m.value for _, m in points]
        lo = [m.value - (m.lo if m.lo is not None else m.value) for _, m in points]
        hi = [(m.hi if m.hi is not None else m.value) - m.value for _, m in points]
        ax.errorbar([p[0] for p in points], ys, yerr=[lo, hi], marker="o", color=colour, capsize=3, label=short(what, 55))
        last = points[-1][1]
        for b in (last.bound_lo, last.bound_hi):
            if b is not None and abs(b) < 1.0:
                ax.plot([x[0] - 0.2, x[-1] + 0.2], [b, b], color=colour, ls="--", lw=0.8, alpha=0.7)
    ax.set_xticks(x, [f"{r.subject}\n{r.verdict}" for r in records], fontsize=8)
    ax.set_title(f"{claim} per subject (dashed: bounds)", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return png(fig)
