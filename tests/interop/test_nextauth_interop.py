"""Interop of nextauth_tokens with the real next-auth 4 and @auth/core npm packages.

Both directions: tokens minted by ``next-auth/jwt`` / ``@auth/core/jwt`` ``encode()`` are
authenticated by :func:`authenticate`, and tokens minted by :func:`mint_v4` / :func:`mint_v5` are
decoded by their ``decode()`` and ``getToken()``. Cookie chunking is compared with the libraries'
own ``SessionStore``.

All requests go to one ``node tokens.mjs`` process (see that script for the request format).
Install the packages with ``npm ci --prefix tests/interop``.

"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nextauth_tokens import (
    V4_COOKIE,
    V4_SECURE_COOKIE,
    V5_COOKIE,
    V5_SECURE_COOKIE,
    AuthConfig,
    AuthError,
    authenticate,
    cookie_header,
    mint_v4,
    mint_v5,
)

HERE = Path(__file__).parent
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(
        not (HERE / "node_modules").is_dir(),
        reason="npm packages not installed: run `npm ci --prefix tests/interop`",
    ),
    pytest.mark.skipif(NODE is None, reason="node is not on PATH"),
]

SECRET = "interop-secret-6f1c0e2a9b"
OLD_SECRET = "interop-old-secret-43d7e1"
CONFIG = AuthConfig((SECRET,))
CLAIMS = {"sub": "user-7", "name": "Grace", "email": "grace@example.com", "picture": None}
BIG = {**CLAIMS, "roles": ["reader"] * 200, "bio": "é" * 3000}  # > 4 kB once encrypted
V5_NAMES = (V5_COOKIE, V5_SECURE_COOKIE)
V4_NAMES = (V4_COOKIE, V4_SECURE_COOKIE)


class Batch:
    """Requests for tokens.mjs, keyed by test, sent in one node process."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.requests: list[dict[str, Any]] = []

    def add(self, key: str, **request: Any) -> None:
        assert key not in self.keys
        self.keys.append(key)
        self.requests.append(request)

    def run(self) -> dict[str, dict[str, Any]]:
        completed = subprocess.run(
            [NODE or "node", str(HERE / "tokens.mjs")],
            input=json.dumps(self.requests),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=HERE,
        )
        assert completed.returncode == 0, completed.stderr
        results = json.loads(completed.stdout)
        assert len(results) == len(self.keys)
        return dict(zip(self.keys, results, strict=True))


# Python-minted tokens that node decodes, built once at import time.
PY = {
    "v4": mint_v4(SECRET, CLAIMS),
    "v5": mint_v5(SECRET, CLAIMS),
    "v5-secure": mint_v5(SECRET, CLAIMS, cookie_name=V5_SECURE_COOKIE),
    "v4-big": mint_v4(SECRET, BIG),
    "v5-big": mint_v5(SECRET, BIG, cookie_name=V5_SECURE_COOKIE),
    "v4-expired": mint_v4(SECRET, CLAIMS, max_age=-60),
    "v5-expired": mint_v5(SECRET, CLAIMS, max_age=-60),
}


def build_batch() -> Batch:
    batch = Batch()
    # node mints, Python decodes.
    batch.add("encode-v4", op="encode", version="v4", secret=SECRET, token=CLAIMS)
    for name in V5_NAMES:
        batch.add(f"encode-{name}", op="encode", version="v5", secret=SECRET, salt=name, token=CLAIMS)
    batch.add("encode-v4-big", op="encode", version="v4", secret=SECRET, token=BIG)
    batch.add("encode-v5-big", op="encode", version="v5", secret=SECRET, salt=V5_COOKIE, token=BIG)
    batch.add(
        "encode-v5-old",
        op="encode",
        version="v5",
        secret=[OLD_SECRET, SECRET],
        salt=V5_COOKIE,
        token=CLAIMS,
    )
    batch.add("encode-v4-old", op="encode", version="v4", secret=OLD_SECRET, token=CLAIMS)
    batch.add(
        "encode-v5-expired",
        op="encode",
        version="v5",
        secret=SECRET,
        salt=V5_COOKIE,
        token=CLAIMS,
        maxAge=-60,
    )
    batch.add("encode-v4-nosub", op="encode", version="v4", secret=SECRET, token={"name": "x"})
    # Python mints, node decodes.
    batch.add("decode-v4", op="decode", version="v4", secret=SECRET, token=PY["v4"])
    batch.add("decode-v5", op="decode", version="v5", secret=SECRET, token=PY["v5"], salt=V5_COOKIE)
    batch.add(
        "decode-v5-secure",
        op="decode",
        version="v5",
        secret=[OLD_SECRET, SECRET],  # rotation on the node side: found by kid
        token=PY["v5-secure"],
        salt=V5_SECURE_COOKIE,
    )
    batch.add(
        "decode-v5-wrong-salt",
        op="decode",
        version="v5",
        secret=SECRET,
        token=PY["v5"],
        salt=V5_SECURE_COOKIE,
    )
    batch.add("decode-v4-wrong-secret", op="decode", version="v4", secret="x", token=PY["v4"])
    for version in ("v4", "v5"):
        batch.add(
            f"decode-{version}-expired",
            op="decode",
            version=version,
            secret=SECRET,
            token=PY[f"{version}-expired"],
            salt=V5_COOKIE if version == "v5" else None,
        )
    # Python's Cookie / Authorization headers, read by the libraries' getToken().
    batch.add(
        "getToken-v4-big",
        op="getToken",
        version="v4",
        secret=SECRET,
        secureCookie=True,
        cookie="theme=dark; " + cookie_header(PY["v4-big"], V4_SECURE_COOKIE),
    )
    batch.add(
        "getToken-v5-big",
        op="getToken",
        version="v5",
        secret=SECRET,
        secureCookie=True,
        cookie=cookie_header(PY["v5-big"], V5_SECURE_COOKIE) + "; theme=dark",
    )
    batch.add(
        "getToken-v5-bearer",
        op="getToken",
        version="v5",
        secret=SECRET,
        secureCookie=False,
        authorization=f"Bearer {PY['v5']}",
    )
    batch.add(
        "getToken-v4-bearer",
        op="getToken",
        version="v4",
        secret=SECRET,
        secureCookie=False,
        authorization=f"Bearer {PY['v4']}",
    )
    # The libraries' own chunking of a long value.
    for version, name in (("v4", V4_COOKIE), ("v4", V4_SECURE_COOKIE), ("v5", V5_COOKIE)):
        for length in (3933, 3936, 3937, 9000):
            batch.add(f"chunk-{name}-{length}", op="chunk", version=version, name=name, token="t" * length)
    return batch


