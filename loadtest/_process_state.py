"""Per-process state of a load run, shared by the users of one Locust process.

The run lifecycle (``loadtest._lifecycle``) builds one :class:`Runtime` per process when the test starts and
attaches it to the Locust ``Environment``; users find it with :func:`runtime`. It holds the resolved target,
the credentials, the identity allocator and the process's :class:`~runstore.samples.SampleAggregator` --
the first hop of the data flow (users -> samples -> run store -> monitor and reports).

Identities: every simulated user gets a stable, unique user id. Students are placed in conversation groups of
``peers + 1`` consecutive users of the same process, so each one's chat partners are other simulated users
that really connect and receive what is sent to them.
"""

from __future__ import annotations

import itertools
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest._settings import LoadSettings, SettingsError
from nextauth_tokens import V4_COOKIE, V5_COOKIE, cookie_header, mint_v4, mint_v5
from runstore.samples import SampleAggregator

__all__ = [
    "Credentials",
    "Identity",
    "IdentityAllocator",
    "Runtime",
    "install",
    "read_cookies_file",
    "runtime",
]

TOKEN_LIFETIME_S = 7 * 86400
"""Minted session tokens expire a week after minting: well beyond any run."""


@dataclass(frozen=True)
class Identity:
    """Who a simulated user is."""

    user_id: str
    cookie: str | None
    """``Cookie`` header value for the upgrade request, or ``None`` (no credential)."""
    peers: tuple[str, ...] = ()
    """User ids of its conversation partners (students only)."""


def read_cookies_file(path: Path) -> list[tuple[str, str]]:
    """Read ``USER_ID COOKIE_HEADER`` lines (blank lines and ``#`` comments skipped).

    Raises:
        SettingsError: naming the file and line that cannot be used.
    """
    identities: list[tuple[str, str]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"--cookies-file {path}: cannot read it ({exc})") from exc
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split(None, 1)
        if len(parts) != 2 or "=" not in parts[1]:
            raise SettingsError(
                f"--cookies-file {path}:{number}: expected 'USER_ID name=value[; name=value]',"
                f" got {text[:60]!r}"
            )
        identities.append((parts[0], parts[1]))
    if not identities:
        raise SettingsError(f"--cookies-file {path}: no cookies in it")
    return identities


class Credentials:
    """Makes the ``Cookie`` header of each simulated user, as ``--auth`` says.

    Args:
        settings: the run's settings.
        secret: the NextAuth secret to mint with (the embedded server's, or ``--secret``).
        clock: unix time, for token ``iat``/``exp``.
    """

    def __init__(
        self, settings: LoadSettings, secret: str | None, clock: Callable[[], float] = time.time
    ) -> None:
        self.mode = settings.auth
        self._secret = secret
        self._clock = clock
        if self.mode in ("v4", "v5") and not secret:
            raise SettingsError(f"--auth {self.mode} needs --secret")
        default_name = V4_COOKIE if self.mode == "v4" else V5_COOKIE
        self.cookie_name = settings.cookie_name or default_name
        self._file: list[tuple[str, str]] = []
        if self.mode == "cookies":
            assert settings.cookies_file is not None
            self._file = read_cookies_file(settings.cookies_file)

    @property
    def fixed_identities(self) -> Sequence[tuple[str, str]]:
        """``--auth cookies``: the ``(user_id, cookie)`` pairs of the file; otherwise empty."""
        return self._file

    def mint(self, user_id: str) -> str | None:
        """Return the ``Cookie`` header value for ``user_id`` (``None`` with ``--auth none``)."""
        if self.mode == "none":
            return None
        assert self._secret is not None
        claims = {"sub": user_id, "name": user_id, "email": f"{user_id}@wsgauge.invalid"}
        now = self._clock()
        if self.mode == "v4":
            token = mint_v4(self._secret, claims, now=now, max_age=TOKEN_LIFETIME_S)
        else:
            token = mint_v5(
                self._secret, claims, cookie_name=self.cookie_name, now=now, max_age=TOKEN_LIFETIME_S
            )
        return cookie_header(token, self.cookie_name)


class IdentityAllocator:
    """Hands out identities to the users of one process, in spawn order.

    Args:
        credentials: how to make each user's cookie.
        process_tag: distinguishes processes (``w0``, ``w1`` ...), so user ids are unique across workers.
        group_size: students per conversation group (``peers + 1``).
    """

    def __init__(self, credentials: Credentials, process_tag: str, group_size: int) -> None:
        self._credentials = credentials
        self._tag = process_tag
        self._group_size = max(1, group_size)
        self._counters: dict[str, itertools.count[int]] = {}
        self._allocated: dict[str, list[str]] = {}

    def allocate(self, persona: str) -> Identity:
        """Return the next identity for a user of ``persona`` (``student``, ``backend``, ``churn`` ...)."""
        counter = self._counters.setdefault(persona, itertools.count())
        index = next(counter)
        fixed = self._credentials.fixed_identities
        if fixed:
            user_id, cookie = fixed[index % len(fixed)]
            group = self._group_of(index, len(fixed))
            peers = tuple(fixed[i % len(fixed)][0] for i in group if i != index)
            self._allocated.setdefault(persona, []).append(user_id)
            return Identity(user_id, cookie, tuple(p for p in peers if p != user_id))
        user_id = self._user_id(persona, index)
        peers = tuple(self._user_id(persona, i) for i in self._group_of(index) if i != index)
        self._allocated.setdefault(persona, []).append(user_id)
        return Identity(user_id, self._credentials.mint(user_id), peers)

    def _user_id(self, persona: str, index: int) -> str:
        return f"{persona}-{self._tag}-{index}"

    def _group_of(self, index: int, limit: int | None = None) -> range:
        start = index - index % self._group_size
        stop = start + self._group_size
        if limit is not None:
            stop = min(stop, max(limit, start + 1))
        return range(start, stop)


@dataclass
class Runtime:
    """What the users of one process share during a run."""

    settings: LoadSettings
    ws_url: str
    """The target WebSocket endpoint (the embedded server's when no ``--host`` was given)."""
    http_base: str
    """The target's HTTP base URL (``http://127.0.0.1:8765``)."""
    admin_token: str | None
    identities: IdentityAllocator
    aggregator: SampleAggregator = field(default_factory=SampleAggregator)
    users: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    """Live users of this process. Each has ``connection_state`` (one of
    :data:`runstore.names.CONNECTION_STATES`) and ``queue_size`` (its client-side outbound queue); the
    lifecycle samples them once a second into the ``users.*`` and ``queue_size`` gauges."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Lifecycle-private state (the run id, greenlets ...): users do not touch it."""


_ATTRIBUTE = "wsgauge_runtime"


def install(environment: Any, state: Runtime) -> None:
    """Attach ``state`` to a Locust ``Environment``."""
    setattr(environment, _ATTRIBUTE, state)


def runtime(environment: Any) -> Runtime:
    """Return the process's :class:`Runtime`.

    Raises:
        RuntimeError: if the wsgauge lifecycle did not set one up (the users were loaded without
            ``loadtest._lifecycle``'s listeners, e.g. from a foreign locustfile).
    """
    state = getattr(environment, _ATTRIBUTE, None)
    if state is None:
        raise RuntimeError("wsgauge runtime not installed: run the users with `locust -f loadtest`")
    return state
