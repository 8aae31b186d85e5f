"""The wsgauge options, parsed as Locust parses them (configargparse), into LoadSettings."""

from __future__ import annotations

import socket
from pathlib import Path

import configargparse
import pytest

from loadtest._settings import SettingsError, add_arguments, http_base_of, settings_from


def parse(*argv: str, env: dict[str, str] | None = None):
    parser = configargparse.ArgumentParser()
    parser.add_argument("-H", "--host", default=None)
    parser.add_argument("-u", "--users", dest="num_users", type=int, default=None)
    add_arguments(parser)
    return settings_from(parser.parse_args(list(argv), env_vars=env or {}))


def test_defaults_are_the_embedded_closed_model() -> None:
    s = parse()
    assert s.host is None and s.http_base is None and s.auth == "v4"
    assert s.open_rate == 0 and s.open_rate_per_user(20) == 0
    assert s.results == Path("results/wsgauge.sqlite3") and s.report and s.use_acks


def test_host_gives_http_base_and_needs_a_secret_to_mint() -> None:
    with pytest.raises(SettingsError, match="needs --secret"):
        parse("--host", "ws://127.0.0.1:9/ws")
    s = parse("--host", "wss://127.0.0.1:9/ws", "--secret", "s3cret")
    assert s.http_base == "https://127.0.0.1:9"
    assert parse("--host", "ws://127.0.0.1:9/ws", "--auth", "none").secret is None


@pytest.mark.parametrize("url", ["http://127.0.0.1/ws", "127.0.0.1:8765", "ws:///ws", ""])
def test_bad_host_names_the_option(url: str) -> None:
    with pytest.raises(SettingsError, match="--host"):
        http_base_of(url)


def test_open_model_per_user_or_in_total() -> None:
    assert parse("--open-rate", "5").open_rate_per_user(100) == 5
    total = parse("--open-total-rate", "1000", "--open-arrivals", "poisson")
    assert total.open_rate_per_user(100) == 10 and total.open_poisson
    assert total.open_rate_per_user(None) == 1000
    with pytest.raises(SettingsError, match="not both"):
        parse("--open-rate", "5", "--open-total-rate", "1000")


def test_environment_variables_are_read() -> None:
    s = parse(env={"WSGAUGE_SEED": "7", "WSGAUGE_ACKS": "false", "WSGAUGE_BATCH_SIZE": "10"})
    assert (s.seed, s.use_acks, s.batch_size) == (7, False, 10)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--auth", "cookies"], "--cookies-file"),
        (["--auth", "cookies", "--cookies-file", "/nonexistent/cookies.txt"], "no such file"),
        (["--reconnect-base-ms", "500", "--reconnect-max-ms", "100"], "--reconnect-max-ms"),
        (["--batch-size", "1"], "--batch-size"),
    ],
)
def test_unusable_combinations_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse(*argv)


@pytest.mark.parametrize("argv", [["--think-scale", "-1"], ["--peers", "-2"], ["--acks", "maybe"]])
def test_bad_values_are_rejected_by_the_parser(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


def test_results_honours_wsgauge_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "runs.sqlite3"
    assert parse(env={"WSGAUGE_RESULTS": str(store)}).results == store
    monkeypatch.setenv("WSGAUGE_RESULTS", str(store))  # the default, as runstore.location reads it
    assert parse().results == store
    assert parse("--results", "other.sqlite3").results == Path("other.sqlite3")


@pytest.mark.parametrize("value", ["redis://127.0.0.1:6379/0", "sqlite:///x.sqlite3", " "])
def test_results_that_name_no_store_are_refused(
    value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as exited:  # Locust's parser: usage error, exit 2
        parse("--results", value)
    assert exited.value.code == 2
    assert "--results" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(env={"WSGAUGE_RESULTS": value})
    # options that bypass the parser (the web UI, code) are refused by settings_from, naming the option
    parser = configargparse.ArgumentParser()
    parser.add_argument("-H", "--host", default=None)
    add_arguments(parser)
    options = parser.parse_args([])
    options.results = value
    with pytest.raises(SettingsError, match="--results"):
        settings_from(options)


def test_a_dead_host_is_named_before_its_missing_credentials() -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, then closed
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    with pytest.raises(SettingsError) as raised:
        parse("--host", f"ws://127.0.0.1:{dead}/ws")
    message = str(raised.value)
    assert message.startswith(f"cannot reach ws://127.0.0.1:{dead}/ws: connection refused; also ")
    assert message.endswith("needs --secret (the server's NextAuth secret)")
    with pytest.raises(SettingsError, match=r"^cannot reach .*; also --auth cookies needs --cookies-file"):
        parse("--host", f"ws://127.0.0.1:{dead}/ws", "--auth", "cookies")


def test_a_live_host_gets_only_the_credentials_complaint() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(SettingsError) as raised:
            parse("--host", f"ws://127.0.0.1:{port}/ws")
    assert str(raised.value).startswith("--auth v4 against --host")
