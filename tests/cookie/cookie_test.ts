import assert from "node:assert/strict";
import { clientHelloParams, COOKIE_LENGTH, CookieAuthority } from "../../src/cookie/cookie.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { encodeClientHello } from "../../src/handshake/messages.ts";
import { seededRandom } from "../helpers/random.ts";

const peer = new TextEncoder().encode("127.0.0.1:40000");
const other = new TextEncoder().encode("127.0.0.1:40001");

function hello(
  cookie: Uint8Array = new Uint8Array(0),
  suites = [0x00a8],
  random: Uint8Array = new Uint8Array(32).fill(7),
) {
  return encodeClientHello({
    clientVersion: 0xfefd,
    random,
    sessionId: new Uint8Array(0),
    cookie,
    cipherSuites: suites,
    compressionMethods: new Uint8Array([0]),
    extensions: [{ type: 23, data: new Uint8Array(0) }],
  });
}

function authority(rotationMs = 60_000) {
  return new CookieAuthority({
    provider: nobleProvider,
    random: seededRandom("cookie"),
    rotationMs,
  });
}

Deno.test("a minted cookie verifies for the same peer and ClientHello", () => {
  const a = authority();
  const cookie = a.mint(peer, clientHelloParams(hello()), 5_000);
  assert.equal(cookie.length, COOKIE_LENGTH);
  const params = clientHelloParams(hello(cookie));
  assert.deepEqual(params.cookie, cookie);
  assert.equal(a.verify(peer, params, params.cookie, 6_000), "ok");
});

Deno.test("a cookie does not verify for another address:port", () => {
  const a = authority();
  const cookie = a.mint(peer, clientHelloParams(hello()), 5_000);
  assert.equal(a.verify(other, clientHelloParams(hello(cookie)), cookie, 5_000), "invalid");
});

Deno.test("a cookie is bound to the ClientHello parameters", () => {
  const a = authority();
  const cookie = a.mint(peer, clientHelloParams(hello()), 5_000);
  const changedSuites = clientHelloParams(hello(cookie, [0x00a9]));
  assert.equal(a.verify(peer, changedSuites, cookie, 5_000), "invalid");
  const changedRandom = clientHelloParams(hello(cookie, [0x00a8], new Uint8Array(32).fill(8)));
  assert.equal(a.verify(peer, changedRandom, cookie, 5_000), "invalid");
});

Deno.test("every single-bit change of a cookie is refused", () => {
  const a = authority();
  const cookie = a.mint(peer, clientHelloParams(hello()), 5_000);
  for (let i = 0; i < cookie.length * 8; i++) {
    const bad = cookie.slice();
    bad[i >> 3]! ^= 1 << (i & 7);
    const verdict = a.verify(peer, clientHelloParams(hello(bad)), bad, 5_000);
    assert.notEqual(verdict, "ok", `bit ${i}`);
  }
});

Deno.test("missing and malformed cookies are told apart", () => {
  const a = authority();
  const params = clientHelloParams(hello());
  assert.equal(a.verify(peer, params, new Uint8Array(0), 0), "missing");
  assert.equal(a.verify(peer, params, new Uint8Array(5), 0), "malformed");
});

Deno.test("the previous secret is accepted after one rotation, not after two", () => {
  const a = authority(10_000);
  const params = clientHelloParams(hello());
  const cookie = a.mint(peer, params, 0);
  assert.equal(a.verify(peer, params, cookie, 9_000), "ok");
  assert.equal(a.verify(peer, params, cookie, 12_000), "ok", "previous secret still accepted");
  assert.equal(a.verify(peer, params, cookie, 25_000), "expired", "retired after two rotations");
});

Deno.test("an explicit rotation keeps the just-retired secret valid", () => {
  const a = authority(60_000);
  const params = clientHelloParams(hello());
  const cookie = a.mint(peer, params, 1_000);
  a.rotate(2_000);
  assert.equal(a.verify(peer, params, cookie, 2_500), "ok");
  a.rotate(3_000);
  assert.equal(a.verify(peer, params, cookie, 3_500), "expired");
});

Deno.test("a cookie past its lifetime is expired even with a valid MAC", () => {
  const a = new CookieAuthority({
    provider: nobleProvider,
    random: seededRandom("life"),
    rotationMs: 60_000,
    lifetimeMs: 5_000,
  });
  const params = clientHelloParams(hello());
  const cookie = a.mint(peer, params, 0);
  assert.equal(a.verify(peer, params, cookie, 4_000), "ok");
  assert.equal(a.verify(peer, params, cookie, 7_000), "expired");
});
