/**
 * ChaCha20-Poly1305 (RFC 8439 §2.8) with a 12-byte nonce and a 16-byte tag,
 * written for the record layer's hot path: the key words are unpacked once
 * per key, and a record costs no allocation beyond its output array.
 *
 * Unlike a software AES, nothing here indexes memory by secret data and
 * nothing branches on it: ChaCha20 is additions, rotations and XORs on
 * 32-bit words, and Poly1305 is exact integer arithmetic carried in doubles
 * (ten 13-bit limbs, so every product and sum stays below 2^53) with the
 * final reduction chosen by a mask. That is why this one can serve small
 * records in the default provider, where `node:crypto` spends most of its
 * time building a cipher object per record.
 *
 * Open computes the tag over the ciphertext first and decrypts only when it
 * matches, so no unauthenticated plaintext is ever produced.
 *
 * @module
 */

import { allocateBytes } from "../codec/byte_pool.ts";
import { checkSealRange, InPlaceAead } from "./provider.ts";

const TAG_LENGTH = 16;
/** "expand 32-byte k" as four little-endian words (RFC 8439 §2.3). */
const SIGMA0 = 0x61707865;
const SIGMA1 = 0x3320646e;
const SIGMA2 = 0x79622d32;
const SIGMA3 = 0x6b206574;

/** 2^-13: scaling a row by it and flooring is an exact division, so the carry is exact. */
const LIMB_SCALE = 1 / 8192;

/** The keystream bytes are read through a byte view of the block's words. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

function load32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/**
 * The ChaCha20 block function (RFC 8439 §2.3): 20 rounds over the state of
 * constants, key, block counter and nonce, plus the input state, written to
 * `out` as sixteen words in the platform's byte order fixed to little-endian.
 */
