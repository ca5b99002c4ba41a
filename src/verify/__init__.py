"""verify: mechanistic-interpretability findings as pytest claims, re-checked on every checkpoint.

What a claim written outside this package needs:

    from verify import Check, Claim, register_claim       # declare and register a claim
    from verify.params import Hook, SAEName, FeatureOf    # parameter kinds checked at collection
    from verify.activations import hook_activations       # activations at one hook, batched
    from verify import stats                              # estimates with cluster-bootstrap intervals
"""

from verify.registry import Claim, DataSource, register_claim, register_source
from verify.verdicts import Check, Note, point

__all__ = ["Check", "Claim", "DataSource", "Note", "point", "register_claim", "register_source"]
