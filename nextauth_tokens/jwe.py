"""Compact JWE with ``alg: dir`` as NextAuth.js and Auth.js use it, and their key derivation.

This module implements exactly the subset of JOSE (RFC 7516, RFC 7518, RFC 7638) that session tokens
need:

* content encryption ``A256GCM`` (next-auth v4, and older Auth.js tokens) and ``A256CBC-HS512``
  (Auth.js / ``@auth/core``, RFC 7518 §5.2.5);
* key derivation with HKDF-SHA256 from the application secret, as in
  ``packages/next-auth/src/jwt/index.ts`` (v4) and ``packages/core/src/jwt.ts`` (v5);
* the ``kid`` header: the RFC 7638 thumbprint of the derived key as an ``oct`` JWK.

All cryptography comes from the ``cryptography`` package. Every failure on untrusted input is an
:class:`AuthError`; nothing else escapes :func:`parse` or :func:`decrypt`.

The module is pure: no I/O, no clock, no global state except bounded caches of derived keys.

"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, padding
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "A256CBC_HS512",
    "A256GCM",
    "ENCRYPTIONS",
    "AuthError",
    "AuthErrorReason",
    "Jwe",
    "b64url_decode",
    "b64url_encode",
    "decrypt",
    "encrypt",
    "json_object",
    "key_id",
    "parse",
    "v4_key",
    "v5_key",
]

AuthErrorReason = Literal["missing", "malformed", "expired", "invalid", "no_subject"]
"""Why a session token was refused.

* ``missing``: no session cookie and no ``Authorization: Bearer`` header;
* ``malformed``: not a compact JWE / JWT of the expected shape;
* ``expired``: ``exp`` is in the past, beyond the clock tolerance;
* ``invalid``: well formed but not accepted: unsupported algorithm, no secret matches the ``kid``,
  authentication tag mismatch (wrong secret, wrong salt i.e. cookie name, tampering), or ``nbf``
  in the future beyond the clock tolerance;
* ``no_subject``: authentic and current, but without a non-empty string ``sub`` claim.