@pytest.fixture(scope="module")
def node() -> dict[str, dict[str, Any]]:
    return build_batch().run()


def value(node: dict[str, dict[str, Any]], key: str) -> Any:
    result = node[key]
    assert result["ok"], f"{key}: {result['error']}"
    return result["value"]


def refused(header: str | None, authorization: str | None = None, config=CONFIG) -> str:
    with pytest.raises(AuthError) as excinfo:
        authenticate(header, authorization, config)
    return excinfo.value.reason


# node mints, Python authenticates.


@pytest.mark.parametrize("name", V4_NAMES)
def test_next_auth_v4_token(node, name):
    principal = authenticate(cookie_header(value(node, "encode-v4"), name), None, CONFIG)
    assert principal.user_id == "user-7"
    assert {k: principal.claims[k] for k in CLAIMS} == CLAIMS
    assert principal.expires_at == principal.claims["iat"] + 30 * 86400


@pytest.mark.parametrize("name", V5_NAMES)
def test_auth_core_v5_token(node, name):
    token = value(node, f"encode-{name}")
    principal = authenticate(cookie_header(token, name), None, CONFIG)
    assert principal.user_id == "user-7"
    assert {k: principal.claims[k] for k in CLAIMS} == CLAIMS
    other = V5_SECURE_COOKIE if name == V5_COOKIE else V5_COOKIE
    assert refused(cookie_header(token, other)) == "invalid"  # wrong salt


def test_node_tokens_as_bearer(node):
    for key in ("encode-v4", f"encode-{V5_COOKIE}"):
        assert authenticate(None, f"Bearer {value(node, key)}", CONFIG).user_id == "user-7"


@pytest.mark.parametrize(("key", "name"), [("encode-v4-big", V4_COOKIE), ("encode-v5-big", V5_COOKIE)])
def test_node_big_tokens_chunked_by_node(node, key, name):
    token = value(node, key)
    version = "v4" if name == V4_COOKIE else "v5"
    chunked = Batch()
    chunked.add("chunk", op="chunk", version=version, name=name, token=token)
    header = value(chunked.run(), "chunk")  # the library's own SessionStore.chunk()
    assert header.startswith(f"{name}.0=") and f"{name}.1=" in header
    assert header == cookie_header(token, name)
    assert authenticate(header, None, CONFIG).claims["bio"] == "é" * 3000


def test_rotation_of_node_tokens(node):
    rotated = AuthConfig((SECRET, OLD_SECRET))
    for key, name in (("encode-v5-old", V5_COOKIE), ("encode-v4-old", V4_COOKIE)):
        header = cookie_header(value(node, key), name)
        assert refused(header) == "invalid"
        assert authenticate(header, None, rotated).user_id == "user-7"


def test_node_expired_and_subjectless_tokens(node):
    assert refused(cookie_header(value(node, "encode-v5-expired"), V5_COOKIE)) == "expired"
    assert refused(cookie_header(value(node, "encode-v4-nosub"), V4_COOKIE)) == "no_subject"


# Python mints, node decodes.


@pytest.mark.parametrize("key", ["decode-v4", "decode-v5", "decode-v5-secure"])
def test_node_decodes_our_tokens(node, key):
    payload = value(node, key)
    assert {k: payload[k] for k in CLAIMS} == CLAIMS
    assert payload["exp"] == payload["iat"] + 30 * 86400


def test_node_refuses_our_tokens_when_it_should(node):
    assert not node["decode-v5-wrong-salt"]["ok"]
    assert not node["decode-v4-wrong-secret"]["ok"]
    for version in ("v4", "v5"):
        result = node[f"decode-{version}-expired"]
        assert not result["ok"] and "JWTExpired" in result["error"]


@pytest.mark.parametrize("key", ["getToken-v4-big", "getToken-v5-big"])
def test_node_get_token_reads_our_chunked_cookies(node, key):
    payload = value(node, key)
    assert payload is not None, "getToken() found no session"
    assert payload["sub"] == "user-7" and payload["bio"] == "é" * 3000


@pytest.mark.parametrize("key", ["getToken-v4-bearer", "getToken-v5-bearer"])
def test_node_get_token_reads_our_bearer_tokens(node, key):
    assert value(node, key)["sub"] == "user-7"


@pytest.mark.parametrize("name", [V4_COOKIE, V4_SECURE_COOKIE, V5_COOKIE])
@pytest.mark.parametrize("length", [3933, 3936, 3937, 9000])
def test_cookie_header_chunks_like_session_store(node, name, length):
    assert cookie_header("t" * length, name) == value(node, f"chunk-{name}-{length}")