export function chachaBlock(
  key: readonly number[],
  counter: number,
  n0: number,
  n1: number,
  n2: number,
  out: Uint32Array,
): void {
  const k0 = key[0]!, k1 = key[1]!, k2 = key[2]!, k3 = key[3]!;
  const k4 = key[4]!, k5 = key[5]!, k6 = key[6]!, k7 = key[7]!;
  let x0 = SIGMA0, x1 = SIGMA1, x2 = SIGMA2, x3 = SIGMA3;
  let x4 = k0, x5 = k1, x6 = k2, x7 = k3;
  let x8 = k4, x9 = k5, x10 = k6, x11 = k7;
  let x12 = counter, x13 = n0, x14 = n1, x15 = n2;
  for (let round = 0; round < 10; round++) {
    // Column round: quarter rounds on (0,4,8,12) (1,5,9,13) (2,6,10,14) (3,7,11,15).
    x0 = (x0 + x4) | 0, x12 ^= x0, x12 = (x12 << 16) | (x12 >>> 16);
    x8 = (x8 + x12) | 0, x4 ^= x8, x4 = (x4 << 12) | (x4 >>> 20);
    x0 = (x0 + x4) | 0, x12 ^= x0, x12 = (x12 << 8) | (x12 >>> 24);
    x8 = (x8 + x12) | 0, x4 ^= x8, x4 = (x4 << 7) | (x4 >>> 25);
    x1 = (x1 + x5) | 0, x13 ^= x1, x13 = (x13 << 16) | (x13 >>> 16);
    x9 = (x9 + x13) | 0, x5 ^= x9, x5 = (x5 << 12) | (x5 >>> 20);
    x1 = (x1 + x5) | 0, x13 ^= x1, x13 = (x13 << 8) | (x13 >>> 24);
    x9 = (x9 + x13) | 0, x5 ^= x9, x5 = (x5 << 7) | (x5 >>> 25);
    x2 = (x2 + x6) | 0, x14 ^= x2, x14 = (x14 << 16) | (x14 >>> 16);
    x10 = (x10 + x14) | 0, x6 ^= x10, x6 = (x6 << 12) | (x6 >>> 20);
    x2 = (x2 + x6) | 0, x14 ^= x2, x14 = (x14 << 8) | (x14 >>> 24);
    x10 = (x10 + x14) | 0, x6 ^= x10, x6 = (x6 << 7) | (x6 >>> 25);
    x3 = (x3 + x7) | 0, x15 ^= x3, x15 = (x15 << 16) | (x15 >>> 16);
    x11 = (x11 + x15) | 0, x7 ^= x11, x7 = (x7 << 12) | (x7 >>> 20);
    x3 = (x3 + x7) | 0, x15 ^= x3, x15 = (x15 << 8) | (x15 >>> 24);
    x11 = (x11 + x15) | 0, x7 ^= x11, x7 = (x7 << 7) | (x7 >>> 25);
    // Diagonal round: (0,5,10,15) (1,6,11,12) (2,7,8,13) (3,4,9,14).
    x0 = (x0 + x5) | 0, x15 ^= x0, x15 = (x15 << 16) | (x15 >>> 16);
    x10 = (x10 + x15) | 0, x5 ^= x10, x5 = (x5 << 12) | (x5 >>> 20);
    x0 = (x0 + x5) | 0, x15 ^= x0, x15 = (x15 << 8) | (x15 >>> 24);
    x10 = (x10 + x15) | 0, x5 ^= x10, x5 = (x5 << 7) | (x5 >>> 25);
    x1 = (x1 + x6) | 0, x12 ^= x1, x12 = (x12 << 16) | (x12 >>> 16);
    x11 = (x11 + x12) | 0, x6 ^= x11, x6 = (x6 << 12) | (x6 >>> 20);
    x1 = (x1 + x6) | 0, x12 ^= x1, x12 = (x12 << 8) | (x12 >>> 24);
    x11 = (x11 + x12) | 0, x6 ^= x11, x6 = (x6 << 7) | (x6 >>> 25);
    x2 = (x2 + x7) | 0, x13 ^= x2, x13 = (x13 << 16) | (x13 >>> 16);
    x8 = (x8 + x13) | 0, x7 ^= x8, x7 = (x7 << 12) | (x7 >>> 20);
    x2 = (x2 + x7) | 0, x13 ^= x2, x13 = (x13 << 8) | (x13 >>> 24);
    x8 = (x8 + x13) | 0, x7 ^= x8, x7 = (x7 << 7) | (x7 >>> 25);
    x3 = (x3 + x4) | 0, x14 ^= x3, x14 = (x14 << 16) | (x14 >>> 16);
    x9 = (x9 + x14) | 0, x4 ^= x9, x4 = (x4 << 12) | (x4 >>> 20);
    x3 = (x3 + x4) | 0, x14 ^= x3, x14 = (x14 << 8) | (x14 >>> 24);
    x9 = (x9 + x14) | 0, x4 ^= x9, x4 = (x4 << 7) | (x4 >>> 25);
  }
  out[0] = x0 + SIGMA0, out[1] = x1 + SIGMA1, out[2] = x2 + SIGMA2, out[3] = x3 + SIGMA3;
  out[4] = x4 + k0, out[5] = x5 + k1, out[6] = x6 + k2, out[7] = x7 + k3;
  out[8] = x8 + k4, out[9] = x9 + k5, out[10] = x10 + k6, out[11] = x11 + k7;
  out[12] = x12 + counter, out[13] = x13 + n0, out[14] = x14 + n1, out[15] = x15 + n2;
  if (!LITTLE_ENDIAN) {
    for (let i = 0; i < 16; i++) {
      const w = out[i]!;
      out[i] = (w >>> 24) | ((w >>> 8) & 0xff00) | ((w << 8) & 0xff0000) | (w << 24);
    }
  }
}

/**
 * Poly1305 (RFC 8439 §2.5) over whole 16-byte blocks, which is all the AEAD
 * construction ever feeds it (§2.8: every part is zero-padded to 16 bytes).
 *
 * The accumulator h and the clamped key r are ten 13-bit limbs held as
 * doubles: a limb product is below 2^31 and a row of ten below 2^35, far
 * inside the 2^53 of exact integer arithmetic, and the carries are taken
 * with an exact multiply by 2^-13 and a floor.
 */
