"""``python -m loadtest --help`` lists every wsgauge option; every console script's ``--help`` works.

Locust prints its own ``--help`` before importing the locustfiles, so wsgauge's options must be listed by a
command of ours, built from the same hook. Everything runs in subprocesses: importing Locust here would
monkeypatch the test process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib

import configargparse
import pytest

from loadtest._settings import add_arguments
from tests.loadtest.locust_runs import LOCUSTFILES, REPO_ROOT, locust_env

pytestmark = pytest.mark.timeout(120)


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=REPO_ROOT, env=env or locust_env(), capture_output=True, text=True, timeout=60
    )


def hook_options() -> dict[str, str]:
    """``{--option: WSGAUGE_ENV_VAR}`` of every option the hook registers."""
    parser = configargparse.ArgumentParser()
    add_arguments(parser)
    group = next(g for g in parser._action_groups if g.title == "wsgauge")
    return {a.option_strings[0]: a.env_var for a in group._group_actions}


def test_python_m_loadtest_help_lists_every_option_the_hook_registers() -> None:
    proc = run(sys.executable, "-m", "loadtest", "--help")
    assert proc.returncode == 0, proc.stderr
    options = hook_options()
    assert len(options) >= 25
    text = re.sub(r"\s+", " ", proc.stdout)  # env var notes may wrap
    for flag, env_var in options.items():
        assert re.search(rf"(^|\s){re.escape(flag)}\b", proc.stdout), flag
        assert f"[env var: {env_var}]" in text, env_var
    assert "locust -f loadtest" in proc.stdout


def test_the_lister_has_the_same_options_as_locusts_parser() -> None:
    """Locust's real parser, with the lifecycle's ``init_command_line_parser`` hook, has exactly these."""
    script = (
        "import json, loadtest._lifecycle\n"
        "from locust.argument_parser import get_parser\n"
        "from loadtest.__main__ import build_parser\n"
        "def wsgauge(p):\n"
        "    g = next(g for g in p._action_groups if g.title == 'wsgauge')\n"
        "    return sorted(a.option_strings[0] for a in g._group_actions)\n"
        "print(json.dumps([wsgauge(get_parser()), wsgauge(build_parser())]))\n"
    )
    proc = run(sys.executable, "-c", script)
    assert proc.returncode == 0, proc.stderr
    locust, lister = json.loads(proc.stdout.splitlines()[-1])
    assert locust == lister == sorted(hook_options())


def test_the_lister_checks_values_like_locust() -> None:
    proc = run(sys.executable, "-m", "loadtest", "--peers", "-1")
    assert proc.returncode == 2
    assert "--peers" in proc.stderr and "Traceback" not in proc.stderr


def test_locust_directory_loading_skips_the_lister() -> None:
    """``-f loadtest`` imports the entry files and the public user API only: ``__main__.py`` (and every ``_``
    module) is skipped, and the user API's abstract ``ProtocolUser`` is no user to run."""
    script = (
        "import json, sys\n"
        "from locust.argument_parser import parse_locustfile_paths\n"
        "print(json.dumps(parse_locustfile_paths([sys.argv[1]])))\n"
    )
    proc = run(sys.executable, "-c", script, str(LOCUSTFILES))
    assert proc.returncode == 0, proc.stderr
    names = sorted(os.path.basename(p) for p in json.loads(proc.stdout.splitlines()[-1]))
    assert names == ["backend.py", "students.py", "user_api.py"]
    listed = run(sys.executable, "-m", "locust", "-f", str(LOCUSTFILES), "--list")
    assert listed.returncode == 0, listed.stderr
    assert "StudentUser" in listed.stdout and "ChurnUser" in listed.stdout
    assert "ProtocolUser" not in listed.stdout and "WsUser" not in listed.stdout


def console_scripts() -> dict[str, str]:
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def run_entry_point(name: str, target: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Call a console script's ``module:function`` as its installed wrapper does, with ``argv``."""
    module, function = target.split(":")
    script = (
        "import sys\n"
        f"from {module} import {function} as main\n"
        f"sys.argv = [{name!r}, *sys.argv[1:]]\n"
        "sys.exit(main())\n"
    )
    return run(sys.executable, "-c", script, *argv)


@pytest.mark.parametrize(("name", "target"), sorted(console_scripts().items()))
def test_every_console_scripts_help_works(name: str, target: str) -> None:
    proc = run_entry_point(name, target, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "Traceback" not in proc.stderr
    subcommands = re.search(r"\{([a-z,-]+)\}", proc.stdout.split("\n\n")[0])
    for sub in subcommands[1].split(",") if subcommands else ():
        sub_proc = run_entry_point(name, target, sub, "--help")
        assert sub_proc.returncode == 0, (sub, sub_proc.stderr)
        assert sub_proc.stdout.startswith("usage:"), sub
