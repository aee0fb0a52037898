/**
 * AES-GCM (NIST SP 800-38D, RFC 5288) with a 12-byte nonce and a 16-byte
 * tag, written for the record layer's hot path: keyed state is built once per
 * key and a record costs no allocation beyond its output array.
 *
 * - AES (FIPS 197) on 32-bit T-tables: state and round keys are big-endian
 *   words, so the GCM counter block's last word is the 32-bit counter itself
 *   and ciphertext words feed GHASH without byte swaps.
 * - GHASH with Shoup's 8-bit table: H times every byte value (256 entries of
 *   four words, 4 KiB per key), so a block costs 16 table steps, each a
 *   right shift by 8 bits reduced through a shared 256-entry table.
 * - Seal encrypts and hashes each block in one pass. Open hashes and decrypts
 *   in one pass too, and wipes the output when the tag does not match, so no
 *   unauthenticated plaintext ever leaves.
 * - The tag is compared without an early exit.
 *
 * Like every table-driven software AES and GHASH (noble's included), the
 * table lookups are indexed by secret-dependent values, which a co-resident
 * attacker could in principle observe through the CPU cache.
 *
 * @module
 */

import { allocateBytes } from "../src/codec/byte_pool.ts";
import { type Aead, InPlaceAead, sealTarget } from "../src/crypto/provider.ts";

// ---------------------------------------------------------------------------
// AES tables, built once at module load.

/** FIPS 197 §5.1.1 S-box. */
const SBOX = new Uint8Array(256);
/**
 * Round tables: TE0[x] is the MixColumns column of S(x) as a big-endian word
 * (2·s, s, s, 3·s); TE1-TE3 are that word rotated right by 8, 16, 24 bits.
 */
const TE0 = new Int32Array(256);
const TE1 = new Int32Array(256);
const TE2 = new Int32Array(256);
const TE3 = new Int32Array(256);

/** Multiplication by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1. */
function xtime(b: number): number {
  return ((b << 1) ^ (b & 0x80 ? 0x1b : 0)) & 0xff;
}

{
  // Powers of the generator 3 give logarithms, hence inverses.
  const exp = new Uint8Array(256);
  const log = new Uint8Array(256);
  for (let i = 0, x = 1; i < 255; i++) {
    exp[i] = x;
    log[x] = i;
    x ^= xtime(x);
  }
  for (let i = 0; i < 256; i++) {
    const inv = i === 0 ? 0 : exp[(255 - log[i]!) % 255]!;
    // The affine map: b ^ rotl(b,1) ^ rotl(b,2) ^ rotl(b,3) ^ rotl(b,4) ^ 0x63.
    let s = inv;
    for (let r = 1; r <= 4; r++) s ^= ((inv << r) | (inv >>> (8 - r))) & 0xff;
    SBOX[i] = s ^ 0x63;
  }
  for (let i = 0; i < 256; i++) {
    const s = SBOX[i]!;
    const s2 = xtime(s);
    const w = (s2 << 24) | (s << 16) | (s << 8) | (s2 ^ s);
    TE0[i] = w;
    TE1[i] = (w >>> 8) | (w << 24);
    TE2[i] = (w >>> 16) | (w << 16);
    TE3[i] = (w >>> 24) | (w << 8);
  }
}

/** FIPS 197 §5.2 key expansion into big-endian words: 44, 52 or 60 of them. */
function expandKey(key: Uint8Array): Int32Array {
  const nk = key.length / 4;
  const w = new Int32Array(key.length + 28);
  for (let i = 0; i < nk; i++) w[i] = load(key, 4 * i);
  let rcon = 1;
  for (let i = nk; i < w.length; i++) {
    let t = w[i - 1]!;
    if (i % nk === 0) {
      // SubWord(RotWord(t)) ^ Rcon.
      t = (SBOX[(t >>> 16) & 0xff]! << 24) | (SBOX[(t >>> 8) & 0xff]! << 16) |
        (SBOX[t & 0xff]! << 8) | SBOX[t >>> 24]!;
      t ^= rcon << 24;
      rcon = xtime(rcon);
    } else if (nk > 6 && i % nk === 4) {
      t = (SBOX[t >>> 24]! << 24) | (SBOX[(t >>> 16) & 0xff]! << 16) |
        (SBOX[(t >>> 8) & 0xff]! << 8) | SBOX[t & 0xff]!;
    }
    w[i] = w[i - nk]! ^ t;
  }
  return w;
}

