"""``python -m runstore`` (``wsgauge-runs``): shared options on either side of the subcommand, ``--results``
through :mod:`runstore.location` (a URL is exit 2, never a file), ``--help`` of every subcommand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runstore.__main__ import main
from runstore.location import ENVIRONMENT_VARIABLE
from runstore.store import RunInfo, RunStore

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "runs.sqlite3"
    with RunStore.open(path) as runs:
        for name in ("first", "second", "third"):
            run = runs.create_run(RunInfo(name=name, target="ws://127.0.0.1:1/ws", started_at=1000.0))
            runs.finish_run(run, "completed", ended_at=1010.0)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_results_on_either_side_of_the_subcommand(
    store: Path, before: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    def argv(command: str, *rest: str) -> list[str]:
        option = ["--results", str(store)]
        return [*option, command, *rest] if before else [command, *rest, *option]

    code, out, err = _run(capsys, *argv("list"))
    assert code == 0, err
    assert [line.split()[-6] for line in out.splitlines()[1:]] == ["third", "second", "first"]
    code, out, _ = _run(capsys, *argv("prune", "--keep", "2", "--dry-run"))
    assert code == 0 and "would delete 1 run(s): [1]" in out
    code, out, _ = _run(capsys, *argv("delete", "1"))
    assert code == 0 and f"deleted 1 run(s) from {store}" in out


def test_the_subcommand_side_wins_when_both_are_given(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, "--results", str(tmp_path / "elsewhere.sqlite3"), "list", "--results", str(store)
    )
    assert code == 0 and "third" in out


def test_the_environment_names_the_default_store(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(store))
    code, out, _ = _run(capsys, "list")
    assert code == 0 and "second" in out


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_a_url_is_refused_never_a_file(
    tmp_path: Path, before: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    url = ["--results", "redis://127.0.0.1:6379/0"]
    code, out, err = _run(capsys, *([*url, "list"] if before else ["list", *url]))
    assert code == 2 and not out
    assert "'redis://' stores are not supported" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "mysql://user@host/db")
    code, _, err = _run(capsys, "prune", "--keep", "1")
    assert code == 2 and err.startswith(f"python -m runstore: ${ENVIRONMENT_VARIABLE}: run store 'mysql:")
    assert list(tmp_path.iterdir()) == []  # no folder named 'redis:', no store in it


def test_an_unreachable_database_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--results", "postgresql://postgres:hunter2@127.0.0.1:1/none", "list")
    assert code == 2 and not out and len(err.strip().splitlines()) == 1
    assert "cannot connect to the run store postgresql://postgres:***@127.0.0.1:1/none" in err
    assert "hunter2" not in err


def test_list_on_postgresql_shows_host_and_tag(postgres_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with RunStore.open(postgres_url) as runs:
        runs.create_run(RunInfo(name="probe-a", target="ws://x/ws", kind="probe", host="edge-1", tag="prod"))
    code, out, err = _run(capsys, "--results", postgres_url, "list")
    assert code == 0, err
    assert "probe-a" in out and "edge-1" in out and "prod" in out and "probe" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["delete"], "the following arguments are required: RUN"),
        (["list", "--keep", "2"], "unrecognized arguments: --keep 2"),
        (["prune"], "prune: give --keep N and/or --older-than DAYS"),
        (["--results", "", "list"], "the run store location is empty"),
    ],
)
def test_bad_command_lines_exit_2_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "command", [[], ["list"], ["delete"], ["prune"]], ids=["top", "list", "delete", "prune"]
)
def test_help_of_every_subcommand(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m runstore {' '.join(command)}".rstrip())
    assert "--results STORE" in out and ENVIRONMENT_VARIABLE in out


def test_console_script_in_a_subprocess(store: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runstore", "list", "--results", str(store)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "third" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "runstore", "--results", "sqlite:///h/db", "list"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 2 and "not supported" in proc.stderr and "Traceback" not in proc.stderr
