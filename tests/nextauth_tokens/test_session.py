"""Tests for nextauth_tokens: decoding, validation, cookies and minting.

Interop with the real npm packages lives in tests/interop/test_nextauth_interop.py; the known-answer
vectors below were minted by next-auth 4.24.15 and @auth/core 0.41.3 so that this file checks
compatibility even without Node.

"""

from __future__ import annotations

import contextlib
import json
import string
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextauth_tokens import jwe
from nextauth_tokens.session import (
    COOKIE_NAMES,
    V4_COOKIE,
    V4_SECURE_COOKIE,
    V5_COOKIE,
    V5_SECURE_COOKIE,
    AuthConfig,
    AuthError,
    Principal,
    authenticate,
    cookie_header,
    decode_token,
    mint_v4,
    mint_v5,
)

SECRET = "test-secret-0123456789abcdef"
OLD_SECRET = "previous-secret-fedcba9876543210"
CONFIG = AuthConfig((SECRET,))
NOW = 1_800_000_000.0
CLAIMS = {"sub": "user-1", "name": "Ada", "email": "ada@example.com"}
B64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"

V4_NAMES = (V4_COOKIE, V4_SECURE_COOKIE)
V5_NAMES = (V5_COOKIE, V5_SECURE_COOKIE)

# Minted by the real packages with secret VECTOR_SECRET and claims VECTOR_CLAIMS (tests/interop).
VECTOR_SECRET = "wsgauge-test-vector-secret"
VECTOR_CLAIMS = {"sub": "user-42", "name": "Ada", "email": "ada@example.com"}
VECTOR_IAT = 1795644614
VECTOR_V4 = (  # next-auth 4.24.15 encode({token, secret})
    "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..3hjbWYaN12p2uG_U.F5LHMFPuQUt7prh17jNMigKrxVIck6JFPk"
    "dZU0r0xOIRnDzqMKCvHr_3qrt5Owhl9ox3XOcai5EisLpSbOGPadpzTbx6ZU8u4kLB5i6-Sc--78sTj23tkOX5UcI3sq3"
    "iRSOuAc8xu3e0Bu7llJOXod1zGBuDy_qS-McFI9pAKVLDmB74qosu.4vfvGExzuYRKMTT6GPBc-Q"
)
VECTOR_V5_SECURE = (  # @auth/core 0.41.3 encode({token, secret, salt: "__Secure-authjs.session-token"})
    "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2Q0JDLUhTNTEyIiwia2lkIjoiVFYxcHd1ZmVYTUZDOE1meHhBY3pWdVpCLTE5"
    "enJIbEwxTW5OX2hDbXdqTWdJdHlZcnlrYjF0c0hQbmhmdDRCVFJZaUYtNUZrd3dtX2FuVDdPa2kya1EifQ..DTgDNS1ws"
    "suhqNFfzGHtYg.PswjEOTrzDWguiKif6Lr_6FV5qJdPN-13joBtPb4dlWU2ve_su6YXiRJOAMQmHTVn5k-cEOTMGRnSLf"
    "yGrgPhmZ1hCT_M2l3SoIdfU5wpKUVOzFjTT_VFndV9hr3v7fLjqD6Q52LLL-QFgVBmuyworDgJevquZANPhsnTu9YcNmn"
    "aQNu_wkh6njVsfBN5iWx.GFi8-yzVwBVq2CCjGrWg41Js_WUwVno8pe3gfRHxe3o"
)


def mint(cookie_name: str, claims=CLAIMS, secret: str = SECRET, **kwargs) -> str:
    """Mint a token for ``cookie_name`` (v4 or v5 depending on the name)."""
    kwargs.setdefault("now", NOW)
    if cookie_name in V4_NAMES:
        return mint_v4(secret, claims, **kwargs)
    return mint_v5(secret, claims, cookie_name=cookie_name, **kwargs)


def auth(cookie: str | None = None, authorization: str | None = None, **kwargs) -> Principal:
    kwargs.setdefault("config", CONFIG)
    kwargs.setdefault("now", NOW)
    return authenticate(cookie, authorization, **kwargs)


def assert_refused(reason: str, cookie: str | None = None, authorization: str | None = None, **kw):
    with pytest.raises(AuthError) as excinfo:
        auth(cookie, authorization, **kw)
    assert excinfo.value.reason == reason, str(excinfo.value)
    return excinfo.value


