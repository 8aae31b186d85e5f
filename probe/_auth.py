"""The probe users' credentials, with the load test's options: a NextAuth secret to mint cookies with, a
file of cookies, or a file of Bearer tokens.

Minted cookies are renewed before they expire (:meth:`Credentials.headers` mints afresh once a day), so a
probe that runs for months never meets the server's 4001 "session expired" close.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nextauth_tokens import V4_COOKIE, V5_COOKIE, cookie_header, mint_v4, mint_v5

__all__ = ["AUTH_MODES", "AuthMode", "Credentials", "CredentialsError", "read_identity_file"]

AuthMode = Literal["v4", "v5", "cookies", "bearer", "none"]
AUTH_MODES: tuple[AuthMode, ...] = ("v4", "v5", "cookies", "bearer", "none")
TOKEN_LIFETIME_S = 7 * 86400
RENEW_AFTER_S = 86400.0


class CredentialsError(ValueError):
    """Credentials that cannot be used; ``str()`` names the option and the problem."""


def read_identity_file(path: Path, option: str) -> list[tuple[str, str]]:
    """``USER_ID VALUE`` lines (blank lines and ``#`` comments skipped), as the load test's --cookies-file.

    Raises:
        CredentialsError: naming the file and line that cannot be used.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"{option} {path}: cannot read it ({exc})") from exc
    found: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(None, 1)
        if len(parts) != 2:
            raise CredentialsError(f"{option} {path}:{number}: expected 'USER_ID VALUE', got {text[:60]!r}")
        found.append((parts[0], parts[1]))
    if len(found) < 2:
        raise CredentialsError(f"{option} {path}: the probe needs two users (two lines), found {len(found)}")
    return found[:2]


@dataclass
class Credentials:
    """How each of the two probe users authenticates its upgrade request.

    Args:
        mode: ``v4``/``v5`` mint a cookie from ``secret``; ``cookies``/``bearer`` read ``USER_ID VALUE`` lines
            from ``path``; ``none`` sends nothing.
        secret: the target's NextAuth secret (``v4``/``v5``).
        cookie_name: the session cookie's name (default: the mode's plain name).
        path: the cookie or token file.
        name: the probe's name: minted user ids are ``probe-<name>-a`` and ``-b``.
    """

    mode: AuthMode
    secret: str | None = None
    cookie_name: str | None = None
    path: Path | None = None
    name: str = "probe"
    clock: Callable[[], float] = time.time
    user_ids: list[str] = field(init=False)
    _fixed: list[str] = field(init=False, default_factory=list)
    _minted: dict[int, tuple[float, str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in AUTH_MODES:
            raise CredentialsError(f"--auth must be one of {', '.join(AUTH_MODES)}, not {self.mode!r}")
        if self.mode in ("v4", "v5"):
            if not self.secret:
                raise CredentialsError(f"--auth {self.mode} needs --secret (the target's NextAuth secret)")
            self.user_ids = [f"probe-{self.name}-a", f"probe-{self.name}-b"]
        elif self.mode in ("cookies", "bearer"):
            option = "--cookies-file" if self.mode == "cookies" else "--bearer-file"
            if self.path is None:
                raise CredentialsError(f"--auth {self.mode} needs {option} FILE")
            pairs = read_identity_file(self.path, option)
            self.user_ids = [user for user, _ in pairs]
            self._fixed = [value for _, value in pairs]
        else:
            self.user_ids = [f"probe-{self.name}-a", f"probe-{self.name}-b"]

    def headers(self, user: int) -> dict[str, str]:
        """The upgrade request's headers for probe user ``user`` (0 or 1)."""
        if self.mode == "none":
            return {}
        if self.mode == "cookies":
            return {"Cookie": self._fixed[user]}
        if self.mode == "bearer":
            return {"Authorization": f"Bearer {self._fixed[user]}"}
        now = self.clock()
        minted = self._minted.get(user)
        if minted is None or now - minted[0] > RENEW_AFTER_S:
            minted = (now, self._mint(self.user_ids[user], now))
            self._minted[user] = minted
        return {"Cookie": minted[1]}

    def renew(self, user: int) -> None:
        """Mint a fresh cookie for ``user`` at its next connect (the server closed with 4001, expired)."""
        self._minted.pop(user, None)

    def _mint(self, user_id: str, now: float) -> str:
        assert self.secret is not None
        claims = {"sub": user_id, "name": user_id, "email": f"{user_id}@wsgauge.invalid"}
        if self.mode == "v4":
            name = self.cookie_name or V4_COOKIE
            return cookie_header(mint_v4(self.secret, claims, now=now, max_age=TOKEN_LIFETIME_S), name)
        name = self.cookie_name or V5_COOKIE
        token = mint_v5(self.secret, claims, cookie_name=name, now=now, max_age=TOKEN_LIFETIME_S)
        return cookie_header(token, name)
