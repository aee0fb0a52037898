/**
 * src/crypto/chacha20_poly1305.ts against RFC 8439's vectors, a BigInt
 * Poly1305 written from the definition (§2.5), and node:crypto's
 * ChaCha20-Poly1305 (an independent implementation), plus the
 * authentication properties: any flipped bit or truncation fails to open.
 */
import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { ChaCha20Poly1305, chachaBlock, Poly1305 } from "../../src/crypto/chacha20_poly1305.ts";
import { concat, hex, seededRandom, toHex } from "./hex.ts";

function words(b: Uint8Array): Uint32Array {
  const out = new Uint32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) {
    out[i] = b[4 * i]! | (b[4 * i + 1]! << 8) | (b[4 * i + 2]! << 16) | (b[4 * i + 3]! << 24);
  }
  return out;
}

function bytesOf(w: Uint32Array): Uint8Array {
  const out = new Uint8Array(w.length * 4);
  for (let i = 0; i < w.length; i++) {
    for (let j = 0; j < 4; j++) out[4 * i + j] = (w[i]! >>> (8 * j)) & 0xff;
  }
  return out;
}

/** Little-endian bytes as a BigInt. */
function le(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

/** Poly1305 straight from RFC 8439 §2.5.1, in BigInt, for whole 16-byte blocks. */
function referencePoly1305(key: Uint8Array, message: Uint8Array): Uint8Array {
  const p = (1n << 130n) - 5n;
  const r = le(key.subarray(0, 16)) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const s = le(key.subarray(16, 32));
  let acc = 0n;
  for (let at = 0; at < message.length; at += 16) {
    acc = ((acc + le(message.subarray(at, at + 16)) + (1n << 128n)) * r) % p;
  }
  let tag = (acc + s) & ((1n << 128n) - 1n);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++, tag >>= 8n) out[i] = Number(tag & 0xffn);
  return out;
}

function poly1305(key: Uint8Array, message: Uint8Array): Uint8Array {
  const mac = new Poly1305();
  mac.reset(key);
  mac.update(message, 0, message.length);
  const out = new Uint8Array(16);
  mac.finish(out, 0);
  return out;
}

function nodeSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array) {
  const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: pt.length });
  return concat(c.update(pt), c.final(), c.getAuthTag());
}

/** `b` copied to an odd offset in a larger buffer: no alignment to lean on. */
function misaligned(b: Uint8Array, offset: number): Uint8Array {
  const buf = new Uint8Array(b.length + offset + 3).fill(0xee);
  buf.set(b, offset);
  return buf.subarray(offset, offset + b.length);
}

