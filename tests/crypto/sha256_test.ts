/**
 * src/crypto/sha256.ts against FIPS 180-2's examples, RFC 4231's HMAC
 * vectors and node:crypto (an independent implementation) over every length
 * around the block and padding boundaries.
 */
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { HmacSha256, sha256 } from "../../src/crypto/sha256.ts";
import { hex, seededRandom, toHex } from "./hex.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("sha256: FIPS 180-2 examples (one block, two blocks, a million bytes)", () => {
  assert.equal(
    toHex(sha256(text("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    toHex(sha256(text("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
  assert.equal(
    toHex(sha256(new Uint8Array(1_000_000).fill(0x61))),
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
  );
  assert.equal(
    toHex(sha256(new Uint8Array(0))),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});

Deno.test("hmac-sha256: RFC 4231 test cases 1, 2, 3 and 6 (key longer than a block)", () => {
  const cases = [
    [
      "0b".repeat(20),
      text("Hi There"),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ],
    [
      toHex(text("Jefe")),
      text("what do ya want for nothing?"),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ],
    [
      "aa".repeat(20),
      hex("dd".repeat(50)),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ],
    [
      "aa".repeat(131),
      text("Test Using Larger Than Block-Size Key - Hash Key First"),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ],
  ] as const;
  for (const [key, data, mac] of cases) {
    assert.equal(toHex(new HmacSha256(hex(key)).compute(data)), mac);
  }
});

Deno.test("sha256 and hmac-sha256 agree with node:crypto for every length 0..200 and split", () => {
  const random = seededRandom(180);
  for (let n = 0; n <= 200; n++) {
    const data = random(n);
    assert.equal(toHex(sha256(data)), createHash("sha256").update(data).digest("hex"), `hash ${n}`);
    const key = random(n % 150);
    const mac = new HmacSha256(key);
    const expected = createHmac("sha256", key).update(data).digest("hex");
    assert.equal(toHex(mac.compute(data)), expected, `hmac ${n}`);
    // The same MAC over the same bytes in three parts, and again: the keyed state is reused.
    const a = Math.floor(n / 3), b = Math.floor((2 * n) / 3);
    const parts = [data.subarray(0, a), data.subarray(a, b), data.subarray(b)];
    assert.equal(toHex(mac.compute(...parts)), expected, `hmac parts ${n}`);
  }
});

Deno.test("hmac-sha256: keys interleaved do not disturb each other", () => {
  const random = seededRandom(181);
  const keys = [random(32), random(48), random(100)];
  const macs = keys.map((k) => new HmacSha256(k));
  for (let i = 0; i < 30; i++) {
    const which = i % 3, data = random(i * 5);
    assert.equal(
      toHex(macs[which]!.compute(data)),
      createHmac("sha256", keys[which]!).update(data).digest("hex"),
    );
    assert.equal(toHex(sha256(data)), createHash("sha256").update(data).digest("hex"));
  }
});
