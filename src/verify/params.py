"""Kinds of claim parameters that can be checked against a subject before any weights are loaded.

A claim's parameter dataclass annotates its fields with these, e.g.

    @dataclass(frozen=True)
    class FeatureClaim:
        sae: SAEName
        feature: Annotated[int, FeatureOf("sae")]   # < d_sae of the SAE named by field `sae`
        hook: VectorHook = "blocks.0.hook_resid_post"
        neuron: Annotated[int, UnitOf("hook")] = 0  # < last-axis width of that hook

and `check_params` refuses, naming the manifest and field, a hook the model does not have, an SAE
the manifest does not declare, an index outside the width it indexes; `check_values` refuses NaN,
a value outside its kind's Range (Fraction, Correlation, Count) and a min_X above its max_X. A kind
may annotate an optional field (`Annotated[str | None, SAERef()] = None`, a claim naming one of two
alternatives): None, the field left out, is not checked and names nothing. Layer and head indices (`Layer`, `Head`) are checked against the
model's n_layers and n_heads. Hook points and widths come
from the subject's `Shape`, which the loaders derive from the model's config alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass
from typing import Annotated


@dataclass(frozen=True)
class HookPoint:
    """A hook point name of the model; `vector`: one activation vector per position (batch, pos, width)."""

    vector: bool = False


@dataclass(frozen=True)
class SAERef:
    """The name of an SAE declared in the manifest's [saes] tables."""


@dataclass(frozen=True)
class FeatureOf:
    """An index into the features of the SAE named by another field."""

    sae_field: str


@dataclass(frozen=True)
class UnitOf:
    """An index into the last axis (neurons, dimensions) of the hook named by another field."""

    hook_field: str


@dataclass(frozen=True)
class LayerIndex:
    """A block index of the model: < n_layers."""


@dataclass(frozen=True)
class HeadIndex:
    """An attention head index of the model: < n_heads; with `whole`, -1 means no one head (the whole hook)."""

    whole: bool = False


@dataclass(frozen=True)
class Range:
    """A number that must lie in [lo, hi] (None: unbounded on that side)."""

    lo: float | None = None
    hi: float | None = None


Fraction = Annotated[float, Range(0.0, 1.0)]  # a rate or proportion
Correlation = Annotated[float, Range(-1.0, 1.0)]
Count = Annotated[int, Range(0, None)]
Hook = Annotated[str, HookPoint()]
VectorHook = Annotated[str, HookPoint(vector=True)]
SAEName = Annotated[str, SAERef()]
Layer = Annotated[int, LayerIndex()]
Head = Annotated[int, HeadIndex()]
HeadOrWhole = Annotated[int, HeadIndex(whole=True)]  # -1: the whole hook


@dataclass(frozen=True)
class SAEShape:
    hook: str
    d_in: int | None
    d_sae: int | None


@dataclass(frozen=True)
class Shape:
    """What is known about a subject without its weights. `hooks`: hook name -> activation shape for
    a (1 game, 2 positions) input, batch axis dropped; None when the architecture is not known yet
    (a config on the hub); each SAE's widths likewise (None: unknown until downloaded)."""

    hooks: dict[str, tuple[int, ...]] | None
    saes: dict[str, SAEShape]


def kinds(cls) -> dict[str, object]:
    hints = typing.get_type_hints(cls, include_extras=True)
    found = {}
    for f in dataclasses.fields(cls):
        for meta in getattr(hints[f.name], "__metadata__", ()):
            found[f.name] = meta
    return found


def check_values(params, where: str) -> list[str]:
    """Problems a parameter set has whatever the subject: NaN, a value outside its kind's range,
    a min_X above its max_X."""
    problems = []
    field_kinds = kinds(type(params))
    values = dataclasses.asdict(params)
    for name, value in values.items():
        numbers = value.values() if isinstance(value, dict) else [value]
        for number in numbers:
            if isinstance(number, float) and math.isnan(number):
                problems.append(f"{where} {name}: NaN is not a bound")
            kind = field_kinds.get(name)
            if isinstance(kind, Range) and isinstance(number, (int, float)):
                if (kind.lo is not None and number < kind.lo) or (kind.hi is not None and number > kind.hi):
                    problems.append(f"{where} {name}: {number} is outside [{kind.lo}, {kind.hi}]")
    for name, value in values.items():
        partner = "max_" + name[4:] if name.startswith("min_") else None
        if partner in values and isinstance(value, (int, float)) and isinstance(values[partner], (int, float)) and value > values[partner]:
            problems.append(f"{where} {name}: {value} is above {partner} = {values[partner]}")
    return problems