Deno.test("chacha20: block function, RFC 8439 §2.3.2", () => {
  const key = [...words(hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"))];
  const [n0, n1, n2] = words(hex("000000090000004a00000000"));
  const out = new Uint32Array(16);
  chachaBlock(key, 1, n0!, n1!, n2!, out);
  assert.equal(
    toHex(bytesOf(out)),
    "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e" +
      "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
  );
});

Deno.test("poly1305: values at the edges of the reduction, derived by hand from §2.5", () => {
  const r2 = concat(hex("02"), new Uint8Array(15));
  // (2^128 + 2^128 - 1) * 2 = 2^130 - 2 = 3 (mod p).
  assert.equal(
    toHex(poly1305(concat(r2, new Uint8Array(16)), hex("ff".repeat(16)))),
    "03" + "00".repeat(15),
  );
  // (2^128 + 2) * 2 + (2^128 - 1) = 3 (mod 2^128): s makes the final sum wrap.
  assert.equal(
    toHex(poly1305(concat(r2, hex("ff".repeat(16))), concat(hex("02"), new Uint8Array(15)))),
    "03" + "00".repeat(15),
  );
  // (2^129 - 3) * 2 = 2^130 - 6 = p - 1: the largest value that must not be reduced.
  assert.equal(
    toHex(poly1305(concat(r2, new Uint8Array(16)), hex("fd" + "ff".repeat(15)))),
    "fa" + "ff".repeat(15),
  );
});

Deno.test("poly1305: agrees with the BigInt definition on random and all-ones inputs", () => {
  const random = seededRandom(8439);
  for (let i = 0; i < 400; i++) {
    const key = i % 4 === 0 ? hex("ff".repeat(32)) : random(32);
    const blocks = i % 9;
    const message = i % 3 === 0 ? new Uint8Array(16 * blocks).fill(0xff) : random(16 * blocks);
    assert.equal(
      toHex(poly1305(key, message)),
      toHex(referencePoly1305(key, message)),
      `case ${i}`,
    );
  }
});

Deno.test("chacha20-poly1305: AEAD vector, RFC 8439 §2.8.2", () => {
  const aead = new ChaCha20Poly1305(
    hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
  );
  const nonce = hex("070000004041424344454647");
  const aad = hex("50515253c0c1c2c3c4c5c6c7");
  const plaintext = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const sealed = aead.seal(nonce, aad, plaintext);
  assert.equal(toHex(sealed.subarray(plaintext.length)), "1ae10b594f09e26a7e902ecbd0600691");
  assert.equal(toHex(sealed.subarray(0, 16)), "d31a8d34648e60db7b86afbc53ef7ec2");
  assert.deepEqual(aead.open(nonce, aad, sealed), plaintext);
});

Deno.test("chacha20-poly1305: agrees with node:crypto for every length 0..300, misaligned inputs", () => {
  const random = seededRandom(7905);
  const key = random(32);
  const aead = new ChaCha20Poly1305(misaligned(key, 3));
  for (let n = 0; n <= 300; n++) {
    const nonce = random(12);
    const aad = random(n % 40);
    const plaintext = random(n);
    const expected = nodeSeal(key, nonce, aad, plaintext);
    const sealed = aead.seal(misaligned(nonce, 1), misaligned(aad, 5), misaligned(plaintext, 7));
    assert.equal(toHex(sealed), toHex(expected), `length ${n}`);
    assert.deepEqual(aead.open(nonce, aad, misaligned(expected, 2)), plaintext, `open ${n}`);
  }
  // Records up to the TLS maximum (2^14 bytes), with the 13-byte record AAD.
  for (const n of [1200, 4096, 16384]) {
    const nonce = random(12), aad = random(13), plaintext = random(n);
    assert.equal(
      toHex(aead.seal(nonce, aad, plaintext)),
      toHex(nodeSeal(key, nonce, aad, plaintext)),
    );
  }
});

Deno.test("chacha20-poly1305: any flipped bit, truncation or wrong nonce/AAD fails to open", () => {
  const random = seededRandom(11);
  const aead = new ChaCha20Poly1305(random(32));
  const nonce = random(12), aad = random(13), plaintext = random(40);
  const sealed = aead.seal(nonce, aad, plaintext);
  for (let bit = 0; bit < sealed.length * 8; bit++) {
    const bad = sealed.slice();
    bad[bit >>> 3]! ^= 1 << (bit & 7);
    assert.equal(aead.open(nonce, aad, bad), null, `bit ${bit}`);
  }
  for (let n = 0; n < sealed.length; n++) {
    assert.equal(aead.open(nonce, aad, sealed.subarray(0, n)), null);
  }
  const otherNonce = nonce.slice();
  otherNonce[11]! ^= 1;
  assert.equal(aead.open(otherNonce, aad, sealed), null);
  assert.equal(aead.open(nonce, aad.subarray(1), sealed), null);
  assert.equal(aead.open(nonce.subarray(1), aad, sealed), null);
  assert.deepEqual(aead.open(nonce, aad, sealed), plaintext);
  assert.throws(() => new ChaCha20Poly1305(new Uint8Array(16)), /key of 16 bytes/);
  assert.throws(() => aead.seal(new Uint8Array(8), aad, plaintext), /nonce of 8 bytes/);
});

Deno.test("chacha20-poly1305: instances with different keys, used in turn, do not disturb each other", () => {
  const random = seededRandom(12);
  const keys = [random(32), random(32)];
  const aeads = keys.map((k) => new ChaCha20Poly1305(k));
  for (let i = 0; i < 40; i++) {
    const which = i % 2, nonce = random(12), aad = random(13), plaintext = random(i * 7);
    const sealed = aeads[which]!.seal(nonce, aad, plaintext);
    assert.equal(toHex(sealed), toHex(nodeSeal(keys[which]!, nonce, aad, plaintext)), `seal ${i}`);
    // The other key must not open it; its own must, after the other was used.
    assert.equal(aeads[1 - which]!.open(nonce, aad, sealed), null);
    assert.deepEqual(aeads[which]!.open(nonce, aad, sealed), plaintext, `open ${i}`);
  }
});