def replace_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def flip(segment: str, position: int) -> str:
    """Change one base64url character, keeping the segment canonical (a 6-bit group in the middle)."""
    char = segment[position]
    return segment[:position] + ("B" if char == "A" else "A") + segment[position + 1 :]


# Round trips.


@pytest.mark.parametrize("cookie_name", COOKIE_NAMES)
def test_round_trip(cookie_name):
    token = mint(cookie_name)
    principal = auth(cookie_header(token, cookie_name))
    assert principal.user_id == "user-1"
    assert principal.expires_at == NOW + 30 * 86400
    assert principal.claims["email"] == "ada@example.com"
    assert principal.claims["iat"] == int(NOW)
    assert isinstance(principal.claims["jti"], str)


def test_v4_header_and_v5_header_are_those_of_the_libraries():
    v4_header = json.loads(jwe.b64url_decode(mint_v4(SECRET, CLAIMS).split(".")[0]))
    assert v4_header == {"alg": "dir", "enc": "A256GCM"}
    v5_token = mint_v5(SECRET, CLAIMS)
    v5_header = json.loads(jwe.b64url_decode(v5_token.split(".")[0]))
    assert list(v5_header) == ["alg", "enc", "kid"]
    assert v5_header["enc"] == "A256CBC-HS512"
    assert v5_header["kid"] == jwe.key_id(jwe.v5_key(SECRET, V5_COOKIE))
    assert v5_token.split(".")[1] == ""  # dir: empty encrypted key


def test_principal_claims_are_read_only():
    principal = auth(cookie_header(mint(V4_COOKIE)))
    with pytest.raises(TypeError):
        principal.claims["sub"] = "someone-else"  # type: ignore[index]


def test_minted_claims_override_iat_exp_jti_like_encode():
    token = mint_v4(SECRET, {"sub": "u", "iat": 1, "exp": 2, "jti": "x"}, now=NOW, max_age=60)
    principal = decode_token(token, CONFIG, cookie_name=V4_COOKIE, now=NOW)
    assert (principal.claims["iat"], principal.claims["exp"]) == (int(NOW), int(NOW) + 60)
    assert principal.claims["jti"] != "x"


def test_known_answer_vectors_from_npm():
    config = AuthConfig((VECTOR_SECRET,))
    now = VECTOR_IAT + 60
    v4 = authenticate(cookie_header(VECTOR_V4, V4_COOKIE), None, config, now=now)
    v5 = authenticate(cookie_header(VECTOR_V5_SECURE, V5_SECURE_COOKIE), None, config, now=now)
    for principal in (v4, v5):
        assert principal.user_id == "user-42"
        assert {k: principal.claims[k] for k in VECTOR_CLAIMS} == VECTOR_CLAIMS
        assert principal.claims["iat"] == VECTOR_IAT
        assert principal.expires_at == VECTOR_IAT + 30 * 86400
    # The v5 vector was minted for the __Secure- cookie: its salt is bound into the key.
    with pytest.raises(AuthError, match="key id") as excinfo:
        authenticate(cookie_header(VECTOR_V5_SECURE, V5_COOKIE), None, config, now=now)
    assert excinfo.value.reason == "invalid"


# Chunked cookies.


@pytest.mark.parametrize(("cookie_name", "size"), [(V4_COOKIE, 3933), (V5_SECURE_COOKIE, 3936)])
def test_chunk_sizes(cookie_name, size):
    assert cookie_header("a" * size, cookie_name) == f"{cookie_name}={'a' * size}"
    header = cookie_header("a" * (2 * size + 1), cookie_name)
    names, values = zip(*(pair.split("=") for pair in header.split("; ")), strict=True)
    assert names == tuple(f"{cookie_name}.{i}" for i in range(3))
    assert [len(v) for v in values] == [size, size, 1]


@pytest.mark.parametrize("cookie_name", COOKIE_NAMES)
def test_chunked_round_trip(cookie_name):
    claims = {**CLAIMS, "picture": "x" * 5000, "roles": ["r"] * 300}
    token = mint(cookie_name, claims)
    header = cookie_header(token, cookie_name)
    assert len(token) > 4096 and f"{cookie_name}.1=" in header
    assert auth(header).claims["picture"] == "x" * 5000


