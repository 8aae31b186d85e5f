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


def _update(
    client: flask.testing.FlaskClient, dep: dict, inputs: list, state: list, changed: str
) -> flask.Response:
    outputs = [
        {"id": o.split(".")[0], "property": o.split(".")[1].split("@")[0]}
        for o in dep["output"].strip(".").split("...")
    ]
    body = {
        "output": dep["output"],
        "outputs": outputs,
        "inputs": [{**spec, "value": value} for spec, value in zip(dep["inputs"], inputs, strict=True)],
        "state": [{**spec, "value": value} for spec, value in zip(dep["state"], state, strict=True)],
        "changedPropIds": [changed],
    }
    return client.post("/_dash-update-component", json=body)


def test_selecting_a_run_draws_its_timeline_in_the_same_round_trip(stores: Stores) -> None:
    client = create_app(stores.path).server.test_client()
    deps = client.get("/_dash-dependencies").json
    select = next(d for d in deps if d["output"].startswith("..run-state.data"))
    draw = next(d for d in deps if d["output"].startswith("..timeline.figure...view-state.data"))
    search = f"?run={stores.run.run_id}"
    reply = _update(client, select, [search, None, None], [["p50", "p99"], 0, None, None], "url.search")
    assert reply.status_code == 200
    out = reply.json["response"]
    figure, view = out["timeline"]["figure"], out["view-state"]["data"]
    assert figure["data"] and view["run"] == stores.run.run_id
    assert view["selection"]["metrics"] == out["metrics"]["value"]
    assert view["selection"]["server"] == out["server-families"]["value"]
    assert "Whole run" in out["range-label"]["children"]
    # The draw callback that the new run state and selection trigger next has nothing left to do ...
    state = out["run-state"]["data"]
    values = [state, out["metrics"]["value"], ["p50", "p99"], out["server-families"]["value"], None, 0, None]
    assert _update(client, draw, values, [view], "run-state.data").status_code == 204
    # ... until the user changes what is drawn.
    values[2] = ["p50", "p99", "max"]
    redraw = _update(client, draw, values, [view], "percentiles.value")
    assert redraw.status_code == 200
    assert redraw.json["response"]["view-state"]["data"]["selection"]["percentiles"] == ["p50", "p99", "max"]
