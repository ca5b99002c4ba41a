"""Settings of this repository's own test suite, which an installed plugin must not impose on other
projects: verify.plugin is active in every pytest run of an environment where the package is
installed, so it touches no other library's global state, and this suite's hypothesis profiles live
here. "ci" (whenever CI is set): derandomized, no example database, no deadline, slow examples
allowed, so a CI run is reproducible; "dev": no deadline (a forward pass of a model is slow)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
