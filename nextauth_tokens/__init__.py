"""NextAuth.js (v4) and Auth.js (v5) session tokens, in a package of their own.

Both sides of a test use it: the reference server authenticates upgrade requests with it, and the load
generator mints each simulated user's cookie with it. Keeping it out of ``reference_server/`` means the load
generator does not depend on the server it tests. :mod:`nextauth_tokens.session` decides and validates;
:mod:`nextauth_tokens.jwe` is the JOSE subset underneath.
"""

from __future__ import annotations

from nextauth_tokens.session import (
    COOKIE_NAMES,
    V4_COOKIE,
    V4_SECURE_COOKIE,
    V5_COOKIE,
    V5_SECURE_COOKIE,
    AuthConfig,
    AuthError,
    Principal,
    UserId,
    authenticate,
    cookie_header,
    decode_token,
    mint_v4,
    mint_v5,
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