def vacuous_bounds(table: dict, where: str) -> list[str]:
    """Bounds written in a claim table that make their check unable to fail: min_X = -inf and
    max_X = +inf. (A claim's own default of +inf, e.g. an upper bound it does not impose, is its
    design; a manifest that wants no bound on a side leaves the key out.)"""
    vacuous = {"min_": -math.inf, "max_": math.inf}
    return [f"{where} {key}: {value} bounds nothing (a check against it cannot fail); leave the key out for the claim's default"
            for key, value in table.items() for prefix, bad in vacuous.items()
            if key.startswith(prefix) and isinstance(value, float) and value == bad]


def check_params(params, shape: Shape, where: str) -> list[str]:
    """Problems with `params` for a subject of this shape, each as '<where> <field>: <what>'."""
    problems = []
    for name, kind in kinds(type(params)).items():
        value = getattr(params, name)
        at = f"{where} {name}"
        if value is None:  # an optional field left out (e.g. `Annotated[str | None, SAERef()] = None`): nothing to check
            continue
        if isinstance(kind, SAERef) and value not in shape.saes:
            problems.append(f"{at}: {value!r} is not declared under [saes] (declared: {', '.join(shape.saes) or 'none'})")
        elif isinstance(kind, HookPoint) and shape.hooks is not None:
            if value not in shape.hooks:
                near = difflib.get_close_matches(value, list(shape.hooks), n=3)
                problems.append(f"{at}: the model has no hook point {value!r}" + (f" (did you mean {', '.join(near)}?)" if near else ""))
            elif kind.vector and len(shape.hooks[value]) != 2:
                problems.append(f"{at}: {value!r} has shape {('pos',) + shape.hooks[value][1:]} per input, "
                                "not one vector per position")
        elif isinstance(kind, FeatureOf):
            sae = shape.saes.get(getattr(params, kind.sae_field))
            if sae is not None and sae.d_sae is not None and not 0 <= value < sae.d_sae:
                problems.append(f"{at}: feature {value} is outside the SAE's {sae.d_sae} features (0..{sae.d_sae - 1})")
        elif isinstance(kind, LayerIndex) and shape.hooks is not None:
            n_layers = layer_count(shape.hooks)
            if not 0 <= value < n_layers:
                problems.append(f"{at}: layer {value} is outside the model's {n_layers} layers (0..{n_layers - 1})")
        elif isinstance(kind, HeadIndex) and shape.hooks is not None and not (kind.whole and value == -1):
            n_heads = head_count(shape.hooks)
            if not 0 <= value < n_heads:
                whole = " or -1 for the whole hook" if kind.whole else ""
                problems.append(f"{at}: head {value} is outside the model's {n_heads} heads (0..{n_heads - 1}{whole})")
        elif isinstance(kind, UnitOf) and shape.hooks is not None:
            hook = getattr(params, kind.hook_field)
            width = shape.hooks.get(hook, (None,))[-1]
            if width is not None and not 0 <= value < width:
                problems.append(f"{at}: index {value} is outside the {width} units of {hook} (0..{width - 1})")
    return problems


def layer_count(hooks: dict[str, tuple[int, ...]]) -> int:
    """n_layers, from the hook points the model's blocks have."""
    return len({name.split(".")[1] for name in hooks if name.startswith("blocks.") and name.endswith(".hook_resid_pre")})


def head_count(hooks: dict[str, tuple[int, ...]]) -> int:
    """n_heads, from the first block's attention pattern (heads, query, key)."""
    return hooks["blocks.0.attn.hook_pattern"][0]