def test_chunks_are_ordered_by_integer_suffix_not_header_order():
    token = mint(V5_COOKIE, {**CLAIMS, "blob": "y" * 40000})
    pairs = cookie_header(token, V5_COOKIE).split("; ")
    assert len(pairs) > 10  # ".10" sorts before ".2" as a string
    shuffled = "theme=dark; " + "; ".join(reversed(pairs)) + "; other=1"
    assert auth(shuffled).claims["blob"] == "y" * 40000


def test_missing_chunk_is_refused():
    token = mint(V4_COOKIE, {**CLAIMS, "blob": "z" * 5000})
    pairs = cookie_header(token, V4_COOKIE).split("; ")
    error = assert_refused("malformed", "; ".join(pairs[:1] + pairs[2:]))
    assert token[:20] not in str(error)


# Bearer tokens.


@pytest.mark.parametrize("cookie_name", [V5_COOKIE, V4_COOKIE, V4_SECURE_COOKIE])
def test_bearer(cookie_name):
    assert auth(None, f"Bearer {mint(cookie_name)}").user_id == "user-1"


def test_bearer_v5_secure_salt_is_not_the_bearer_salt():
    assert_refused("invalid", None, f"Bearer {mint(V5_SECURE_COOKIE)}")


def test_bearer_is_url_decoded_and_scheme_case_insensitive():
    token = mint(V5_COOKIE).replace("-", "%2D")
    assert auth("theme=dark", f"bearer {token}").user_id == "user-1"
    assert_refused("malformed", None, "Bearer %ff%fe")


def test_cookie_takes_precedence_over_bearer():
    # Like getToken(): the Authorization header is only read when there is no session cookie.
    bad_cookie = cookie_header(mint(V5_COOKIE, secret="wrong"), V5_COOKIE)
    assert_refused("invalid", bad_cookie, f"Bearer {mint(V5_COOKIE)}")


