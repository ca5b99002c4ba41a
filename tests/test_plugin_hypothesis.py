"""The installed plugin changes only what it owns (#22 item 6): a project with its own hypothesis
profile keeps it, with CI set or not; this repository's profiles come from its root conftest.py."""

import pytest

from tests.test_plugin import run

PROJECT_CONFTEST = '''
from hypothesis import settings
settings.register_profile("mine", max_examples=7, deadline=1234)
settings.load_profile("mine")
'''
PROJECT_TEST = '''
from hypothesis import settings
def test_the_project_profile_is_in_force():
    current = settings()
    # the project's own values (the plugin used to load its "dev" or "ci" profile over them: deadline None)
    assert (current.max_examples, current.deadline.total_seconds() * 1000) == (7, 1234), current
'''


@pytest.mark.parametrize("ci", [None, "1"], ids=["local", "CI"])
def test_a_project_keeps_its_own_hypothesis_profile(pytester, monkeypatch, ci):
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(PROJECT_CONFTEST)
    pytester.makepyfile(test_profile=PROJECT_TEST)
    # the plugin is active (installed, through its pytest11 entry point); a fresh process, since the
    # project loads its own profile, which is hypothesis' global state
    result = run(pytester, env={"CI": ci} if ci else {}, fresh=True)
    result.assert_outcomes(passed=1)


def test_this_repository_s_profile_comes_from_its_root_conftest():
    from hypothesis import settings

    assert settings().deadline is None  # "dev" or "ci", registered and loaded by the root conftest.py