export class Poly1305 {
  readonly #h = new Float64Array(10);
  readonly #r = new Float64Array(10);
  /** The second key half, s, as eight 16-bit words. */
  readonly #s = new Uint16Array(8);
  /** A zero-padded copy of a partial block. */
  readonly #pad = new Uint8Array(16);
  /** Scratch for the final reduction: h as integers, and h + 5. */
  readonly #final = new Int32Array(10);
  readonly #reduced = new Int32Array(10);

  /** Starts a MAC with the one-time key (r || s) in `key[0..32)`. */
  reset(key: Uint8Array): void {
    this.#h.fill(0);
    const r = this.#r;
    // r is clamped (§2.5.1): the top four bits of bytes 3, 7, 11, 15 and
    // the bottom two of bytes 4, 8, 12 are cleared.
    const t0 = key[0]! | (key[1]! << 8);
    const t1 = key[2]! | ((key[3]! & 0x0f) << 8);
    const t2 = (key[4]! & 0xfc) | (key[5]! << 8);
    const t3 = key[6]! | ((key[7]! & 0x0f) << 8);
    const t4 = (key[8]! & 0xfc) | (key[9]! << 8);
    const t5 = key[10]! | ((key[11]! & 0x0f) << 8);
    const t6 = (key[12]! & 0xfc) | (key[13]! << 8);
    const t7 = key[14]! | ((key[15]! & 0x0f) << 8);
    r[0] = t0 & 0x1fff;
    r[1] = ((t0 >>> 13) | (t1 << 3)) & 0x1fff;
    r[2] = ((t1 >>> 10) | (t2 << 6)) & 0x1fff;
    r[3] = ((t2 >>> 7) | (t3 << 9)) & 0x1fff;
    r[4] = ((t3 >>> 4) | (t4 << 12)) & 0x1fff;
    r[5] = (t4 >>> 1) & 0x1fff;
    r[6] = ((t4 >>> 14) | (t5 << 2)) & 0x1fff;
    r[7] = ((t5 >>> 11) | (t6 << 5)) & 0x1fff;
    r[8] = ((t6 >>> 8) | (t7 << 8)) & 0x1fff;
    r[9] = t7 >>> 5;
    const s = this.#s;
    for (let i = 0; i < 8; i++) s[i] = key[16 + 2 * i]! | (key[17 + 2 * i]! << 8);
  }

  /** Absorbs `data[from..to)`, the last partial block zero-padded to 16 bytes. */
  update(data: Uint8Array, from: number, to: number): void {
    const whole = from + ((to - from) & ~15);
    if (whole > from) this.#blocks(data, from, whole);
    if (whole < to) {
      const pad = this.#pad;
      pad.fill(0);
      for (let i = whole; i < to; i++) pad[i - whole] = data[i]!;
      this.#blocks(pad, 0, 16);
    }
  }

  /** Absorbs the final block of §2.8: the AAD and ciphertext lengths as two uint64le. */
  lengths(aadLength: number, textLength: number): void {
    const pad = this.#pad;
    pad.fill(0);
    for (let i = 0, n = aadLength; i < 6; i++, n = Math.floor(n / 256)) pad[i] = n & 0xff;
    for (let i = 8, n = textLength; i < 14; i++, n = Math.floor(n / 256)) pad[i] = n & 0xff;
    this.#blocks(pad, 0, 16);
  }

