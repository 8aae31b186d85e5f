"""The probe's credentials: minted cookies the server's own authenticate() accepts, cookie and token files."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextauth_tokens import AuthConfig, authenticate
from probe._auth import RENEW_AFTER_S, Credentials, CredentialsError

T0 = 1_800_000_000.0


@pytest.mark.parametrize("mode", ["v4", "v5"])
def test_minted_cookies_authenticate_as_the_probe_users_and_are_renewed_daily(mode: str) -> None:
    now = [T0]
    credentials = Credentials(mode, secret="s3cret", name="prod", clock=lambda: now[0])  # type: ignore[arg-type]
    assert credentials.user_ids == ["probe-prod-a", "probe-prod-b"]
    config = AuthConfig(("s3cret",))
    for user in (0, 1):
        cookie = credentials.headers(user)["Cookie"]
        assert authenticate(cookie, None, config, now=T0).user_id == credentials.user_ids[user]
    first = credentials.headers(0)
    assert credentials.headers(0) == first  # not minted on every connect
    now[0] = T0 + RENEW_AFTER_S + 1
    renewed = credentials.headers(0)
    assert renewed != first
    assert authenticate(renewed["Cookie"], None, config, now=now[0]).user_id == "probe-prod-a"
    credentials.renew(0)  # after a 4001 close
    assert credentials.headers(0) != renewed


def test_cookie_and_bearer_files(tmp_path: Path) -> None:
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# probe users\nu1 next-auth.session-token=abc\n\nu2 next-auth.session-token=def\n")
    credentials = Credentials("cookies", path=cookies)
    assert credentials.user_ids == ["u1", "u2"]
    assert credentials.headers(1) == {"Cookie": "next-auth.session-token=def"}
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("u1 tok1\nu2 tok2\n")
    assert Credentials("bearer", path=tokens).headers(0) == {"Authorization": "Bearer tok1"}
    assert Credentials("none").headers(0) == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "v4"}, "--auth v4 needs --secret"),
        ({"mode": "cookies"}, "--auth cookies needs --cookies-file"),
        ({"mode": "bearer", "path": Path("/nonexistent/tokens")}, "cannot read it"),
        ({"mode": "nonsense"}, "--auth must be one of"),
    ],
)
def test_unusable_credentials_name_the_option(kwargs: dict, message: str) -> None:
    with pytest.raises(CredentialsError, match=message):
        Credentials(**kwargs)


def test_a_file_with_one_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cookies.txt"
    path.write_text("u1 a=b\n")
    with pytest.raises(CredentialsError, match="needs two users"):
        Credentials("cookies", path=path)
