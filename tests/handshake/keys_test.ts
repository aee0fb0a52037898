import assert from "node:assert/strict";
import { ecdhePskPremaster, pskPremaster } from "../../src/handshake/keys.ts";

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
