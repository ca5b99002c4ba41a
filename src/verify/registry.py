"""The one registry of claims, domains and data sources.

A claim is declared once, as data: its name, the domain whose subjects it applies to, the dataclass
of its manifest parameters, the function that measures it on a subject, the function that judges
the measurement against the parameters' bounds, and the version of its metric definition (bumped
whenever the definition changes, so numbers from different definitions are never compared).

Everything else reads this registry: the pytest plugin (the `claim` marker, manifest checks), the
negative-control tests, the discovery and rebuild tools. The built-in domains register themselves
when their module is imported; this module finds them, and any other package's, through the
`verify.claims` entry-point group, so it imports no domain itself. A claim can also be registered
from a conftest.py or a test module (`verify.register_claim`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

ENTRY_POINT_GROUP = "verify.claims"


@dataclass(frozen=True)
class DataSource:
    """A `[data] source` value: which domain it serves and what else it reads."""

    name: str
    domain: str
    options: type | None = None  # dataclass of the source's own [data] keys (e.g. a puzzle grid size)
    open: Callable[[Any], Any] | None = None  # manifest -> opened data, at subject load (may raise SourceUnavailable)
    needs_path: bool = False  # the [data] path key names the data
    files: Callable[[Any], list] | None = None  # manifest -> the local data files read (hashed into the ledger)
    # subject -> (model inputs, what they are): a small fixed batch for activation fingerprints
    fingerprint_batch: Callable[[Any], tuple[Any, str]] | None = None


@dataclass(frozen=True)
class Domain:
    """What a domain checks the same way for every claim of its own, so that no claim, built in or
    registered from a conftest.py, can skip it: `sae_fidelity(subject, sae_name, params)` returns
    the checks that the SAE reconstructs this model (verify.fidelity, on the claim's data) and is
    applied to every SAE a claim's parameters name (a field of kind verify.params.SAEName);
    `competence(subject, params)` returns the checks that the model does the domain's task, read
    from the manifest's `competence_claim` table, and is applied to every claim that declares
    `assumes_competence`."""

    name: str
    sae_fidelity: Callable[[Any, str, Any], list] | None = None
    competence: Callable[[Any, Any], list] | None = None
    competence_claim: str | None = None


@dataclass(frozen=True)
class Measured:
    """A claim's measurement and the checks of what it rests on. `value` is None when a
    precondition failed: nothing is measured on a subject the claim's words do not apply to."""

    value: Any
    preconditions: list


@dataclass(frozen=True)
class Claim:
    """A finding, declared once. `measure(subject, params)` returns numbers with intervals (no
    asserts); `judge(measurement, params)` returns the checks (verify.verdicts) they must pass.
    What the claim's words assume is checked first, on the same data (`precondition_checks`): the
    framework applies its domain's competence check when the claim declares `assumes_competence`,
    and its SAE fidelity check to every SAE the parameters name, with no code of the claim's own;
    `preconditions(subject, params)` adds any other checks the claim needs (between the two). `rests_on` names the
    claims whose manifest tables those checks read, so a manifest that lacks them is refused (the
    domain's competence table is added to it at registration).
    `figures(subject, params, measurement)` draws nothing itself: it returns the data of the
    claim's pictures (a board map, a histogram) for the report."""

    name: str
    domain: str
    params: type
    measure: Callable[[Any, Any], Any]
    judge: Callable[[Any, Any], list]
    version: int
    summary: str = ""
    preconditions: Callable[[Any, Any], list] | None = None
    rests_on: tuple[str, ...] = ()
    assumes_competence: bool = False  # the claim's words take for granted that the model does its domain's task
    # (subject, params, measurement) -> report pictures (verify.ledger figures); only when a report is asked for
    figures: Callable[[Any, Any, Any], list] | None = None

    def precondition_checks(self, subject, params) -> list:
        """The domain's competence check (if the claim assumes it), the claim's own preconditions,
        then the domain's SAE fidelity check for each SAE the parameters name (what the model does
        before what is read from it). Where the model already fails what the claim assumes, its SAEs
        are not measured: the claim fails on that line (an SAE's loss recovered on a model that does
        nothing may not even be measurable). A ValueError: not measurable."""
        from verify.params import SAERef, kinds
        from verify.verdicts import failures

        domain = get_domain(self.domain)
        checks = []
        if self.assumes_competence:
            checks += domain.competence(subject, params)  # present: register_claim refused the claim otherwise
        checks += self.preconditions(subject, params) if self.preconditions else []
        if failures(checks):
            return checks
        for field, kind in kinds(self.params).items():
            if isinstance(kind, SAERef):
                if domain is None or domain.sae_fidelity is None:
                    raise ValueError(f"claim {self.name} reads SAE {getattr(params, field)!r} (field {field}), but domain "
                                     f"{self.domain!r} registers no SAE fidelity check (verify.registry.register_domain)")
                checks += domain.sae_fidelity(subject, getattr(params, field), params)
        return checks

    def measure_on(self, subject, params) -> Measured:
        """Preconditions first; the measurement only where they hold."""
        from verify.verdicts import failures

        pre = self.precondition_checks(subject, params)
        return Measured(None if failures(pre) else self.measure(subject, params), pre)

    def checks(self, measured: Measured, params) -> list:
        """The precondition checks, then (if they held) the claim's own."""
        own = [] if measured.value is None else self.judge(measured.value, params)
        return [*measured.preconditions, *own]

    def check(self, subject, params) -> list:
        """Measure on `subject` and judge against `params`: the list of checks and notes."""
        return self.checks(self.measure_on(subject, params), params)


_CLAIMS: dict[str, Claim] = {}
_SOURCES: dict[str, DataSource] = {}
_DOMAINS: dict[str, Domain] = {}
_loaded_entry_points = False


def _same_definition(a, b) -> bool:
    """Re-importing a module (e.g. a conftest seen twice) registers an equal definition again."""
    key = lambda x: (type(x).__name__, getattr(x, "__module__", None), getattr(x, "__qualname__", x))  # noqa: E731
    return all(key(getattr(a, f)) == key(getattr(b, f)) for f in a.__dataclass_fields__)


def register_claim(claim: Claim) -> Claim:
    if not isinstance(claim.version, int) or claim.version < 1:
        raise ValueError(f"claim {claim.name!r}: version must be an int >= 1, got {claim.version!r}")
    if claim.assumes_competence:
        domain = get_domain(claim.domain)
        if domain is None or domain.competence is None:
            raise ValueError(f"claim {claim.name!r} assumes competence, but domain {claim.domain!r} registers no competence check")
        if domain.competence_claim not in claim.rests_on:  # the check reads that table: a manifest must declare it
            claim = dataclasses.replace(claim, rests_on=(*claim.rests_on, domain.competence_claim))
    old = _CLAIMS.get(claim.name)
    if old is not None and not _same_definition(old, claim):
        raise ValueError(f"claim {claim.name!r} is already registered by {old.measure.__module__}")
    _CLAIMS[claim.name] = claim
    return claim


def register_domain(domain: Domain) -> Domain:
    """A domain's shared checks; registered by the domain's module before its claims."""
    old = _DOMAINS.get(domain.name)
    if old is not None and not _same_definition(old, domain):
        raise ValueError(f"domain {domain.name!r} is already registered")
    _DOMAINS[domain.name] = domain
    return domain


def get_domain(name: str) -> Domain | None:
    if name not in _DOMAINS:  # a claim registered from a conftest.py before the domains' entry points ran
        load_entry_points()
    return _DOMAINS.get(name)


def register_source(source: DataSource) -> DataSource:
    old = _SOURCES.get(source.name)
    if old is not None and not _same_definition(old, source):
        raise ValueError(f"data source {source.name!r} is already registered for domain {old.domain!r}")
    _SOURCES[source.name] = source
    return source


def load_entry_points() -> None:
    """Import every module registered under the `verify.claims` entry-point group (once)."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def claims() -> dict[str, Claim]:
    load_entry_points()
    return dict(_CLAIMS)


def get_claim(name: str) -> Claim | None:
    load_entry_points()
    return _CLAIMS.get(name)


def sources() -> dict[str, DataSource]:
    load_entry_points()
    return dict(_SOURCES)


def domains() -> list[str]:
    return sorted({s.domain for s in sources().values()})
