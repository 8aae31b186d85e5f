"""NextAuth.js (v4) and Auth.js (v5) session tokens: authenticate requests, mint tokens.

The reference server calls :func:`authenticate` with the ``Cookie`` and ``Authorization`` headers of
a WebSocket upgrade request; the load generator calls :func:`mint_v4` or :func:`mint_v5` once per
simulated user and sends :func:`cookie_header` as its ``Cookie`` header.

Tokens are exactly those of the real libraries (``packages/next-auth/src/jwt/index.ts`` and
``packages/core/src/jwt.ts``), checked against the npm packages by ``tests/interop``:

============  ====================================  ===========================================
version       cookie names                          token
============  ====================================  ===========================================
v4            ``next-auth.session-token``,          JWE ``dir`` / ``A256GCM``, key from
(next-auth)   ``__Secure-next-auth.session-token``  HKDF(secret, salt ``""``), 32 bytes
v5            ``authjs.session-token``,             JWE ``dir`` / ``A256CBC-HS512`` with
(Auth.js)     ``__Secure-authjs.session-token``     ``kid``, key from HKDF(secret, salt = cookie
                                                    name), 64 bytes; ``A256GCM`` also accepted
============  ====================================  ===========================================

Which cookie carried the token decides how it is decoded. How :func:`authenticate` chooses:

1. Every session cookie present is a candidate, in the order of :data:`COOKIE_NAMES` (v5 before
   v4, ``__Secure-`` before plain), each either whole (``name=``) or chunked (``name.0=``,
   ``name.1=`` … joined in the order of the integer suffix). The first candidate that decodes
   wins; if none does, the error of the first one is raised.
2. Only when there is no session cookie at all, as ``getToken()`` in both libraries does, an
   ``Authorization: Bearer <token>`` header is used: the token (URL-decoded) is tried as v5 with
   the salt of the plain v5 cookie (``authjs.session-token``, Auth.js's ``getToken`` default),
   then as v4.
3. Otherwise the request carries no session: :class:`AuthError` with reason ``missing``.

Secret rotation: :attr:`AuthConfig.secrets` lists the current secret first. A v5 token is
decrypted with the secret whose derived key's thumbprint equals its ``kid`` (with the first secret
when it has no ``kid``), like ``@auth/core``'s ``decode``. next-auth v4 itself knows one secret
only; here a v4 token is tried with each configured secret in turn, so that rotation also works.

Claims are validated like ``jose``'s ``jwtDecrypt`` with ``clockTolerance: 15``: ``iat``, ``nbf``
and ``exp`` must be numbers when present; ``nbf`` may be at most the tolerance in the future and
``exp`` must be later than now minus the tolerance (both against the current whole second).
Finally, ``sub`` — the user id — must be a non-empty string.

This module is pure: no I/O and no logging. Bad input raises :class:`AuthError` and nothing else.

"""

from __future__ import annotations

import json
import math
import time
import types
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, NewType

from nextauth_tokens.jwe import (
    A256CBC_HS512,
    A256GCM,
    AuthError,
    decrypt,
    encrypt,
    json_object,
    key_id,
    parse,
    v4_key,
    v5_key,
)

__all__ = [
    "COOKIE_NAMES",
    "V4_COOKIE",
    "V4_SECURE_COOKIE",
    "V5_COOKIE",
    "V5_SECURE_COOKIE",
    "AuthConfig",
    "AuthError",
    "Principal",
    "UserId",
    "authenticate",
    "cookie_header",
    "decode_token",
    "mint_v4",
    "mint_v5",
]

UserId = NewType("UserId", str)
"""The authenticated user's id: the ``sub`` claim of the session token."""

V4_COOKIE: Final = "next-auth.session-token"
V4_SECURE_COOKIE: Final = "__Secure-next-auth.session-token"
V5_COOKIE: Final = "authjs.session-token"
V5_SECURE_COOKIE: Final = "__Secure-authjs.session-token"

COOKIE_NAMES: Final[tuple[str, ...]] = (V5_SECURE_COOKIE, V5_COOKIE, V4_SECURE_COOKIE, V4_COOKIE)
"""Session cookie names, in the order :func:`authenticate` tries them."""

_V4_NAMES: Final = frozenset((V4_COOKIE, V4_SECURE_COOKIE))

