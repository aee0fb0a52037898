import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { prf } from "../../src/crypto/prf.ts";
import type { HashName } from "../../src/crypto/provider.ts";
import { concat, hex, seededRandom, toHex } from "./hex.ts";

// The TLS 1.2 PRF vectors posted to the IETF TLS list (tls/current/msg03416)
// and used by many implementations' tests.

Deno.test('PRF: P_SHA256 "test label" vector (100 bytes)', () => {
  const out = prf(
    nobleProvider,
    "sha256",
    hex("9bbe436ba940f017b17652849a71db35"),
    "test label",
    hex("a0ba9f936cda311827a6f796ffd5198c"),
    100,
  );
  assert.equal(
    toHex(out),
    "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a" +
      "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab" +
      "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701" +
      "87347b66",
  );
});

Deno.test('PRF: P_SHA384 "test label" vector (148 bytes)', () => {
  const out = prf(
    nobleProvider,
    "sha384",
    hex("b80b733d6ceefcdc71566ea48e5567df"),
    "test label",
    hex("cd665cf6a8447dd6ff8b27555edb7465"),
    148,
  );
  assert.equal(
    toHex(out),
    "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd" +
      "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd" +
      "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425" +
      "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6" +
      "91c8f3a26854308d5eaa3be85e0990703d73e56f",
  );
});

/** RFC 5246 §5 written out with node:crypto's HMAC, as an independent reference. */
function referencePrf(
  hash: HashName,
  secret: Uint8Array,
  label: string,
  seed: Uint8Array,
  n: number,
) {
  const ls = concat(new TextEncoder().encode(label), seed);
  const out: Uint8Array[] = [];
  let a = ls;
  let total = 0;
  while (total < n) {
    a = new Uint8Array(createHmac(hash, secret).update(a).digest());
    const block = new Uint8Array(createHmac(hash, secret).update(a).update(ls).digest());
    out.push(block);
    total += block.length;
  }
  return concat(...out).subarray(0, n);
}

Deno.test("PRF: every length 0..200 is a prefix of the same stream and matches a reference", () => {
  const random = seededRandom(12);
  for (const hash of ["sha256", "sha384"] as const) {
    const secret = random(48);
    const seed = random(64);
    const long = prf(nobleProvider, hash, secret, "key expansion", seed, 200);
    assert.deepEqual(long, referencePrf(hash, secret, "key expansion", seed, 200));
    for (let n = 0; n <= 200; n++) {
      assert.deepEqual(
        prf(nobleProvider, hash, secret, "key expansion", seed, n),
        long.subarray(0, n),
      );
    }
  }
});

Deno.test("PRF: an empty secret and seed are allowed; a bad length is not", () => {
  const out = prf(
    nobleProvider,
    "sha256",
    new Uint8Array(0),
    "master secret",
    new Uint8Array(0),
    48,
  );
  assert.deepEqual(
    out,
    referencePrf("sha256", new Uint8Array(0), "master secret", new Uint8Array(0), 48),
  );
  assert.throws(
    () => prf(nobleProvider, "sha256", new Uint8Array(1), "x", new Uint8Array(0), -1),
    /Cannot compute PRF/,
  );
  assert.throws(
    () => prf(nobleProvider, "sha256", new Uint8Array(1), "x", new Uint8Array(0), 1.5),
    /Cannot compute PRF/,
  );
});
