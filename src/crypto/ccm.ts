/**
 * AES-CCM (RFC 3610, NIST SP 800-38C): CBC-MAC over the formatted input,
 * then CTR encryption of the message and of the MAC.
 *
 * `@noble/ciphers` has no CCM, so it is built here on noble's raw AES block
 * function. The key schedule is expanded once per key; each record then costs
 * one AES call per 16 bytes of AAD and plaintext for the MAC and one per 16
 * bytes of plaintext for CTR, plus two (B0 and the tag mask).
 *
 * The AES state is passed as four little-endian 32-bit words, the layout
 * noble's `unsafe.encrypt` works on, so no block is ever copied through a
 * `Uint32Array` view (which would need 4-byte alignment).
 *
 * @module
 */

import { unsafe } from "@noble/ciphers/aes.js";
import { constantTimeEqual } from "./constant_time.ts";
import { allocateBytes } from "../codec/byte_pool.ts";
import { type Aead, InPlaceAead, sealTarget } from "./provider.ts";

const BLOCK = 16;

/** The little-endian 32-bit word at `b[at, at + 4)`. */
function load(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24);
}

/** Writes `w` as a little-endian 32-bit word at `b[at, at + 4)`. */
function store(b: Uint8Array, at: number, w: number): void {
  b[at] = w;
  b[at + 1] = w >>> 8;
  b[at + 2] = w >>> 16;
  b[at + 3] = w >>> 24;
}

/**
 * The counter `i` placed big-endian in the last bytes of a block, as the
 * little-endian word holding bytes 12..15 sees it.
 */
function counterWord(i: number): number {
  return ((i & 0xff) << 24) | ((i & 0xff00) << 8) | ((i >>> 8) & 0xff00) | (i >>> 24);
}

/** One keyed AES-CCM instance for a fixed nonce and tag length. */
class AesCcm extends InPlaceAead {
  readonly tagLength: number;
  readonly #xk: Uint32Array;
  readonly #nonceLength: number;
  /** RFC 3610 §2: L, the size of the length field; 15 - nonce length. */
  readonly #l: number;
  /** Messages must be shorter than 2^(8L) bytes (RFC 3610 §2). */
  readonly #maxLength: number;
  /** Scratch block for B0, the AAD length prefix and partial blocks. */
  readonly #block = new Uint8Array(BLOCK);
  // The CBC-MAC chaining value X_i.
  #x0 = 0;
  #x1 = 0;
  #x2 = 0;
  #x3 = 0;
  // Counter block A_0 as words; A_i differs only in the last word.
  #a0 = 0;
  #a1 = 0;
  #a2 = 0;
  #a3 = 0;