# Chunk sizes: ALLOWED_COOKIE_SIZE (4096) - ESTIMATED_EMPTY_COOKIE_SIZE, per library.
_V4_CHUNK_SIZE: Final = 4096 - 163  # next-auth/src/core/lib/cookie.ts
_V5_CHUNK_SIZE: Final = 4096 - 160  # @auth/core/src/lib/utils/cookie.ts
_MAX_CHUNK_DIGITS: Final = 4

DEFAULT_MAX_AGE: Final = 30 * 86400
"""Default session lifetime of both libraries: 30 days."""


@dataclass(frozen=True)
class Principal:
    """The user a valid session token authenticates.

    Attributes:
        user_id: the ``sub`` claim.
        expires_at: the ``exp`` claim (seconds since the epoch), or :obj:`None` if the token has
            none. A connection should be closed when it passes.
        claims: all claims of the token, read-only (``name``, ``email``, ``iat``, ``jti``, …).

    """

    user_id: UserId
    expires_at: float | None
    claims: Mapping[str, Any]


@dataclass(frozen=True)
class AuthConfig:
    """How to validate session tokens.

    Attributes:
        secrets: ``NEXTAUTH_SECRET`` / ``AUTH_SECRET`` values; ``secrets[0]`` is the current one,
            the others (``AUTH_SECRET_1``, …) are older secrets still accepted during rotation.
        clock_tolerance: seconds of clock skew allowed on ``exp`` and ``nbf``; 15 in both
            libraries.

    Raises:
        ValueError: if ``secrets`` is empty or holds anything but non-empty strings, or
            ``clock_tolerance`` is negative or not finite.

    """

    secrets: tuple[str, ...]
    clock_tolerance: float = 15.0

    def __post_init__(self) -> None:
        if isinstance(self.secrets, str):
            raise ValueError("secrets must be a sequence of strings, not a string")
        secrets = tuple(self.secrets)
        if not secrets or not all(isinstance(s, str) and s for s in secrets):
            raise ValueError("secrets must hold at least one non-empty string")
        if not (math.isfinite(self.clock_tolerance) and self.clock_tolerance >= 0):
            raise ValueError("clock_tolerance must be a finite number of seconds >= 0")
        object.__setattr__(self, "secrets", secrets)


def _unquote(value: str) -> str | None:
    """Undo ``decodeURIComponent``, as the cookie parser and ``getToken`` do."""
    if "%" not in value:
        return value
    try:
        return urllib.parse.unquote(value, errors="strict")
    except UnicodeDecodeError:
        return None


def _session_cookies(header: str) -> Iterator[tuple[str, str]]:
    """Yield ``(cookie name, token)`` for each session cookie in a ``Cookie`` header.

    Cookies are parsed like the ``cookie`` package both libraries use: pairs separated by ``;``,
    names and values trimmed, surrounding double quotes removed, the first occurrence of a name
    wins, values URL-decoded when possible. For each name of :data:`COOKIE_NAMES`, the whole
    cookie is yielded first, then the chunks joined, if either is present and non-empty.

    """
    whole: dict[str, str] = {}
    chunks: dict[str, dict[int, str]] = {}
    for pair in header.split(";"):
        name, eq, value = pair.partition("=")
        if not eq:
            continue
        name = name.strip()
        base, dot, suffix = name.rpartition(".")
        if name in COOKIE_NAMES:
            if name in whole:
                continue
            target: dict[Any, str] = whole
            key: Any = name
        elif (
            dot
            and base in COOKIE_NAMES
            and 0 < len(suffix) <= _MAX_CHUNK_DIGITS
            and suffix.isascii()
            and suffix.isdigit()
        ):
            target = chunks.setdefault(base, {})
            key = int(suffix)
            if key in target:
                continue
        else:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        decoded = _unquote(value)
        target[key] = value if decoded is None else decoded
    for name in COOKIE_NAMES:
        if whole.get(name):
            yield name, whole[name]
        if name in chunks:
            joined = "".join(chunks[name][index] for index in sorted(chunks[name]))
            if joined:
                yield name, joined