@pytest.mark.parametrize("authorization", ["", "Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "Token x"])
def test_not_a_bearer_header_means_missing(authorization):
    assert_refused("missing", "theme=dark", authorization)


# Expiry and not-before, with the 15 s tolerance.


@pytest.mark.parametrize("cookie_name", [V4_COOKIE, V5_COOKIE])
def test_expiry_tolerance(cookie_name):
    header = cookie_header(mint(cookie_name, max_age=60), cookie_name)
    exp = NOW + 60
    assert auth(header, now=exp).user_id == "user-1"
    assert auth(header, now=exp + 14.9).user_id == "user-1"  # compared per whole second, like jose
    assert_refused("expired", header, now=exp + 15)
    assert_refused("expired", header, now=exp + 3600)
    assert auth(header, config=AuthConfig((SECRET,), clock_tolerance=3600), now=exp + 3599)


def test_already_expired_when_minted():
    assert_refused("expired", cookie_header(mint(V4_COOKIE, now=NOW - 31 * 86400)))


@pytest.mark.parametrize("cookie_name", [V4_SECURE_COOKIE, V5_SECURE_COOKIE])
def test_not_before_tolerance(cookie_name):
    header = cookie_header(mint(cookie_name, {**CLAIMS, "nbf": NOW + 100}), cookie_name)
    assert_refused("invalid", header, now=NOW + 84)
    assert auth(header, now=NOW + 85).user_id == "user-1"


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["1900000000", True, None, [1]])
def test_non_numeric_time_claims_are_malformed(claim, value):
    token = _mint_raw(V5_COOKIE, {**CLAIMS, "iat": NOW, claim: value})
    assert_refused("malformed", cookie_header(token, V5_COOKIE))


def test_token_without_exp_never_expires():
    token = _mint_raw(V4_COOKIE, CLAIMS)
    principal = auth(cookie_header(token, V4_COOKIE), now=4e9)
    assert principal.expires_at is None


# Tampering, wrong secrets and salts.


def _mint_raw(cookie_name: str, payload, *, enc: str | None = None, kid: bool = True, secret=SECRET):
    """Encrypt an arbitrary payload exactly as ``cookie_name``'s library would."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if cookie_name in V4_NAMES:
        return jwe.encrypt(data, jwe.v4_key(secret), enc or jwe.A256GCM)
    enc = enc or jwe.A256CBC_HS512
    key = jwe.v5_key(secret, cookie_name, enc)
    return jwe.encrypt(data, key, enc, kid=jwe.key_id(key) if kid else None)


@pytest.mark.parametrize("cookie_name", [V4_COOKIE, V5_COOKIE])
@pytest.mark.parametrize("index", [2, 3, 4], ids=["iv", "ciphertext", "tag"])
def test_tampered_iv_ciphertext_tag(cookie_name, index):
    token = mint(cookie_name)
    segment = token.split(".")[index]
    for position in (0, len(segment) // 2, len(segment) - 2):
        tampered = replace_segment(token, index, flip(segment, position))
        error = assert_refused("invalid", cookie_header(tampered, cookie_name))
        assert "authentication" in str(error)


@pytest.mark.parametrize("cookie_name", [V4_COOKIE, V5_COOKIE])
def test_tampered_header(cookie_name):
    token = mint(cookie_name)
    header = json.loads(jwe.b64url_decode(token.split(".")[0]))
    for changed in ({**header, "typ": "JWT"}, dict(reversed(header.items()))):
        segment = jwe.b64url_encode(json.dumps(changed).encode())
        tampered = replace_segment(token, 0, segment)
        assert_refused("invalid", cookie_header(tampered, cookie_name))


def test_non_canonical_base64url_is_malformed():
    token = mint(V4_COOKIE)
    tag = token.split(".")[4]  # 16 bytes: 22 characters, the last one with 4 unused bits
    assert B64.index(tag[-1]) % 16 == 0
    sloppy = tag[:-1] + B64[B64.index(tag[-1]) + 1]  # decodes to the same bytes
    assert jwe.base64.urlsafe_b64decode(sloppy + "==") == jwe.b64url_decode(tag)
    assert_refused("malformed", cookie_header(replace_segment(token, 4, sloppy)))


@pytest.mark.parametrize("cookie_name", COOKIE_NAMES)
def test_wrong_secret(cookie_name):
    assert_refused("invalid", cookie_header(mint(cookie_name, secret="wrong"), cookie_name))


def test_wrong_salt():
    minted_for, presented_as = V5_COOKIE, V5_SECURE_COOKIE
    error = assert_refused("invalid", cookie_header(mint(minted_for), presented_as))
    assert "key id" in str(error)
    # Without a kid the key is derived with the first secret and the salt: the tag fails.
    no_kid = _mint_raw(minted_for, {**CLAIMS, "exp": NOW + 60}, kid=False)
    assert auth(cookie_header(no_kid, minted_for)).user_id == "user-1"
    assert_refused("invalid", cookie_header(no_kid, presented_as))


def test_v4_and_v5_tokens_are_not_interchangeable():
    assert_refused("invalid", cookie_header(mint(V4_COOKIE), V5_COOKIE))  # A256GCM, wrong key
    assert_refused("invalid", cookie_header(mint(V5_COOKIE), V4_COOKIE))  # enc not A256GCM


def test_v5_a256gcm_uses_a_32_byte_key():
    for kid in (True, False):
        token = _mint_raw(V5_COOKIE, {**CLAIMS, "exp": NOW + 60}, enc=jwe.A256GCM, kid=kid)
        assert auth(cookie_header(token, V5_COOKIE)).user_id == "user-1"
    assert len(jwe.v5_key(SECRET, V5_COOKIE, jwe.A256GCM)) == 32
    assert len(jwe.key_id(jwe.v5_key(SECRET, V5_COOKIE, jwe.A256GCM))) == 43  # SHA-256


# Secret rotation.


@pytest.mark.parametrize("cookie_name", COOKIE_NAMES)
def test_rotation_accepts_old_secret_in_position_1(cookie_name):
    header = cookie_header(mint(cookie_name, secret=OLD_SECRET), cookie_name)
    assert_refused("invalid", header)
    assert auth(header, config=AuthConfig((SECRET, OLD_SECRET))).user_id == "user-1"
    assert auth(header, config=AuthConfig([OLD_SECRET, SECRET])).user_id == "user-1"


def test_rotation_without_kid_uses_only_the_first_secret():
    token = _mint_raw(V5_COOKIE, {**CLAIMS, "exp": NOW + 60}, kid=False, secret=OLD_SECRET)
    assert_refused("invalid", cookie_header(token, V5_COOKIE), config=AuthConfig((SECRET, OLD_SECRET)))
    assert auth(cookie_header(token, V5_COOKIE), config=AuthConfig((OLD_SECRET, SECRET)))


def test_derived_keys_are_cached():
    jwe.v5_key(SECRET, V5_COOKIE)
    before = jwe._hkdf.cache_info().hits
    for _ in range(3):
        auth(cookie_header(mint(V5_COOKIE), V5_COOKIE))
    assert jwe._hkdf.cache_info().hits >= before + 6


# Several cookies, missing and garbage input.


def test_first_valid_cookie_wins_and_first_error_is_reported():
    good_v4 = cookie_header(mint(V4_COOKIE, {**CLAIMS, "sub": "v4-user"}), V4_COOKIE)
    bad_v5 = cookie_header(mint(V5_COOKIE, secret="wrong"), V5_COOKIE)
    expired_v5s = cookie_header(mint(V5_SECURE_COOKIE, max_age=-100), V5_SECURE_COOKIE)
    assert auth(f"{bad_v5}; {good_v4}").user_id == "v4-user"
    assert_refused("expired", f"{bad_v5}; {expired_v5s}")  # __Secure-authjs is tried first


def test_cookie_parsing_like_the_cookie_package():
    token = mint(V4_COOKIE)
    assert auth(f'a=1;{V4_COOKIE}="{token}" ;b').user_id == "user-1"
    assert auth(f"{V4_COOKIE}={token}; {V4_COOKIE}=garbage").user_id == "user-1"  # first wins
    assert auth(f"{V4_COOKIE}={token.replace('.', '%2E')}").user_id == "user-1"
    assert_refused("missing", f"x{V4_COOKIE}={token}; {V4_COOKIE}x={token}")
    assert_refused("missing", f"{V4_COOKIE}.x={token}; {V4_COOKIE}.-1={token}")


@pytest.mark.parametrize(
    "cookie",
    [None, "", "theme=dark", f"{V4_COOKIE}=", f"{V5_COOKIE}=; {V5_COOKIE}.0=", "next-auth.csrf-token=x"],
)
def test_missing(cookie):
    error = assert_refused("missing", cookie, None)
    assert "no NextAuth session" in str(error)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("garbage", "malformed"),
        ("a.b.c", "malformed"),  # a signed JWT is not a session token
        ("a.b.c.d.e.f", "malformed"),
        ("....", "malformed"),
        ("!!!!.x.y.z.w", "malformed"),
        (jwe.b64url_encode(b"[1]") + "..AAAA.AAAA.AAAA", "malformed"),
        (jwe.b64url_encode(b"{bad") + "..AAAA.AAAA.AAAA", "malformed"),
        (jwe.b64url_encode(b'{"alg":"dir","enc":"A256GCM"}') + "..AAAA.AAAA.AAAA", "malformed"),
        (jwe.b64url_encode(b'{"alg":"RSA-OAEP","enc":"A256GCM"}') + ".k.AAAA.AAAA.AAAA", "invalid"),
        (jwe.b64url_encode(b'{"alg":"dir","enc":"A128GCM"}') + "..AAAA.AAAA.AAAA", "invalid"),
        (jwe.b64url_encode(b'{"alg":"dir","enc":"A256GCM","zip":"DEF"}') + "..A.A.A", "invalid"),
        (jwe.b64url_encode(b'{"alg":"dir","enc":"A256GCM","kid":1}') + "..AAAA.AAAA.AAAA", "malformed"),
        (jwe.b64url_encode(b"[" * 100_000) + "....", "malformed"),
    ],
)
@pytest.mark.parametrize("cookie_name", [V4_COOKIE, V5_SECURE_COOKIE])
def test_garbage(token, reason, cookie_name):
    error = assert_refused(reason, f"{cookie_name}={token}")
    assert token not in str(error)
    assert_refused(reason, None, f"Bearer {token}")


@pytest.mark.parametrize("cookie_name", [V4_COOKIE, V5_COOKIE])
@pytest.mark.parametrize(
    "payload",
    [b"not json", b"\xff\xfe", b"[1,2]", b'"sub"', b'{"sub":"u","exp":NaN}', b'{"iat":[]}'],
)
def test_authentic_but_malformed_claims(cookie_name, payload):
    assert_refused("malformed", cookie_header(_mint_raw(cookie_name, payload), cookie_name))


@pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"sub": 42}, {"sub": None}, {"name": "x"}])
def test_no_subject(claims):
    error = assert_refused("no_subject", cookie_header(mint(V5_COOKIE, claims), V5_COOKIE))
    assert str(error) == "session token has no 'sub' claim (user id)"


def test_huge_integer_exp_does_not_overflow():
    token = _mint_raw(V5_COOKIE, b'{"sub":"u","exp":1' + b"0" * 400 + b"}")
    assert auth(cookie_header(token, V5_COOKIE)).expires_at == float("inf")


def test_error_messages_never_contain_the_token():
    token = mint(V5_COOKIE)
    for header in (
        cookie_header(token, V5_SECURE_COOKIE),
        cookie_header(token[:-5], V5_COOKIE),
        cookie_header(token, V4_COOKIE),
    ):
        with pytest.raises(AuthError) as excinfo:
            auth(header)
        for part in token.split("."):
            assert not part or part not in str(excinfo.value) + repr(excinfo.value)


def test_decode_token_with_unknown_cookie_name_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown session cookie name"):
        decode_token(mint(V5_COOKIE), CONFIG, cookie_name="session")


@pytest.mark.parametrize(
    "kwargs",
    [{"secrets": ()}, {"secrets": ("",)}, {"secrets": "abc"}, {"secrets": (b"x",)}]
    + [{"secrets": ("s",), "clock_tolerance": t} for t in (-1, float("nan"), float("inf"))],
)
def test_auth_config_validation(kwargs):
    with pytest.raises(ValueError):
        AuthConfig(**kwargs)


def test_mint_rejects_bad_arguments():
    with pytest.raises(ValueError):
        mint_v4("", CLAIMS)
    with pytest.raises(ValueError):
        mint_v5("", CLAIMS)
    with pytest.raises(TypeError):
        mint_v5(SECRET, {"sub": object()})
    with pytest.raises(ValueError):
        mint_v4(SECRET, {"sub": "u", "x": float("nan")})


def test_mint_is_fast():
    count = 2000
    start = time.perf_counter()
    for i in range(count):
        mint_v4(SECRET, {"sub": f"user-{i}"})
        mint_v5(SECRET, {"sub": f"user-{i}"})
    per_token = (time.perf_counter() - start) / (2 * count)
    assert per_token < 0.5e-3, f"{per_token * 1e6:.0f} µs per token"  # ~10-25 µs on a dev box


def test_mint_uses_the_current_time_by_default():
    before = int(time.time())
    principal = authenticate(cookie_header(mint_v5(SECRET, CLAIMS), V5_COOKIE), None, CONFIG)
    assert before <= principal.claims["iat"] <= time.time()


# Property-based: bad input only ever raises AuthError.

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=;% \"'"
VALID = {name: mint(name, max_age=10**9) for name in COOKIE_NAMES}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cookie=st.one_of(st.none(), st.text()), authorization=st.one_of(st.none(), st.text()))
def test_arbitrary_headers_only_raise_auth_error(cookie, authorization):
    try:
        principal = auth(cookie, authorization)
    except AuthError as exc:
        assert exc.reason in {"missing", "malformed", "expired", "invalid", "no_subject"}
    else:  # pragma: no cover - astronomically unlikely
        assert isinstance(principal, Principal)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(COOKIE_NAMES),
    suffix=st.one_of(st.just(""), st.integers(0, 12).map(lambda i: f".{i}"), st.text(max_size=3)),
    value=st.text(alphabet=ALPHABET, max_size=300),
    authorization=st.one_of(st.none(), st.text(alphabet=ALPHABET).map(lambda t: "Bearer " + t)),
)
def test_session_shaped_cookies_only_raise_auth_error(name, suffix, value, authorization):
    with contextlib.suppress(AuthError):
        auth(f"{name}{suffix}={value}", authorization)


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(COOKIE_NAMES),
    data=st.data(),
)
def test_mutated_tokens_are_refused_or_unchanged(name, data):
    token = VALID[name]
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.text(alphabet=ALPHABET, min_size=0, max_size=3))
    mutated = token[:position] + replacement + token[position + 1 :]
    try:
        principal = decode_token(mutated, CONFIG, cookie_name=name, now=NOW)
    except AuthError:
        return
    # Only a no-op mutation may still decode.
    assert mutated == token
    assert principal.user_id == "user-1"


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(COOKIE_NAMES),
    claims=st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in {"iat", "exp", "nbf", "jti", "sub"}),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
            max_leaves=10,
        ),
        max_size=5,
    ),
    sub=st.text(min_size=1, max_size=40),
)
def test_arbitrary_claims_round_trip(name, claims, sub):
    principal = auth(cookie_header(mint(name, {**claims, "sub": sub}), name))
    assert principal.user_id == sub
    assert {k: principal.claims[k] for k in claims} == claims