/** One AES block output, reused by every call (the code is never re-entered). */
const OUT = new Int32Array(4);

/** FIPS 197 §5.1 Cipher on the big-endian words s0..s3, result in OUT. */
function encryptBlock(rk: Int32Array, s0: number, s1: number, s2: number, s3: number): void {
  rounds(rk, 4, s0 ^ rk[0]!, s1 ^ rk[1]!, s2 ^ rk[2]!, s3 ^ rk[3]!);
}

/**
 * The cipher's rounds from round key word `k` on (k = 4: all of them, after
 * the initial AddRoundKey), applied to the state s0..s3; result in OUT.
 */
function rounds(rk: Int32Array, k: number, s0: number, s1: number, s2: number, s3: number): void {
  const last = rk.length - 4;
  for (; k < last; k += 4) {
    const t0 = TE0[s0 >>> 24]! ^ TE1[(s1 >>> 16) & 0xff]! ^ TE2[(s2 >>> 8) & 0xff]! ^
      TE3[s3 & 0xff]! ^ rk[k]!;
    const t1 = TE0[s1 >>> 24]! ^ TE1[(s2 >>> 16) & 0xff]! ^ TE2[(s3 >>> 8) & 0xff]! ^
      TE3[s0 & 0xff]! ^ rk[k + 1]!;
    const t2 = TE0[s2 >>> 24]! ^ TE1[(s3 >>> 16) & 0xff]! ^ TE2[(s0 >>> 8) & 0xff]! ^
      TE3[s1 & 0xff]! ^ rk[k + 2]!;
    const t3 = TE0[s3 >>> 24]! ^ TE1[(s0 >>> 16) & 0xff]! ^ TE2[(s1 >>> 8) & 0xff]! ^
      TE3[s2 & 0xff]! ^ rk[k + 3]!;
    s0 = t0;
    s1 = t1;
    s2 = t2;
    s3 = t3;
  }
  // The last round has no MixColumns: take the plain S-box byte out of the
  // table lane that holds it unscaled (TE2's top byte, TE3's second, ...).
  OUT[0] = ((TE2[s0 >>> 24]! & 0xff000000) | (TE3[(s1 >>> 16) & 0xff]! & 0xff0000) |
    (TE0[(s2 >>> 8) & 0xff]! & 0xff00) | (TE1[s3 & 0xff]! & 0xff)) ^ rk[k]!;
  OUT[1] = ((TE2[s1 >>> 24]! & 0xff000000) | (TE3[(s2 >>> 16) & 0xff]! & 0xff0000) |
    (TE0[(s3 >>> 8) & 0xff]! & 0xff00) | (TE1[s0 & 0xff]! & 0xff)) ^ rk[k + 1]!;
  OUT[2] = ((TE2[s2 >>> 24]! & 0xff000000) | (TE3[(s3 >>> 16) & 0xff]! & 0xff0000) |
    (TE0[(s0 >>> 8) & 0xff]! & 0xff00) | (TE1[s1 & 0xff]! & 0xff)) ^ rk[k + 2]!;
  OUT[3] = ((TE2[s3 >>> 24]! & 0xff000000) | (TE3[(s0 >>> 16) & 0xff]! & 0xff0000) |
    (TE0[(s1 >>> 8) & 0xff]! & 0xff00) | (TE1[s2 & 0xff]! & 0xff)) ^ rk[k + 3]!;
}

/**
 * Counter-mode caching: within a message the counter blocks N || c differ
 * only in c, and within a run of 256 counters only in c's low byte. So after
 * round 1 three state words are the same for the whole run and the fourth
 * differs by one table entry; after round 2 each word differs by one entry,
 * indexed by a byte of round 1's first word. `fillCounterCache` computes
 * those shared parts once per run; `encryptCounter` then does rounds 1 and 2
 * with 5 table lookups instead of 32, and the rest as usual.
 *
 * cache[0]: round 1's first word without the counter byte's entry;
 * cache[1..4]: round 2's words without round 1's first word's entries;
 * cache[5]: the low byte of the whitened last word, to be XORed with c's.
 */