  #blocks(m: Uint8Array, from: number, to: number): void {
    const h = this.#h, r = this.#r;
    let h0 = h[0]!, h1 = h[1]!, h2 = h[2]!, h3 = h[3]!, h4 = h[4]!;
    let h5 = h[5]!, h6 = h[6]!, h7 = h[7]!, h8 = h[8]!, h9 = h[9]!;
    const r0 = r[0]!, r1 = r[1]!, r2 = r[2]!, r3 = r[3]!, r4 = r[4]!;
    const r5 = r[5]!, r6 = r[6]!, r7 = r[7]!, r8 = r[8]!, r9 = r[9]!;
    // 2^130 = 5 (mod p): a product that lands at limb 10 + i wraps to limb i times 5.
    const s1 = 5 * r1, s2 = 5 * r2, s3 = 5 * r3, s4 = 5 * r4, s5 = 5 * r5;
    const s6 = 5 * r6, s7 = 5 * r7, s8 = 5 * r8, s9 = 5 * r9;
    for (let at = from; at < to; at += 16) {
      const t0 = m[at]! | (m[at + 1]! << 8);
      const t1 = m[at + 2]! | (m[at + 3]! << 8);
      const t2 = m[at + 4]! | (m[at + 5]! << 8);
      const t3 = m[at + 6]! | (m[at + 7]! << 8);
      const t4 = m[at + 8]! | (m[at + 9]! << 8);
      const t5 = m[at + 10]! | (m[at + 11]! << 8);
      const t6 = m[at + 12]! | (m[at + 13]! << 8);
      const t7 = m[at + 14]! | (m[at + 15]! << 8);
      h0 += t0 & 0x1fff;
      h1 += ((t0 >>> 13) | (t1 << 3)) & 0x1fff;
      h2 += ((t1 >>> 10) | (t2 << 6)) & 0x1fff;
      h3 += ((t2 >>> 7) | (t3 << 9)) & 0x1fff;
      h4 += ((t3 >>> 4) | (t4 << 12)) & 0x1fff;
      h5 += (t4 >>> 1) & 0x1fff;
      h6 += ((t4 >>> 14) | (t5 << 2)) & 0x1fff;
      h7 += ((t5 >>> 11) | (t6 << 5)) & 0x1fff;
      h8 += ((t6 >>> 8) | (t7 << 8)) & 0x1fff;
      // Bit 128 of every whole block (the appended 0x01 byte): limb 9 starts at bit 117.
      h9 += (t7 >>> 5) | 0x800;

      const d0 = h0 * r0 + h1 * s9 + h2 * s8 + h3 * s7 + h4 * s6 + h5 * s5 + h6 * s4 + h7 * s3 +
        h8 * s2 + h9 * s1;
      let d1 = h0 * r1 + h1 * r0 + h2 * s9 + h3 * s8 + h4 * s7 + h5 * s6 + h6 * s5 + h7 * s4 +
        h8 * s3 + h9 * s2;
      let d2 = h0 * r2 + h1 * r1 + h2 * r0 + h3 * s9 + h4 * s8 + h5 * s7 + h6 * s6 + h7 * s5 +
        h8 * s4 + h9 * s3;
      let d3 = h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s9 + h5 * s8 + h6 * s7 + h7 * s6 +
        h8 * s5 + h9 * s4;
      let d4 = h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0 + h5 * s9 + h6 * s8 + h7 * s7 +
        h8 * s6 + h9 * s5;
      let d5 = h0 * r5 + h1 * r4 + h2 * r3 + h3 * r2 + h4 * r1 + h5 * r0 + h6 * s9 + h7 * s8 +
        h8 * s7 + h9 * s6;
      let d6 = h0 * r6 + h1 * r5 + h2 * r4 + h3 * r3 + h4 * r2 + h5 * r1 + h6 * r0 + h7 * s9 +
        h8 * s8 + h9 * s7;
      let d7 = h0 * r7 + h1 * r6 + h2 * r5 + h3 * r4 + h4 * r3 + h5 * r2 + h6 * r1 + h7 * r0 +
        h8 * s9 + h9 * s8;
      let d8 = h0 * r8 + h1 * r7 + h2 * r6 + h3 * r5 + h4 * r4 + h5 * r3 + h6 * r2 + h7 * r1 +
        h8 * r0 + h9 * s9;
      let d9 = h0 * r9 + h1 * r8 + h2 * r7 + h3 * r6 + h4 * r5 + h5 * r4 + h6 * r3 + h7 * r2 +
        h8 * r1 + h9 * r0;

      // Carry each row into the next; the carry out of limb 9 wraps to limb 0 times 5.
      let c = Math.floor(d0 * LIMB_SCALE);
      h0 = d0 - c * 0x2000;
      d1 += c, c = Math.floor(d1 * LIMB_SCALE), h1 = d1 - c * 0x2000;
      d2 += c, c = Math.floor(d2 * LIMB_SCALE), h2 = d2 - c * 0x2000;
      d3 += c, c = Math.floor(d3 * LIMB_SCALE), h3 = d3 - c * 0x2000;
      d4 += c, c = Math.floor(d4 * LIMB_SCALE), h4 = d4 - c * 0x2000;
      d5 += c, c = Math.floor(d5 * LIMB_SCALE), h5 = d5 - c * 0x2000;
      d6 += c, c = Math.floor(d6 * LIMB_SCALE), h6 = d6 - c * 0x2000;
      d7 += c, c = Math.floor(d7 * LIMB_SCALE), h7 = d7 - c * 0x2000;
      d8 += c, c = Math.floor(d8 * LIMB_SCALE), h8 = d8 - c * 0x2000;
      d9 += c, c = Math.floor(d9 * LIMB_SCALE), h9 = d9 - c * 0x2000;
      h0 += c * 5;
      c = Math.floor(h0 * LIMB_SCALE);
      h0 -= c * 0x2000;
      h1 += c;
    }
    h[0] = h0, h[1] = h1, h[2] = h2, h[3] = h3, h[4] = h4;
    h[5] = h5, h[6] = h6, h[7] = h7, h[8] = h8, h[9] = h9;
  }

  /** Writes the tag, (h mod p) + s mod 2^128, to `out[at..at+16)`. */
  finish(out: Uint8Array, at: number): void {
    const h = this.#final, g = this.#reduced;
    for (let i = 0; i < 10; i++) h[i] = this.#h[i]!;
    // Two carry passes leave every limb below 2^13 and h below 2^130: the
    // first may wrap a small carry into limb 0, the second absorbs it.
    carryLimbs(h);
    carryLimbs(h);
    // g = h + 5: its bit 2^130 is set exactly when h >= p = 2^130 - 5, and
    // then g without that bit is h - p.
    let c = 5;
    for (let i = 0; i < 10; i++) {
      const v = h[i]! + c;
      g[i] = v & 0x1fff;
      c = v >>> 13;
    }
    // Select g or h by a mask rather than a branch on the secret.
    const useG = -c;
    for (let i = 0; i < 10; i++) h[i] = (g[i]! & useG) | (h[i]! & ~useG);
    const s = this.#s;
    c = 0;
    for (let i = 0; i < 8; i++) {
      // Bits 16i .. 16i+15 of h start in limb (16i / 13), at bit (16i % 13).
      const bit = 16 * i;
      const limb = Math.floor(bit / 13), shift = bit % 13;
      let word = h[limb]! >>> shift;
      for (let l = limb + 1, have = 13 - shift; have < 16 && l < 10; l++, have += 13) {
        word |= h[l]! << have;
      }
      const f = (word & 0xffff) + s[i]! + c;
      out[at + 2 * i] = f & 0xff;
      out[at + 2 * i + 1] = (f >>> 8) & 0xff;
      c = f >>> 16;
    }
  }
}