def _bearer(header: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header, or :obj:`None`."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = rest.strip().split(" ", 1)[0]
    if not token:
        return None
    decoded = _unquote(token)
    if decoded is None:
        raise AuthError("malformed", "bearer token is not valid percent-encoding")
    return decoded


def authenticate(
    cookie_header: str | None,
    authorization_header: str | None,
    config: AuthConfig,
    now: float | None = None,
) -> Principal:
    """Authenticate a request from its ``Cookie`` and ``Authorization`` headers.

    See the module docstring for which cookie or header is used and in what order.

    Args:
        cookie_header: value of the ``Cookie`` header, or :obj:`None`.
        authorization_header: value of the ``Authorization`` header, or :obj:`None`.
        config: secrets and clock tolerance.
        now: current time in seconds since the epoch; defaults to :func:`time.time`.

    Returns:
        The authenticated user.

    Raises:
        AuthError: if the request carries no valid session; ``reason`` says why.

    """
    if now is None:
        now = time.time()
    first_error: AuthError | None = None
    if cookie_header:
        for name, token in _session_cookies(cookie_header):
            try:
                return decode_token(token, config, cookie_name=name, now=now)
            except AuthError as exc:
                first_error = first_error or exc
    if first_error is not None:
        raise first_error
    token = _bearer(authorization_header)
    if token is None:
        raise AuthError("missing", "no NextAuth session cookie and no bearer token")
    return decode_token(token, config, cookie_name=None, now=now)


def decode_token(
    token: str,
    config: AuthConfig,
    *,
    cookie_name: str | None,
    now: float | None = None,
) -> Principal:
    """Decrypt and validate one session token.

    Args:
        token: the compact JWE, chunks already joined.
        config: secrets and clock tolerance.
        cookie_name: the (unchunked) name of the cookie that carried the token, one of
            :data:`COOKIE_NAMES`: it selects v4 or v5 and is the v5 salt. :obj:`None` for a
            token of unknown origin (``Authorization: Bearer``): it is tried as v5 with the salt
            :data:`V5_COOKIE`, then as v4.
        now: current time in seconds since the epoch; defaults to :func:`time.time`.

    Returns:
        The authenticated user.

    Raises:
        AuthError: if the token is not a valid, current session token with a subject.
        ValueError: if ``cookie_name`` is not :obj:`None` nor one of :data:`COOKIE_NAMES`.

    """
    if now is None:
        now = time.time()
    if cookie_name is None:
        try:
            claims = _decrypt_v5(token, config, V5_COOKIE)
        except AuthError as exc:
            if exc.reason != "invalid":
                raise
            try:
                claims = _decrypt_v4(token, config)
            except AuthError as v4_exc:
                if v4_exc.reason != "invalid":
                    raise
                raise AuthError(
                    "invalid", f"bearer token is neither a valid v5 nor v4 session token ({exc})"
                ) from None
    elif cookie_name in _V4_NAMES:
        claims = _decrypt_v4(token, config)
    elif cookie_name in COOKIE_NAMES:
        claims = _decrypt_v5(token, config, cookie_name)
    else:
        raise ValueError(f"unknown session cookie name: {cookie_name!r}")
    return _principal(claims, config, now)


def _decrypt_v4(token: str, config: AuthConfig) -> dict[str, Any]:
    jwe = parse(token, (A256GCM,))
    error: AuthError | None = None
    for secret in config.secrets:
        try:
            return json_object(decrypt(jwe, v4_key(secret)), "JWT claims set")
        except AuthError as exc:
            if exc.reason != "invalid":
                raise
            error = error or exc
    assert error is not None  # AuthConfig guarantees at least one secret
    raise error


def _decrypt_v5(token: str, config: AuthConfig, salt: str) -> dict[str, Any]:
    jwe = parse(token)
    if jwe.kid is None:
        key = v5_key(config.secrets[0], salt, jwe.enc)
    else:
        for secret in config.secrets:
            key = v5_key(secret, salt, jwe.enc)
            if key_id(key) == jwe.kid:
                break
        else:
            raise AuthError("invalid", "no configured secret matches the token's key id")
    return json_object(decrypt(jwe, key), "JWT claims set")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(value: float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond the range of floats
        return math.inf


def _principal(claims: dict[str, Any], config: AuthConfig, now: float) -> Principal:
    for name in ("iat", "nbf", "exp"):
        if name in claims and not _is_number(claims[name]):
            raise AuthError("malformed", f"'{name}' claim is not a number")
    current = math.floor(now)
    nbf, exp = claims.get("nbf"), claims.get("exp")
    if nbf is not None and nbf > current + config.clock_tolerance:
        raise AuthError("invalid", "session token is not valid yet ('nbf' in the future)")
    if exp is not None and exp <= current - config.clock_tolerance:
        raise AuthError("expired", "session token has expired")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthError("no_subject", "session token has no 'sub' claim (user id)")
    return Principal(
        user_id=UserId(sub),
        expires_at=None if exp is None else _seconds(exp),
        claims=types.MappingProxyType(claims),
    )


def _payload(claims: Mapping[str, Any], now: float | None, max_age: float) -> bytes:
    """Serialise claims like ``EncryptJWT(token).setIssuedAt().setExpirationTime().setJti()``."""
    iat = math.floor(time.time() if now is None else now)
    exp = iat + max_age
    payload = dict(claims)
    payload["iat"] = iat
    payload["exp"] = int(exp) if float(exp).is_integer() else exp
    payload["jti"] = str(uuid.uuid4())
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def mint_v4(
    secret: str,
    claims: Mapping[str, Any],
    *,
    now: float | None = None,
    max_age: float = DEFAULT_MAX_AGE,
) -> str:
    """Mint a next-auth v4 session token, as ``encode()`` of ``next-auth/jwt`` does.

    The payload is ``claims`` plus ``iat`` (``now``, whole seconds), ``exp`` (``iat + max_age``)
    and a random ``jti``, which override keys of the same name in ``claims``.

    Args:
        secret: ``NEXTAUTH_SECRET``.
        claims: JSON-serialisable claims; ``sub`` is the user id.
        now: issue time in seconds since the epoch; defaults to :func:`time.time`.
        max_age: lifetime in seconds; 30 days by default.

    Returns:
        The token: the value of a ``next-auth.session-token`` or
        ``__Secure-next-auth.session-token`` cookie (see :func:`cookie_header`).

    Raises:
        ValueError: if ``secret`` is empty or a claim is a non-finite float.
        TypeError: if a claim can't be serialised to JSON.

    """
    if not secret:
        raise ValueError("secret must not be empty")
    return encrypt(_payload(claims, now, max_age), v4_key(secret), A256GCM)


def mint_v5(
    secret: str,
    claims: Mapping[str, Any],
    *,
    cookie_name: str = V5_COOKIE,
    now: float | None = None,
    max_age: float = DEFAULT_MAX_AGE,
) -> str:
    """Mint an Auth.js (v5) session token, as ``encode()`` of ``@auth/core/jwt`` does.

    ``A256CBC-HS512`` with the key derived for ``cookie_name`` and its thumbprint as ``kid``.
    The payload is built as in :func:`mint_v4`.

    Args:
        secret: ``AUTH_SECRET`` (the current one).
        claims: JSON-serialisable claims; ``sub`` is the user id.
        cookie_name: the cookie the token is for, which is the key derivation salt:
            :data:`V5_COOKIE` or :data:`V5_SECURE_COOKIE`.
        now: issue time in seconds since the epoch; defaults to :func:`time.time`.
        max_age: lifetime in seconds; 30 days by default.

    Returns:
        The token: the value of the ``cookie_name`` cookie (see :func:`cookie_header`).

    Raises:
        ValueError: if ``secret`` is empty or a claim is a non-finite float.
        TypeError: if a claim can't be serialised to JSON.

    """
    if not secret:
        raise ValueError("secret must not be empty")
    key = v5_key(secret, cookie_name, A256CBC_HS512)
    return encrypt(_payload(claims, now, max_age), key, A256CBC_HS512, kid=key_id(key))


def cookie_header(token: str, cookie_name: str = V4_COOKIE) -> str:
    """Return a ``Cookie`` header value carrying ``token`` in the cookie ``cookie_name``.

    A token longer than the library's chunk size (3933 characters for the v4 cookie names,
    3936 for the others) is split into ``<name>.0``, ``<name>.1``, … as the libraries do.

    Args:
        token: a session token from :func:`mint_v4` or :func:`mint_v5`.
        cookie_name: the session cookie's name; pass the v5 name for v5 tokens.

    Returns:
        ``"name=token"`` or ``"name.0=…; name.1=…"``.

    """
    size = _V4_CHUNK_SIZE if cookie_name in _V4_NAMES else _V5_CHUNK_SIZE
    if len(token) <= size:
        return f"{cookie_name}={token}"
    return "; ".join(
        f"{cookie_name}.{index}={token[start : start + size]}"
        for index, start in enumerate(range(0, len(token), size))
    )