function fillCounterCache(
  rk: Int32Array,
  cache: Int32Array,
  n0: number,
  n1: number,
  n2: number,
  c: number,
): void {
  const s0 = n0 ^ rk[0]!, s1 = n1 ^ rk[1]!, s2 = n2 ^ rk[2]!;
  // The counter's low byte is zero here; it is folded in per block.
  const s3 = (c & ~0xff) ^ rk[3]!;
  cache[0] = TE0[s0 >>> 24]! ^ TE1[(s1 >>> 16) & 0xff]! ^ TE2[(s2 >>> 8) & 0xff]! ^ rk[4]!;
  const t1 = TE0[s1 >>> 24]! ^ TE1[(s2 >>> 16) & 0xff]! ^ TE2[(s3 >>> 8) & 0xff]! ^
    TE3[s0 & 0xff]! ^ rk[5]!;
  const t2 = TE0[s2 >>> 24]! ^ TE1[(s3 >>> 16) & 0xff]! ^ TE2[(s0 >>> 8) & 0xff]! ^
    TE3[s1 & 0xff]! ^ rk[6]!;
  const t3 = TE0[s3 >>> 24]! ^ TE1[(s0 >>> 16) & 0xff]! ^ TE2[(s1 >>> 8) & 0xff]! ^
    TE3[s2 & 0xff]! ^ rk[7]!;
  cache[1] = TE1[(t1 >>> 16) & 0xff]! ^ TE2[(t2 >>> 8) & 0xff]! ^ TE3[t3 & 0xff]! ^ rk[8]!;
  cache[2] = TE0[t1 >>> 24]! ^ TE1[(t2 >>> 16) & 0xff]! ^ TE2[(t3 >>> 8) & 0xff]! ^ rk[9]!;
  cache[3] = TE0[t2 >>> 24]! ^ TE1[(t3 >>> 16) & 0xff]! ^ TE3[t1 & 0xff]! ^ rk[10]!;
  cache[4] = TE0[t3 >>> 24]! ^ TE2[(t1 >>> 8) & 0xff]! ^ TE3[t2 & 0xff]! ^ rk[11]!;
  cache[5] = rk[3]! & 0xff;
}

/** E(K, N || c) into OUT, for a c in the run `cache` was filled for. */
function encryptCounter(rk: Int32Array, cache: Int32Array, c: number): void {
  const t0 = cache[0]! ^ TE3[(c ^ cache[5]!) & 0xff]!;
  rounds(
    rk,
    12,
    cache[1]! ^ TE0[t0 >>> 24]!,
    cache[2]! ^ TE3[t0 & 0xff]!,
    cache[3]! ^ TE2[(t0 >>> 8) & 0xff]!,
    cache[4]! ^ TE1[(t0 >>> 16) & 0xff]!,
  );
}

// ---------------------------------------------------------------------------
// GHASH (SP 800-38D §6.4). A block is four big-endian words; bit 0 of the
// field element is the top bit of the first byte, so multiplying by x is a
// right shift, with R = 0xe1 || 0^120 folded in for the bit shifted out.

/**
 * REM[d]: what the byte d shifted out of the bottom of a block by a right
 * shift of 8 bits (d·x^128) reduces to, as the top word of the block.
 */
const REM = new Int32Array(256);
{
  for (let d = 0; d < 256; d++) {
    let top = 0;
    let low = d;
    for (let i = 0; i < 8; i++) {
      const carry = low & 1;
      low >>>= 1;
      top = (top >>> 1) ^ (carry ? 0xe1000000 : 0);
      // Bits shifted out of `top` would land in the next word: none do, as
      // only its top 15 bits are ever set.
    }
    REM[d] = top;
  }
}

/** GHASH's product Y·H, result in OUT; `m` is the key's 8-bit table. */
function ghashMul(m: Int32Array, y0: number, y1: number, y2: number, y3: number): void {
  // Horner's rule over the bytes of Y from the last (highest powers of x)
  // to the first: Z = (Z·x^8) ^ H·byte.
  let i = (y3 & 0xff) << 2;
  let z0 = m[i]!, z1 = m[i + 1]!, z2 = m[i + 2]!, z3 = m[i + 3]!;
  let y = y3;
  let shift = 8;
  for (let w = 3; w >= 0; w--) {
    for (; shift < 32; shift += 8) {
      const d = z3 & 0xff;
      z3 = (z3 >>> 8) | (z2 << 24);
      z2 = (z2 >>> 8) | (z1 << 24);
      z1 = (z1 >>> 8) | (z0 << 24);
      i = ((y >>> shift) & 0xff) << 2;
      z0 = (z0 >>> 8) ^ REM[d]! ^ m[i]!;
      z1 ^= m[i + 1]!;
      z2 ^= m[i + 2]!;
      z3 ^= m[i + 3]!;
    }
    shift = 0;
    y = w === 3 ? y2 : w === 2 ? y1 : y0;
  }
  OUT[0] = z0;
  OUT[1] = z1;
  OUT[2] = z2;
  OUT[3] = z3;
}