/** One carry pass over 13-bit limbs; the carry out of limb 9 (2^130 = 5 mod p) wraps to limb 0 times 5. */
function carryLimbs(h: Int32Array): void {
  let c = 0;
  for (let i = 0; i < 10; i++) {
    const v = h[i]! + c;
    h[i] = v & 0x1fff;
    c = v >>> 13;
  }
  h[0] = h[0]! + 5 * c;
}

// Scratch shared by every instance: a seal or open runs to completion
// without yielding, so no two ever use it at once, and an idle connection
// keeps none of it (a typed array costs ~150 bytes of heap before its data).
const BLOCK = new Uint32Array(16);
const KEYSTREAM = new Uint8Array(BLOCK.buffer);
const MAC = new Poly1305();
const TAG = new Uint8Array(TAG_LENGTH);

/** A keyed ChaCha20-Poly1305 AEAD. */
export class ChaCha20Poly1305 extends InPlaceAead {
  readonly tagLength = TAG_LENGTH;
  /**
   * The only per-key state, as a plain array of numbers: an idle connection
   * holds two, and a typed array would cost three times the heap.
   */
  readonly #key: number[] = [];

  constructor(key: Uint8Array) {
    super();
    if (key.length !== 32) {
      throw new TypeError(`Cannot create ChaCha20-Poly1305: key of ${key.length} bytes`);
    }
    for (let i = 0; i < 8; i++) this.#key.push(load32(key, 4 * i));
  }

