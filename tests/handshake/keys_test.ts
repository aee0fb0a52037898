import assert from "node:assert/strict";
import { ecdhePskPremaster, pskPremaster, Transcript } from "../../src/handshake/keys.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { concat } from "../crypto/hex.ts";

Deno.test("PSK premaster secret is uint16 N, N zeros, uint16 N, psk (RFC 4279 §2)", () => {
  const psk = new Uint8Array([0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]);
  assert.deepEqual(
    pskPremaster(psk),
    new Uint8Array([0, 6, 0, 0, 0, 0, 0, 0, 0, 6, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]),
  );
});

Deno.test("ECDHE_PSK premaster carries the ECDH secret as other_secret (RFC 5489 §2)", () => {
  const z = new Uint8Array(32).fill(0xee);
  const psk = new Uint8Array([1, 2, 3]);
  const pms = ecdhePskPremaster(z, psk);
  assert.equal(pms.length, 2 + 32 + 2 + 3);
  assert.deepEqual(pms.subarray(0, 2), new Uint8Array([0, 32]));
  assert.deepEqual(pms.subarray(2, 34), z);
  assert.deepEqual(pms.subarray(34), new Uint8Array([0, 3, 1, 2, 3]));
});

Deno.test("Transcript: the running hash is the hash of every message so far, at each step, in both providers", () => {
  for (const provider of [nobleProvider, nodeProvider]) {
    for (const hash of ["sha256", "sha384"] as const) {
      const parts = [0, 1, 63, 64, 65, 200, 5000].map((n) =>
        Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff)
      );
      const before = new Transcript();
      before.add(parts[0]!);
      before.add(parts[1]!);
      before.start(provider, hash); // a client: messages came before the suite was known
      const after = new Transcript();
      after.start(provider, hash); // a server: the suite is known first
      after.add(parts[0]!);
      after.add(parts[1]!);
      for (let i = 2; i < parts.length; i++) {
        before.add(parts[i]!);
        after.add(parts[i]!);
        const expected = provider.hash(hash, concat(...parts.slice(0, i + 1)));
        assert.deepEqual(before.hash(provider, hash), expected, `${provider.name} ${hash} ${i}`);
        assert.deepEqual(after.hash(provider, hash), expected, `${provider.name} ${hash} ${i}`);
      }
      assert.throws(() => after.hash(provider, hash === "sha256" ? "sha384" : "sha256"));
    }
  }
});