/** The 8-bit table of H: entry b (4 words at 4b) is H times the byte b as a field element. */
function ghashTable(h0: number, h1: number, h2: number, h3: number): Int32Array {
  const m = new Int32Array(1024);
  // Byte 0x80 is x^0, so M[0x80] = H and each lower bit is one more factor x.
  let v0 = h0, v1 = h1, v2 = h2, v3 = h3;
  for (let bit = 0x80; bit > 0; bit >>>= 1) {
    m[4 * bit] = v0;
    m[4 * bit + 1] = v1;
    m[4 * bit + 2] = v2;
    m[4 * bit + 3] = v3;
    const carry = v3 & 1;
    v3 = (v3 >>> 1) | (v2 << 31);
    v2 = (v2 >>> 1) | (v1 << 31);
    v1 = (v1 >>> 1) | (v0 << 31);
    v0 = (v0 >>> 1) ^ (carry ? 0xe1000000 : 0);
  }
  // The rest by linearity: M[a ^ b] = M[a] ^ M[b].
  for (let bit = 2; bit < 256; bit <<= 1) {
    for (let j = 1; j < bit; j++) {
      for (let w = 0; w < 4; w++) m[4 * (bit + j) + w] = m[4 * bit + w]! ^ m[4 * j + w]!;
    }
  }
  return m;
}

// ---------------------------------------------------------------------------
// Byte access.

