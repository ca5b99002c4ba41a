"""The `verify` command: every subcommand answers --help with its own usage."""

import shutil
import subprocess

import pytest

from verify import cli


def test_verify_lists_its_subcommands():
    verify = shutil.which("verify")
    assert verify, "the console script is installed with the package"
    out = subprocess.run([verify, "--help"], capture_output=True, text=True, check=True).stdout
    assert all(name in out for name in cli.COMMANDS)


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: verify {name}"), out


def test_an_unknown_subcommand_is_refused(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown subcommand 'trian'" in capsys.readouterr().err
