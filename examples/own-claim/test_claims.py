import pytest


@pytest.mark.claim("residual_norm")
def test_residual_norm(subject, params, claim, verdict):
    verdict(claim.check(subject, params))