/** The big-endian word at `b[at, at + 4)`. */
function load(b: Uint8Array, at: number): number {
  return (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;
}

/** Writes `w` big-endian at `b[at, at + 4)`. */
function store(b: Uint8Array, at: number, w: number): void {
  b[at] = w >>> 24;
  b[at + 1] = w >>> 16;
  b[at + 2] = w >>> 8;
  b[at + 3] = w;
}

/** AES-GCM keyed once: the key schedule, E(K, 0^128) = H and H's GHASH table. */
class AesGcm extends InPlaceAead {
  readonly tagLength = 16;
  readonly #rk: Int32Array;
  readonly #m: Int32Array;
  /** Rounds 1-2 shared by a run of 256 counter blocks (see `fillCounterCache`). */
  readonly #cache = new Int32Array(6);
  /** A partial final block, zero-padded. */
  readonly #block = new Uint8Array(16);
  // The GHASH accumulator Y.
  #y0 = 0;
  #y1 = 0;
  #y2 = 0;
  #y3 = 0;

  constructor(key: Uint8Array) {
    super();
    if (key.length !== 16 && key.length !== 32) {
      throw new TypeError(`Cannot create AES-GCM: key of ${key.length} bytes`);
    }
    this.#rk = expandKey(key);
    encryptBlock(this.#rk, 0, 0, 0, 0);
    this.#m = ghashTable(OUT[0]!, OUT[1]!, OUT[2]!, OUT[3]!);
  }

  /** Y = (Y ^ X)·H for the four words of one block X. */
  #absorb(x0: number, x1: number, x2: number, x3: number): void {
    ghashMul(this.#m, this.#y0 ^ x0, this.#y1 ^ x1, this.#y2 ^ x2, this.#y3 ^ x3);
    this.#y0 = OUT[0]!;
    this.#y1 = OUT[1]!;
    this.#y2 = OUT[2]!;
    this.#y3 = OUT[3]!;
  }

  /** Y = GHASH of the zero-padded AAD, the state every message starts from. */
  #absorbAad(aad: Uint8Array): void {
    this.#y0 = 0;
    this.#y1 = 0;
    this.#y2 = 0;
    this.#y3 = 0;
    const n = aad.length;
    const full = n & ~15;
    for (let at = 0; at < full; at += 16) {
      this.#absorb(load(aad, at), load(aad, at + 4), load(aad, at + 8), load(aad, at + 12));
    }
    if (full < n) {
      const b = this.#block;
      b.fill(0);
      for (let j = full; j < n; j++) b[j - full] = aad[j]!;
      this.#absorb(load(b, 0), load(b, 4), load(b, 8), load(b, 12));
    }
  }

  /**
   * CTR over the first `n` bytes of `input` into `output` from counter 2, hashing the
   * ciphertext: `output` when sealing, `input` when opening. Then the length
   * block, and the tag E(K, J0) ^ Y left in OUT.
   */
  #crypt(
    nonce: Uint8Array,
    aadLength: number,
    input: Uint8Array,
    output: Uint8Array,
    n: number,
    sealing: boolean,
  ): void {
    const rk = this.#rk;
    const n0 = load(nonce, 0), n1 = load(nonce, 4), n2 = load(nonce, 8);
    const full = n & ~15;
    const cache = this.#cache;
    let counter = 2;
    fillCounterCache(rk, cache, n0, n1, n2, counter);
    for (let at = 0; at < full; at += 16) {
      encryptCounter(rk, cache, counter);
      if ((++counter & 0xff) === 0) fillCounterCache(rk, cache, n0, n1, n2, counter);
      const i0 = load(input, at), i1 = load(input, at + 4);
      const i2 = load(input, at + 8), i3 = load(input, at + 12);
      const o0 = OUT[0]! ^ i0, o1 = OUT[1]! ^ i1, o2 = OUT[2]! ^ i2, o3 = OUT[3]! ^ i3;
      store(output, at, o0);
      store(output, at + 4, o1);
      store(output, at + 8, o2);
      store(output, at + 12, o3);
      if (sealing) this.#absorb(o0, o1, o2, o3);
      else this.#absorb(i0, i1, i2, i3);
    }
    if (full < n) {
      const rest = n - full;
      const b = this.#block;
      b.fill(0);
      for (let j = 0; j < rest; j++) b[j] = input[full + j]!;
      encryptCounter(rk, cache, counter);
      const i0 = load(b, 0), i1 = load(b, 4), i2 = load(b, 8), i3 = load(b, 12);
      store(b, 0, OUT[0]! ^ i0);
      store(b, 4, OUT[1]! ^ i1);
      store(b, 8, OUT[2]! ^ i2);
      store(b, 12, OUT[3]! ^ i3);
      for (let j = 0; j < rest; j++) output[full + j] = b[j]!;
      if (sealing) {
        // Only the ciphertext bytes are hashed: zero the keystream past them.
        b.fill(0, rest);
        this.#absorb(load(b, 0), load(b, 4), load(b, 8), load(b, 12));
      } else {
        this.#absorb(i0, i1, i2, i3);
      }
    }
    // len(A) || len(C) in bits, each a 64-bit big-endian integer.
    this.#absorb(
      Math.floor(aadLength / 0x20000000),
      aadLength * 8,
      Math.floor(n / 0x20000000),
      n * 8,
    );
    const y0 = this.#y0, y1 = this.#y1, y2 = this.#y2, y3 = this.#y3;
    encryptBlock(rk, n0, n1, n2, 1);
    OUT[0] = OUT[0]! ^ y0;
    OUT[1] = OUT[1]! ^ y1;
    OUT[2] = OUT[2]! ^ y2;
    OUT[3] = OUT[3]! ^ y3;
  }

  sealInto(
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    into: Uint8Array,
    at: number,
  ): void {
    if (nonce.length !== 12) {
      throw new TypeError(`Cannot seal AES-GCM: nonce of ${nonce.length} bytes`);
    }
    const n = plaintext.length;
    const out = sealTarget(into, at, n + 16);
    this.#absorbAad(aad);
    this.#crypt(nonce, aad.length, plaintext, out, n, true);
    store(out, n, OUT[0]!);
    store(out, n + 4, OUT[1]!);
    store(out, n + 8, OUT[2]!);
    store(out, n + 12, OUT[3]!);
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (nonce.length !== 12 || sealed.length < 16) return null;
    const n = sealed.length - 16;
    const out = allocateBytes(n);
    this.#absorbAad(aad);
    this.#crypt(nonce, aad.length, sealed, out, n, false);
    // Every tag word is compared: no early exit.
    const diff = (OUT[0]! ^ load(sealed, n)) | (OUT[1]! ^ load(sealed, n + 4)) |
      (OUT[2]! ^ load(sealed, n + 8)) | (OUT[3]! ^ load(sealed, n + 12));
    if (diff !== 0) {
      out.fill(0);
      return null;
    }
    return out;
  }
}

/** AES-GCM with a 16- or 32-byte key (AES-128 or AES-256), keyed once. */
export function aesGcm(key: Uint8Array): Aead {
  return new AesGcm(key);
}
