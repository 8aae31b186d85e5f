"""The app factory, mounting, credentials and the command line, without a browser (Flask's test client)."""

from __future__ import annotations

import base64

import flask
import pytest

from monitor.__main__ import is_loopback, main
from monitor.app import TOKEN_COOKIE, MonitorAuth, create_app
from monitor.callbacks import parse_relayout, parse_run_param
from tests.monitor.conftest import Stores


def test_mounts_under_another_flask_server(stores: Stores) -> None:
    host = flask.Flask("locust-like")

    @host.route("/")
    def index() -> str:
        return "host index"

    create_app(stores.path, server=host, url_base_pathname="/monitor/")
    create_app(stores.missing, server=host, url_base_pathname="/other/")  # two monitors, one process
    client = host.test_client()
    assert client.get("/").text == "host index"
    page = client.get("/monitor/")
    assert page.status_code == 200 and "wsgauge monitor" in page.text
    deps = client.get("/monitor/_dash-dependencies").json
    assert len(deps) >= 5
    assert len(client.get("/other/_dash-dependencies").json) == len(deps)
    with pytest.raises(ValueError):
        create_app(stores.path, url_base_pathname="monitor")


def test_credentials_are_required_when_configured(stores: Stores) -> None:
    app = create_app(stores.path, auth=MonitorAuth(token="s3cret", user="admin", password="pw"))
    client = app.server.test_client()
    refused = client.get("/")
    assert refused.status_code == 401 and "Basic" in refused.headers["WWW-Authenticate"]
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    basic = base64.b64encode(b"admin:pw").decode()
    assert client.get("/_dash-layout", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    first = client.get("/?token=s3cret")
    assert first.status_code == 200 and TOKEN_COOKIE in first.headers["Set-Cookie"]
    assert client.get("/_dash-layout").status_code == 200  # the cookie carries the token from now on
    with pytest.raises(ValueError):
        MonitorAuth(user="admin")


def test_relayout_parsing() -> None:
    assert parse_relayout(None) == ("none", None)
    assert parse_relayout({"autosize": True}) == ("none", None)
    assert parse_relayout({"xaxis.autorange": True}) == ("auto", None)
    what, rng = parse_relayout(
        {"xaxis.range[0]": "2023-11-14 22:13:20", "xaxis.range[1]": "2023-11-14 22:15:00.5"}
    )
    assert what == "range" and rng == (1_700_000_000.0, 1_700_000_100.5)
    assert parse_relayout({"xaxis.range": [1_700_000_100_000, 1_700_000_000_000]}) == (
        "range",
        (1_700_000_000.0, 1_700_000_100.0),
    )
    assert (
        parse_run_param("?run=7&x=1") == 7
        and parse_run_param("?run=x") is None
        and parse_run_param(None) is None
    )


def test_command_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--results" in capsys.readouterr().out
    for name in ("WSGAUGE_MONITOR_TOKEN", "WSGAUGE_MONITOR_USER", "WSGAUGE_MONITOR_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--host", "0.0.0.0", "--results", "x.sqlite3"]) == 2
    assert "refusing to serve on 0.0.0.0 without credentials" in capsys.readouterr().err
    assert main(["--host", "127.0.0.1", "--user", "admin"]) == 2