  constructor(key: Uint8Array, tagLength: number, nonceLength: number) {
    super();
    if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
      throw new TypeError(`Cannot create AES-CCM: key of ${key.length} bytes`);
    }
    // RFC 3610 §2: M is one of 4, 6, ..., 16.
    if (!Number.isInteger(tagLength) || tagLength < 4 || tagLength > 16 || tagLength % 2 !== 0) {
      throw new TypeError(`Cannot create AES-CCM: tag of ${tagLength} bytes`);
    }
    // RFC 3610 §2: L is 2..8, so the nonce (15 - L bytes) is 7..13.
    if (!Number.isInteger(nonceLength) || nonceLength < 7 || nonceLength > 13) {
      throw new TypeError(`Cannot create AES-CCM: nonce of ${nonceLength} bytes`);
    }
    this.#xk = unsafe.expandKeyLE(key);
    this.tagLength = tagLength;
    this.#nonceLength = nonceLength;
    this.#l = 15 - nonceLength;
    // Array lengths stay below 2^32, so for L >= 4 there is no practical bound.
    this.#maxLength = this.#l >= 4 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * this.#l);
  }

  sealInto(
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    into: Uint8Array,
    at: number,
  ): void {
    if (nonce.length !== this.#nonceLength) {
      throw new TypeError(`Cannot seal AES-CCM: nonce of ${nonce.length} bytes`);
    }
    if (plaintext.length >= this.#maxLength) {
      throw new RangeError(`Cannot seal AES-CCM: plaintext of ${plaintext.length} bytes`);
    }
    const n = plaintext.length;
    const out = sealTarget(into, at, n + this.tagLength);
    this.#cbcMac(nonce, aad, plaintext);
    this.#setCounter(nonce);
    this.#ctr(plaintext, out, n);
    this.#finishTag();
    out.set(this.#block.subarray(0, this.tagLength), n);
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    const n = sealed.length - this.tagLength;
    if (nonce.length !== this.#nonceLength || n < 0 || n >= this.#maxLength) return null;
    const out = allocateBytes(n);
    // RFC 3610 §2.5: decrypt first, then recompute the MAC over the
    // plaintext; nothing is released unless the tags match.
    this.#setCounter(nonce);
    this.#ctr(sealed, out, n);
    this.#cbcMac(nonce, aad, out);
    this.#finishTag();
    const tag = this.#block.subarray(0, this.tagLength);
    if (!constantTimeEqual(tag, sealed.subarray(n))) {
      out.fill(0);
      return null;
    }
    return out;
  }

  /** X = E(X ^ block): one CBC-MAC step. */
  #absorb(w0: number, w1: number, w2: number, w3: number): void {
    const s = unsafe.encrypt(this.#xk, this.#x0 ^ w0, this.#x1 ^ w1, this.#x2 ^ w2, this.#x3 ^ w3);
    this.#x0 = s.s0;
    this.#x1 = s.s1;
    this.#x2 = s.s2;
    this.#x3 = s.s3;
  }

  /** Absorbs `data[start, end)` zero-padded to a block boundary (RFC 3610 §2.2). */
  #absorbPadded(data: Uint8Array, start: number): void {
    const end = data.length;
    let at = start;
    for (; at + BLOCK <= end; at += BLOCK) {
      this.#absorb(load(data, at), load(data, at + 4), load(data, at + 8), load(data, at + 12));
    }
    if (at < end) {
      const b = this.#block;
      b.fill(0);
      b.set(data.subarray(at, end));
      this.#absorb(load(b, 0), load(b, 4), load(b, 8), load(b, 12));
    }
  }

  /** RFC 3610 §2.2: the CBC-MAC T over B0, the encoded AAD and the message, left in X. */
  #cbcMac(nonce: Uint8Array, aad: Uint8Array, message: Uint8Array): void {
    const b = this.#block;
    const m = message.length;
    // B0 = Flags || Nonce || l(m), Flags = Adata<<6 | M'<<3 | L', M' = (M-2)/2, L' = L-1.
    b[0] = (aad.length > 0 ? 0x40 : 0) | (((this.tagLength - 2) / 2) << 3) | (this.#l - 1);
    b.set(nonce, 1);
    for (let i = BLOCK - 1, v = m; i > this.#nonceLength; i--, v >>>= 8) b[i] = v & 0xff;
    this.#x0 =
      this.#x1 =
      this.#x2 =
      this.#x3 =
        0;
    this.#absorb(load(b, 0), load(b, 4), load(b, 8), load(b, 12));
    if (aad.length > 0) {
      // l(a) is 2 bytes below 2^16 - 2^8, else 0xff 0xfe and 4 bytes.
      const a = aad.length;
      let p: number;
      if (a < 0xff00) {
        b[0] = a >>> 8;
        b[1] = a;
        p = 2;
      } else {
        b[0] = 0xff;
        b[1] = 0xfe;
        b[2] = a >>> 24;
        b[3] = a >>> 16;
        b[4] = a >>> 8;
        b[5] = a;
        p = 6;
      }
      const first = Math.min(BLOCK - p, a);
      b.set(aad.subarray(0, first), p);
      b.fill(0, p + first);
      this.#absorb(load(b, 0), load(b, 4), load(b, 8), load(b, 12));
      this.#absorbPadded(aad, first);
    }
    this.#absorbPadded(message, 0);
  }

  /** RFC 3610 §2.3: A_i = Flags(L') || Nonce || i; sets A_0. */
  #setCounter(nonce: Uint8Array): void {
    const b = this.#block;
    b.fill(0);
    b[0] = this.#l - 1;
    b.set(nonce, 1);
    this.#a0 = load(b, 0);
    this.#a1 = load(b, 4);
    this.#a2 = load(b, 8);
    // The counter never exceeds 2^32 here, so it lives in the last word
    // only; when L < 4 the bytes below it still hold the nonce.
    this.#a3 = load(b, 12);
  }

  /** dst[0, n) = src[0, n) XOR S_1 || S_2 || ... (RFC 3610 §2.3). */
  #ctr(src: Uint8Array, dst: Uint8Array, n: number): void {
    const xk = this.#xk;
    const a0 = this.#a0, a1 = this.#a1, a2 = this.#a2, a3 = this.#a3;
    let i = 1;
    let at = 0;
    for (; at + BLOCK <= n; at += BLOCK, i++) {
      const s = unsafe.encrypt(xk, a0, a1, a2, a3 | counterWord(i));
      store(dst, at, load(src, at) ^ s.s0);
      store(dst, at + 4, load(src, at + 4) ^ s.s1);
      store(dst, at + 8, load(src, at + 8) ^ s.s2);
      store(dst, at + 12, load(src, at + 12) ^ s.s3);
    }
    if (at < n) {
      const s = unsafe.encrypt(xk, a0, a1, a2, a3 | counterWord(i));
      const b = this.#block;
      store(b, 0, s.s0);
      store(b, 4, s.s1);
      store(b, 8, s.s2);
      store(b, 12, s.s3);
      for (let j = 0; at + j < n; j++) dst[at + j] = src[at + j]! ^ b[j]!;
    }
  }

  /** RFC 3610 §2.3: U = T XOR first-M-bytes(S_0), left in the scratch block. */
  #finishTag(): void {
    const s = unsafe.encrypt(this.#xk, this.#a0, this.#a1, this.#a2, this.#a3);
    const b = this.#block;
    store(b, 0, this.#x0 ^ s.s0);
    store(b, 4, this.#x1 ^ s.s1);
    store(b, 8, this.#x2 ^ s.s2);
    store(b, 12, this.#x3 ^ s.s3);
  }
}

/**
 * General AES-CCM (RFC 3610 / SP 800-38C) with a nonce of 7..13 bytes and a
 * tag of 4, 6, ..., 16 bytes, keyed once. Throws a `TypeError` for an
 * unsupported key, tag or nonce length (a programming error).
 *
 * `seal` throws on a nonce of the wrong length; `open` returns null for it,
 * for a short input and for a wrong tag.
 */
export function createAesCcm(key: Uint8Array, tagLength: number, nonceLength: number): Aead {
  return new AesCcm(key, tagLength, nonceLength);
}

/**
 * AES-CCM as TLS uses it (RFC 6655 §3): a 12-byte nonce (L = 3) and a
 * 16-byte tag (AES_*_CCM) or an 8-byte one (AES_*_CCM_8). The key length
 * (16 or 32 bytes) selects AES-128 or AES-256.
 */
export function aesCcm(key: Uint8Array, tagLength: 8 | 16): Aead {
  return new AesCcm(key, tagLength, 12);
}
