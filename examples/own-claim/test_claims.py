import pytest


@pytest.mark.claim("residual_norm")
def test_residual_norm(measurement, params, claim, verdict):
    verdict(claim.checks(measurement, params))