  /** A copy of the key bytes (for a caller that hands large records to another implementation). */
  keyBytes(): Uint8Array {
    const out = new Uint8Array(32);
    for (let i = 0; i < 8; i++) {
      const w = this.#key[i]!;
      out[4 * i] = w;
      out[4 * i + 1] = w >>> 8;
      out[4 * i + 2] = w >>> 16;
      out[4 * i + 3] = w >>> 24;
    }
    return out;
  }

  sealInto(
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    at: number,
  ): void {
    if (nonce.length !== 12) {
      throw new TypeError(`Cannot seal ChaCha20-Poly1305: nonce of ${nonce.length} bytes`);
    }
    const n = plaintext.length;
    checkSealRange(out, at, n + TAG_LENGTH);
    const n0 = load32(nonce, 0), n1 = load32(nonce, 4), n2 = load32(nonce, 8);
    this.#xor(plaintext, n, out, at, n0, n1, n2);
    this.#authenticate(n0, n1, n2, aad, out, at, n);
    out.set(TAG, at + n);
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (nonce.length !== 12 || sealed.length < TAG_LENGTH) return null;
    const n = sealed.length - TAG_LENGTH;
    const n0 = load32(nonce, 0), n1 = load32(nonce, 4), n2 = load32(nonce, 8);
    this.#authenticate(n0, n1, n2, aad, sealed, 0, n);
    const tag = TAG;
    let diff = 0;
    for (let i = 0; i < TAG_LENGTH; i++) diff |= tag[i]! ^ sealed[n + i]!;
    if (diff !== 0) return null;
    const out = allocateBytes(n);
    this.#xor(sealed, n, out, 0, n0, n1, n2);
    return out;
  }

  /**
   * out[to..to+length) = input[0..length) XOR the keystream from block
   * counter 1 (§2.8: block 0 keys Poly1305).
   */
  #xor(
    input: Uint8Array,
    length: number,
    out: Uint8Array,
    to: number,
    n0: number,
    n1: number,
    n2: number,
  ): void {
    const keystream = KEYSTREAM;
    for (let at = 0, counter = 1; at < length; at += 64, counter++) {
      chachaBlock(this.#key, counter, n0, n1, n2, BLOCK);
      const end = Math.min(64, length - at);
      for (let i = 0; i < end; i++) out[to + at + i] = input[at + i]! ^ keystream[i]!;
    }
  }

  /** The tag over aad and `text[from..from+n)` into TAG (§2.8). */
  #authenticate(
    n0: number,
    n1: number,
    n2: number,
    aad: Uint8Array,
    text: Uint8Array,
    from: number,
    n: number,
  ): void {
    chachaBlock(this.#key, 0, n0, n1, n2, BLOCK);
    MAC.reset(KEYSTREAM);
    MAC.update(aad, 0, aad.length);
    MAC.update(text, from, from + n);
    MAC.lengths(aad.length, n);
    MAC.finish(TAG, 0);
  }
}
