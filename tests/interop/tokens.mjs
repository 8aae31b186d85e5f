// Encode, decode and chunk NextAuth session tokens with the real npm packages, in one batch.
//
// Used by tests/interop/test_nextauth_interop.py: one process per test session, not per token.
//
//   node tokens.mjs < requests.json > results.json
//
// Input: a JSON array of requests; output: a JSON array of results, in the same order.
//
//   {"op": "encode", "version": "v4"|"v5", "secret", "token": {...claims}, "salt"?, "maxAge"?}
//       -> {"ok": true, "value": "<JWE>"}
//   {"op": "decode", "version": "v4"|"v5", "secret" (string or list), "token", "salt"?}
//       -> {"ok": true, "value": {...claims}} or {"ok": false, "error": "..."}
//   {"op": "getToken", "version": "v4"|"v5", "secret", "secureCookie", "cookie"?, "authorization"?}
//       -> {"ok": true, "value": {...claims} | null}       (the libraries' own request reading)
//   {"op": "chunk", "version": "v4"|"v5", "name", "token"}
//       -> {"ok": true, "value": "<Cookie header>"}          (the libraries' own SessionStore)
//
// next-auth 4 is CommonJS; @auth/core is ESM. Private modules (the cookie SessionStores) are loaded
// by file path because the packages' "exports" maps do not list them.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const v4 = require("next-auth/jwt");
const v4Cookie = require("./node_modules/next-auth/core/lib/cookie.js");
const v5 = await import("@auth/core/jwt");
const v5Cookie = await import("./node_modules/@auth/core/lib/utils/cookie.js");

const quiet = { debug() {}, error() {}, warn() {} };

function parseCookieHeader(header) {
  const cookies = {};
  for (const pair of (header ?? "").split(";")) {
    const eq = pair.indexOf("=");
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim();
    if (!(name in cookies)) cookies[name] = pair.slice(eq + 1).trim();
  }
  return cookies;
}

async function run(request) {
  const { op, version } = request;
  if (op === "encode") {
    const lib = version === "v4" ? v4 : v5;
    return lib.encode({
      token: request.token,
      secret: request.secret,
      salt: request.salt ?? undefined,
      ...(request.maxAge !== undefined && { maxAge: request.maxAge }),
    });
  }
  if (op === "decode") {
    const lib = version === "v4" ? v4 : v5;
    return lib.decode({ token: request.token, secret: request.secret, salt: request.salt ?? undefined });
  }
  if (op === "getToken") {
    const headers = {};
    if (request.cookie) headers.cookie = request.cookie;
    if (request.authorization) headers.authorization = request.authorization;
    if (version === "v4") {
      const req = { headers, cookies: parseCookieHeader(request.cookie) };
      return v4.getToken({ req, secret: request.secret, secureCookie: request.secureCookie, logger: quiet });
    }
    return v5.getToken({
      req: { headers },
      secret: request.secret,
      secureCookie: request.secureCookie,
      logger: quiet,
    });
  }
  if (op === "chunk") {
    const { SessionStore } = version === "v4" ? v4Cookie : v5Cookie;
    const option = { name: request.name, options: {} };
    const store =
      version === "v4"
        ? new SessionStore(option, { cookies: {}, headers: {} }, quiet)
        : new SessionStore(option, {}, quiet);
    return store
      .chunk(request.token, {})
      .map((c) => `${c.name}=${c.value}`)
      .join("; ");
  }
  throw new Error(`unknown op ${op}`);
}

const requests = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const request of requests) {
  try {
    results.push({ ok: true, value: (await run(request)) ?? null });
  } catch (error) {
    results.push({ ok: false, error: `${error?.name}: ${error?.message}` });
  }
}
process.stdout.write(JSON.stringify(results));