"""

A256GCM: Final = "A256GCM"
A256CBC_HS512: Final = "A256CBC-HS512"
ENCRYPTIONS: Final = (A256GCM, A256CBC_HS512)

# Content encryption parameters: key length, IV length and tag length, in bytes.
_KEY_LENGTH: Final = {A256GCM: 32, A256CBC_HS512: 64}
_IV_LENGTH: Final = {A256GCM: 12, A256CBC_HS512: 16}
_TAG_LENGTH: Final = {A256GCM: 16, A256CBC_HS512: 32}

_V4_INFO: Final = "NextAuth.js Generated Encryption Key"
_V5_INFO: Final = "Auth.js Generated Encryption Key ({salt})"

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_KEY_CACHE_SIZE: Final = 256


class AuthError(Exception):
    """Raised when a request does not carry a valid NextAuth session.

    Attributes:
        reason: one of ``"missing"``, ``"malformed"``, ``"expired"``, ``"invalid"``,
            ``"no_subject"`` (see :data:`AuthErrorReason`); stable, fit for metrics labels.

    ``str(error)`` is a human-readable explanation. It never contains the token, the secret or
    claim values, so it is safe to log and to send back in a 401 response.

    """

    reason: AuthErrorReason

    def __init__(self, reason: AuthErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __repr__(self) -> str:
        return f"AuthError({self.reason!r}, {str(self)!r})"


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str, what: str = "segment") -> bytes:
    """Decode unpadded, canonical base64url.

    Args:
        segment: base64url text without padding.
        what: name of the part, for the error message.

    Raises:
        AuthError: ``malformed`` if ``segment`` contains characters outside the base64url
            alphabet, padding, or is not the canonical encoding of its bytes (non-zero unused
            trailing bits), so that each token has exactly one spelling.

    """
    if _B64URL.fullmatch(segment) is None or len(segment) % 4 == 1:
        raise AuthError("malformed", f"JWE {what} is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the regex above
        raise AuthError("malformed", f"JWE {what} is not base64url") from None
    if len(segment) % 4 and b64url_encode(data) != segment:
        raise AuthError("malformed", f"JWE {what} is not canonical base64url")
    return data


@functools.lru_cache(maxsize=_KEY_CACHE_SIZE)
def _hkdf(secret: str, salt: str, info: str, length: int) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=length,
        salt=salt.encode(),
        info=info.encode(),
    ).derive(secret.encode())


def v4_key(secret: str) -> bytes:
    """Derive the 32-byte ``A256GCM`` key of next-auth v4 from ``NEXTAUTH_SECRET``.

    HKDF-SHA256 with an empty salt and info ``NextAuth.js Generated Encryption Key``. Cached.

    """
    return _hkdf(secret, "", _V4_INFO, 32)


def v5_key(secret: str, salt: str, enc: str = A256CBC_HS512) -> bytes:
    """Derive the Auth.js (v5) key for content encryption ``enc`` from ``AUTH_SECRET``.

    HKDF-SHA256 with salt = the session cookie's name and info
    ``Auth.js Generated Encryption Key (<salt>)``; 64 bytes for ``A256CBC-HS512``, 32 bytes for
    ``A256GCM``. Cached per (secret, salt, enc).

    Raises:
        KeyError: if ``enc`` is not one of :data:`ENCRYPTIONS`.

    """
    return _hkdf(secret, salt, _V5_INFO.format(salt=salt), _KEY_LENGTH[enc])


@functools.lru_cache(maxsize=_KEY_CACHE_SIZE)
def key_id(key: bytes) -> str:
    """Return the RFC 7638 thumbprint of ``{"kty": "oct", "k": key}``, as Auth.js puts in ``kid``.

    The hash is SHA-256 for a 32-byte key and SHA-512 for a 64-byte key (``sha${bits}``). Cached.

    """
    jwk = '{"k":"%s","kty":"oct"}' % b64url_encode(key)  # noqa: UP031 - RFC 7638 member order
    digest = hashlib.new(f"sha{len(key) * 8}", jwk.encode("ascii")).digest()
    return b64url_encode(digest)


@functools.lru_cache(maxsize=_KEY_CACHE_SIZE)
def _protected(enc: str, kid: str | None) -> str:
    header = {"alg": "dir", "enc": enc} if kid is None else {"alg": "dir", "enc": enc, "kid": kid}
    return b64url_encode(json.dumps(header, separators=(",", ":")).encode("ascii"))


@dataclass(frozen=True, slots=True)
class Jwe:
    """A parsed compact JWE with ``alg: dir``, not yet decrypted.

    Attributes:
        header: the protected header.
        enc: its ``enc`` member, one of :data:`ENCRYPTIONS`.
        kid: its ``kid`` member, if any.
        aad: additional authenticated data: the ASCII of the base64url protected header.
        iv: initialization vector.
        ciphertext: ciphertext.
        tag: authentication tag.

    """

    header: Mapping[str, Any]
    enc: str
    kid: str | None
    aad: bytes
    iv: bytes
    ciphertext: bytes
    tag: bytes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Parse strict JSON (UTF-8, no ``NaN``/``Infinity``) that must be an object.

    Raises:
        AuthError: ``malformed`` otherwise.

    """
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise AuthError("malformed", f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise AuthError("malformed", f"{what} is not a JSON object")
    return value


def parse(token: str, encryptions: tuple[str, ...] = ENCRYPTIONS) -> Jwe:
    """Parse a compact JWE and check its header, without decrypting.

    Args:
        token: the compact serialization, five base64url parts joined with ``.``.
        encryptions: the ``enc`` values to accept.

    Raises:
        AuthError: ``malformed`` if the token is not a compact JWE with ``alg: dir`` (five parts,
            empty encrypted key, header a JSON object, IV and tag of the right length);
            ``invalid`` if it uses an algorithm outside ``encryptions``, ``zip`` or ``crit``.

    """
    parts = token.split(".")
    if len(parts) != 5:
        raise AuthError("malformed", "session token is not a compact JWE (five parts)")
    protected, encrypted_key, iv_b64, ciphertext_b64, tag_b64 = parts
    header = json_object(b64url_decode(protected, "protected header"), "JWE protected header")
    alg, enc, kid = header.get("alg"), header.get("enc"), header.get("kid")
    if alg != "dir":
        raise AuthError("invalid", "JWE key management algorithm is not 'dir'")
    if enc not in encryptions:
        raise AuthError("invalid", "JWE content encryption algorithm is not accepted")
    if "zip" in header or "crit" in header:
        raise AuthError("invalid", "JWE 'zip' and 'crit' header parameters are not supported")
    if kid is not None and not isinstance(kid, str):
        raise AuthError("malformed", "JWE 'kid' header parameter is not a string")
    if encrypted_key:
        raise AuthError("malformed", "JWE with 'dir' must have an empty encrypted key")
    iv = b64url_decode(iv_b64, "initialization vector")
    ciphertext = b64url_decode(ciphertext_b64, "ciphertext")
    tag = b64url_decode(tag_b64, "authentication tag")
    if len(iv) != _IV_LENGTH[enc]:
        raise AuthError("malformed", "JWE initialization vector has the wrong length")
    if len(tag) != _TAG_LENGTH[enc]:
        raise AuthError("malformed", "JWE authentication tag has the wrong length")
    return Jwe(header, enc, kid, protected.encode("ascii"), iv, ciphertext, tag)


def _cbc_hs512_tag(mac_key: bytes, aad: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    mac = crypto_hmac.HMAC(mac_key, hashes.SHA512())
    mac.update(aad)
    mac.update(iv)
    mac.update(ciphertext)
    mac.update((len(aad) * 8).to_bytes(8, "big"))
    return mac.finalize()[:32]


@functools.lru_cache(maxsize=_KEY_CACHE_SIZE)
def _aesgcm(key: bytes) -> AESGCM:
    return AESGCM(key)


def decrypt(jwe: Jwe, key: bytes) -> bytes:
    """Authenticate and decrypt ``jwe`` with the content encryption key ``key``.

    Raises:
        AuthError: ``invalid`` if the key has the wrong length for ``jwe.enc`` or the
            authentication tag does not match (wrong secret or salt, or tampering).

    """
    if len(key) != _KEY_LENGTH[jwe.enc]:
        raise AuthError("invalid", "key length does not match the JWE content encryption")
    if jwe.enc == A256GCM:
        try:
            return _aesgcm(key).decrypt(jwe.iv, jwe.ciphertext + jwe.tag, jwe.aad)
        except InvalidTag:
            raise AuthError("invalid", "session token failed authentication") from None
    # A256CBC-HS512, RFC 7518 §5.2.2.2: MAC key first, encryption key second; MAC before decrypt.
    mac_key, enc_key = key[:32], key[32:]
    expected = _cbc_hs512_tag(mac_key, jwe.aad, jwe.iv, jwe.ciphertext)
    if not constant_time.bytes_eq(expected, jwe.tag):
        raise AuthError("invalid", "session token failed authentication")
    if not jwe.ciphertext or len(jwe.ciphertext) % 16:
        raise AuthError("invalid", "session token ciphertext is not whole AES blocks")
    decryptor = Cipher(algorithms.AES(enc_key), modes.CBC(jwe.iv)).decryptor()
    padded = decryptor.update(jwe.ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise AuthError("invalid", "session token has bad padding") from None


def encrypt(plaintext: bytes, key: bytes, enc: str, *, kid: str | None = None) -> str:
    """Encrypt ``plaintext`` as a compact JWE with ``alg: dir``.

    The protected header is ``{"alg":"dir","enc":enc}``, plus ``"kid"`` when given, in that order,
    as ``jose``'s ``EncryptJWT`` writes it for NextAuth.

    Args:
        plaintext: the payload, usually UTF-8 JSON claims.
        key: content encryption key: 32 bytes for ``A256GCM``, 64 for ``A256CBC-HS512``.
        enc: content encryption, one of :data:`ENCRYPTIONS`.
        kid: value of the ``kid`` header parameter, or :obj:`None` for none.

    Raises:
        ValueError: if ``enc`` is unknown or ``key`` has the wrong length.

    """
    if _KEY_LENGTH.get(enc) != len(key):
        raise ValueError(f"{enc} needs a {_KEY_LENGTH.get(enc)}-byte key, got {len(key)} bytes")
    protected = _protected(enc, kid)
    aad = protected.encode("ascii")
    iv = os.urandom(_IV_LENGTH[enc])
    if enc == A256GCM:
        sealed = _aesgcm(key).encrypt(iv, plaintext, aad)
        ciphertext, tag = sealed[:-16], sealed[-16:]
    else:
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key[32:]), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        tag = _cbc_hs512_tag(key[:32], aad, iv, ciphertext)
    return ".".join((protected, "", b64url_encode(iv), b64url_encode(ciphertext), b64url_encode(tag)))
