"""Writing the tables a tool owns into a manifest, keeping everything else as the user wrote it.

Rebuild and discovery tools own some tables ([model], [data], [claims.legal_move_rate], ...). They
rewrite those through tomlkit, which keeps every other table, comment and layout: a claim table
added by hand survives a rebuild.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit


def _value(value: Any):
    """Plain data as TOML items: a dict inside a table stays an inline table (sha256 = { ... })."""
    if isinstance(value, dict):
        inline = tomlkit.inline_table()
        inline.update({k: _value(v) for k, v in value.items()})
        return inline
    if isinstance(value, tuple):
        return list(value)
    return value


def _table(values: dict, comment: str = ""):
    table = tomlkit.table()
    for line in comment.splitlines():
        table.add(tomlkit.comment(line))
    for key, value in values.items():
        table.add(key, _value(value))
    return table


def update_manifest(path: Path, tables: dict[str, dict], top: dict | None = None, comments: dict[str, str] | None = None,
                    header: str = "") -> None:
    """Set the top-level keys `top` and replace each table named in `tables` (dotted: "saes.resid",
    "claims.solved_rate") by exactly the given values, with `comments[name]` as comment lines at its
    top. Other tables and keys are left as they are. A missing file is created with `header`."""
    path = Path(path)
    doc = tomlkit.parse(path.read_text()) if path.exists() else tomlkit.document()
    if not path.exists():
        for line in header.splitlines():
            doc.add(tomlkit.comment(line))
    for key, value in (top or {}).items():
        doc[key] = value
    comments = comments or {}
    for dotted, values in tables.items():
        parent, *rest = dotted.split(".")
        if not rest:
            doc[parent] = _table(values, comments.get(dotted, ""))
            continue
        if parent not in doc:
            doc.add(tomlkit.nl())
            doc[parent] = tomlkit.table(is_super_table=True)
        container = doc[parent]
        for part in rest[:-1]:  # a named instance: [claims.NAME.INSTANCE] under a [claims.NAME] of instances
            if part not in container:
                container[part] = tomlkit.table(is_super_table=True)
            container = container[part]
        container[rest[-1]] = _table(values, comments.get(dotted, ""))
    path.write_text(tomlkit.dumps(doc))


def set_keys(path: Path, dotted: str, values: dict) -> None:
    """Set some keys of an existing table (dotted name), leaving its other keys and comments."""
    doc = tomlkit.parse(Path(path).read_text())
    table = doc
    for part in dotted.split("."):
        if part not in table:  # e.g. a table an extending manifest inherits: its parent's to change
            inherited = f" (it extends {doc['extends']}: set them in the manifest that declares [{dotted}])" if "extends" in doc else ""
            raise ValueError(f"{path}: no [{dotted}] table of its own to set {', '.join(values)} in{inherited}")
        table = table[part]
    for key, value in values.items():
        table[key] = _value(value)
    Path(path).write_text(tomlkit.dumps(doc))
