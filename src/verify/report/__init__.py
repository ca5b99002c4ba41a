"""The claims report: DIR/report.html (self-contained, pictures embedded) and DIR/report.md
(pictures in DIR/figures/), built from a ledger and, optionally, its comparison with a baseline.

Per subject: the claims table (verdict, reason), each claim's checks with intervals and bounds,
a chart of them, the claim's own pictures (a board map, a histogram). When several subjects share
a claim (a checkpoint series), a chart per claim across subjects, in the ledger's order, each under
its claim's heading. With a baseline, the drift table. Every name and reason from the ledger is
escaped (HTML in report.html, Markdown in report.md) and never parsed as math in a picture.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from verify.drift import Comparison
from verify.ledger import ClaimRecord, Ledger, Measured
from verify.report import plots


def value_text(m: Measured) -> str:
    if m.value is None:
        return "nan"
    return f"{m.value:.4f}" if m.lo == m.hi == m.value else f"{m.value:.4f} [{m.lo:.4f}, {m.hi:.4f}]"


def bounds_text(m: Measured) -> str:
    if m.kind == "note":
        return "reported"
    if m.bound_lo is None and m.bound_hi is None:
        return "any"
    if m.bound_lo is None:
        return f"<= {m.bound_hi:.4g}"
    if m.bound_hi is None:
        return f">= {m.bound_lo:.4g}"
    return f"in [{m.bound_lo:.4g}, {m.bound_hi:.4g}]"


MD_SPECIAL = re.compile(r"([\\`*\[\]<|$&~{}])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
LINE_START = re.compile(r"^([#>+=-]|\d+[.)])")


def md(text: str) -> str:
    """`text` as literal Markdown: every character that could start markup backslash-escaped (an
    underscore inside a word, as in claim names, cannot; `>` only at a paragraph's start), on one line."""
    return MD_SPECIAL.sub(lambda m: "\\" + m.group(0), " ".join(str(text).splitlines()))


def md_paragraph(text: str) -> str:
    """A paragraph that may not begin like a heading, quote, list or rule."""
    escaped = md(text)
    return LINE_START.sub(lambda m: "\\" + m.group(0), escaped)


def mark(m: Measured) -> str:
    return "info" if m.kind == "note" else ("PASS" if m.passed else "FAIL")


class Page:
    """The report's content, written once as HTML and once as Markdown."""

    def __init__(self, folder: Path) -> None:
        self.html: list[str] = []
        self.md: list[str] = []
        self.figures = folder / "figures"
        self.written: list[Path] = []

    def heading(self, level: int, text: str) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md += ["#" * level + " " + md(text), ""]

    def text(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md += [md_paragraph(text), ""]

    def table(self, header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> None:
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(f"<tr class='{c}'>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                       for row, c in zip(rows, classes or [""] * len(rows)))
        self.html.append(f"<table><tr>{cells}</tr>{body}</table>")
        self.md += ["| " + " | ".join(md(h) for h in header) + " |", "|" + "---|" * len(header),
                    *("| " + " | ".join(md(v) for v in row) + " |" for row in rows), ""]

    def image(self, data: bytes | None, name: str, alt: str) -> None:
        if data is None:
            return
        self.figures.mkdir(parents=True, exist_ok=True)
        path = self.figures / f"{len(self.written):03d}-{slug(name)}.png"
        path.write_bytes(data)
        self.written.append(path)
        encoded = base64.b64encode(data).decode("ascii")
        self.html.append(f"<figure><img src='data:image/png;base64,{encoded}' alt='{html.escape(alt)}'>"
                         f"<figcaption>{html.escape(alt)}</figcaption></figure>")
        self.md += [f"![{md(alt)}](figures/{path.name})", ""]


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")[:60]


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}
tr.held td:first-child,tr.PASS td:first-child{color:#2e7d32}tr.failed td:first-child,tr.FAIL td:first-child{color:#c62828}
tr.not_measurable td:first-child{color:#ef6c00}tr.absent td:first-child{color:#6a1b9a}figure{margin:0.5em 0}img{max-width:100%}figcaption{font-size:12px;color:#555}
pre{background:#f6f6f6;padding:0.6em;font-size:12px;overflow-x:auto}"""


def write(ledger: Ledger, folder: Path, comparison: Comparison | None = None) -> list[Path]:
    """Write report.html and report.md (and figures/) into `folder`; returns the two pages."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    page = Page(folder)
    env = ledger.environment
    page.heading(1, "Claims report")
    versions = ", ".join(f"{k} {v}" for k, v in env.packages.items())
    page.text(f"Created {env.created} on {env.platform}, Python {env.python}; {versions}; "
              f"git commit {env.git_commit or 'unknown'}{' (uncommitted changes)' if env.git_dirty else ''}.")
    summary = [[r.verdict, r.subject, r.claim, str(r.claim_version), r.reason[:160]] for r in ledger.records]
    page.table(["verdict", "subject", "claim", "definition", "reason"], summary, [r[0] for r in summary])
    counts = {v: sum(r.verdict == v for r in ledger.records) for v in ("held", "failed", "absent", "not_measurable", "skipped")}
    page.text(f"{counts['held']} held, {counts['failed']} failed, expected absent: {counts['absent']} (declared absent in "
              f"the manifest and measured not holding), not measurable: {counts['not_measurable']}, skipped: {counts['skipped']}.")
    if comparison is not None:
        drift_section(page, comparison)
    series_section(page, ledger)
    for name, subject in ledger.subjects.items():
        page.heading(2, f"Subject {name}")
        if not subject.available:
            page.text(f"Not available here: {subject.reason}")
        else:
            page.text(f"{subject.domain}; manifest {subject.manifest}; device {subject.device}, {subject.dtype}; "
                      f"seeds {subject.seeds}.")
            page.table(["file", "sha256", "bytes"], [[f.role, f.sha256, str(f.bytes)] for f in subject.files])
        for record in (r for r in ledger.records if r.subject == name):
            claim_section(page, record)
    body = "\n".join(page.html)
    html_path, md_path = folder / "report.html", folder / "report.md"
    html_path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Claims report</title>"
                         f"<style>{STYLE}</style></head><body>{body}</body></html>\n", encoding="utf-8")
    md_path.write_text("\n".join(page.md) + "\n", encoding="utf-8")
    return [html_path, md_path]


def claim_section(page: Page, record: ClaimRecord) -> None:
    verdict = "absent, as declared" if record.verdict == "absent" else record.verdict
    page.heading(3, f"{record.claim} (definition v{record.claim_version}): {verdict}")
    if record.expect == "absent":
        page.text(f"Declared absent on this subject: {record.expect_reason}")
    if record.reason:
        page.text(record.reason)
    if record.checks:
        rows = [[mark(m), m.what, value_text(m), bounds_text(m)] for m in record.checks]
        page.table(["", "measured", "value [95% CI]", "required"], rows, [r[0] for r in rows])
        page.image(plots.checks_chart(record), f"{record.subject}-{record.claim}", f"{record.claim} on {record.subject}: each value, its interval and its allowed range")
    for figure in record.figures:
        page.image(plots.figure_png(figure), f"{record.subject}-{record.claim}-{figure.kind}", figure.title)


def series_section(page: Page, ledger: Ledger) -> None:
    by_claim: dict[str, list[ClaimRecord]] = {}
    for name in ledger.subjects:
        for r in ledger.records:
            if r.subject == name:
                by_claim.setdefault(r.claim, []).append(r)
    shared = {claim: rs for claim, rs in by_claim.items() if len(rs) >= 2}
    if not shared:
        return
    page.heading(2, "Claims across subjects")
    page.text("Each claim's judged values per subject, in the ledger's order (for a checkpoint series: training order).")
    for claim, records in shared.items():
        page.heading(3, claim)
        rows = [[r.subject, r.verdict, next((f"{m.what} = {value_text(m)}, required {bounds_text(m)}" for m in r.checks
                                             if m.kind == "check" and not m.passed), r.reason[:120])] for r in records]
        page.table(["subject", "verdict", "first failed check or reason"], rows, [r[1] for r in rows])
        page.image(plots.series_chart(claim, records), f"series-{claim}", f"{claim} per subject")


def drift_section(page: Page, comparison: Comparison) -> None:
    page.heading(2, "Drift against the baseline")
    page.text(comparison.verdict_line())
    rows = [[r.status, r.subject, r.claim, r.what, "-" if r.old is None else f"{r.old:.4f}", "-" if r.new is None else f"{r.new:.4f}",
             "-" if r.change is None else f"{r.change:+.4f}", "-" if r.tolerance is None else f"{r.tolerance:.4f}"]
            for r in comparison.rows]
    page.table(["status", "subject", "claim", "measured", "old", "new", "change", "tolerance"], rows,
               ["FAIL" if r[0] == "moved" else "" for r in rows])
    moved_lines = [f"{s}: {line}" for s, lines in comparison.fingerprints.items() for line in lines]
    if moved_lines:
        page.text("Fingerprints that moved: " + "; ".join(moved_lines))
    if comparison.changes:
        page.text(("Changed from the baseline (accepted): " if comparison.accept_changed else "Changed from the baseline: ")
                  + "; ".join(comparison.changes))
    if comparison.skipped:
        page.text("Not compared (baseline subjects this run did not measure): " + ", ".join(comparison.skipped))
