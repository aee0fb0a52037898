/**
 * SHA-256 (FIPS 180-4 §6.2) and HMAC-SHA256 (RFC 2104), written for the
 * handshake's hot path: the TLS 1.2 PRF, Finished and the cookie run HMAC
 * a dozen times per handshake on short inputs, where building hash objects
 * cost more than hashing (noble's per-call objects were two thirds of a PRF).
 * Here an HMAC key keeps only its two 32-byte chaining states (after the
 * ipad and opad blocks), and hashing runs on one module-level scratch state:
 * each call runs to completion without yielding, so none ever shares it.
 *
 * SHA-256 is additions, rotations and bitwise logic on 32-bit words, with
 * no secret-dependent branch or memory index.
 *
 * @module
 */

import type { Mac } from "./provider.ts";

/** floor(n^(1/k)) for a non-negative BigInt, by Newton's method. */
function integerRoot(n: bigint, k: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << (BigInt(n.toString(2).length) / k + 1n);
  for (;;) {
    const y = ((k - 1n) * x + n / x ** (k - 1n)) / k;
    if (y >= x) return x;
    x = y;
  }
}

function firstPrimes(count: number): number[] {
  const primes: number[] = [];
  for (let n = 2; primes.length < count; n++) {
    if (primes.every((p) => n % p !== 0)) primes.push(n);
  }
  return primes;
}

// FIPS 180-4 §4.2.2 and §5.3.3: the first 32 bits of the fractional parts of
// the cube roots of the first 64 primes (K) and of the square roots of the
// first 8 (the initial hash value), computed exactly in integers.
const K = new Int32Array(64);
const INITIAL = new Int32Array(8);
{
  const primes = firstPrimes(64);
  const low32 = (x: bigint) => Number(x & 0xffff_ffffn) | 0;
  primes.forEach((p, i) => {
    K[i] = low32(integerRoot(BigInt(p) << 96n, 3n));
    if (i < 8) INITIAL[i] = low32(integerRoot(BigInt(p) << 64n, 2n));
  });
}

const BLOCK = 64;
/** The message schedule of the block being compressed. */
const SCHEDULE = new Int32Array(64);

/** One compression of the 64-byte block at `m[at..]` into `state` (FIPS 180-4 §6.2.2). */
function compress(state: Int32Array, m: Uint8Array, at: number): void {
  const w = SCHEDULE;
  for (let i = 0; i < 16; i++, at += 4) {
    w[i] = (m[at]! << 24) | (m[at + 1]! << 16) | (m[at + 2]! << 8) | m[at + 3]!;
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15]!, y = w[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) | 0;
  }
  let a = state[0]!, b = state[1]!, c = state[2]!, d = state[3]!;
  let e = state[4]!, f = state[5]!, g = state[6]!, h = state[7]!;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i]! + w[i]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
  state[4] = (state[4]! + e) | 0;
  state[5] = (state[5]! + f) | 0;
  state[6] = (state[6]! + g) | 0;
  state[7] = (state[7]! + h) | 0;
}

/** A streaming SHA-256 over reused buffers. */
class Sha256State {
  readonly state = new Int32Array(8);
  readonly #pending = new Uint8Array(BLOCK);
  #pendingLength = 0;
  /** Bytes hashed so far, the prefix blocks a start state stands for included. */
  #total = 0;

  /** Starts from `chain` (the initial value, or a state after `prefixBytes` whole blocks). */
  start(chain: Int32Array, prefixBytes: number): void {
    this.state.set(chain);
    this.#pendingLength = 0;
    this.#total = prefixBytes;
  }

  update(data: Uint8Array): void {
    let at = 0;
    const n = data.length;
    this.#total += n;
    const pending = this.#pending;
    if (this.#pendingLength > 0) {
      const take = Math.min(BLOCK - this.#pendingLength, n);
      pending.set(take === n ? data : data.subarray(0, take), this.#pendingLength);
      this.#pendingLength += take;
      at = take;
      if (this.#pendingLength < BLOCK) return;
      compress(this.state, pending, 0);
      this.#pendingLength = 0;
    }
    for (; at + BLOCK <= n; at += BLOCK) compress(this.state, data, at);
    if (at < n) {
      pending.set(data.subarray(at), 0);
      this.#pendingLength = n - at;
    }
  }

  /** Pads (FIPS 180-4 §5.1.1), and writes the 32-byte digest to `out[at..]`. */
  finish(out: Uint8Array, at: number): void {
    const pending = this.#pending;
    let used = this.#pendingLength;
    pending[used++] = 0x80;
    if (used > BLOCK - 8) {
      pending.fill(0, used);
      compress(this.state, pending, 0);
      used = 0;
    }
    pending.fill(0, used, BLOCK - 8);
    // The message length in bits as a big-endian uint64.
    const bits = this.#total * 8;
    const high = Math.floor(bits / 0x1_0000_0000);
    pending[56] = high >>> 24;
    pending[57] = high >>> 16;
    pending[58] = high >>> 8;
    pending[59] = high;
    pending[60] = bits >>> 24;
    pending[61] = bits >>> 16;
    pending[62] = bits >>> 8;
    pending[63] = bits;
    compress(this.state, pending, 0);
    const s = this.state;
    for (let i = 0; i < 8; i++, at += 4) {
      const v = s[i]!;
      out[at] = v >>> 24;
      out[at + 1] = v >>> 16;
      out[at + 2] = v >>> 8;
      out[at + 3] = v;
    }
    // Nothing of the message or key stays in the shared scratch.
    pending.fill(0);
    this.#pendingLength = 0;
  }
}

const HASHER = new Sha256State();

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  HASHER.start(INITIAL, 0);
  HASHER.update(data);
  const out = new Uint8Array(32);
  HASHER.finish(out, 0);
  return out;
}

/** The chaining state after one block: `key` (zero-padded to 64 bytes) XOR `pad`. */
function padState(key: Uint8Array, pad: number): Int32Array {
  const block = PAD_BLOCK;
  block.fill(pad);
  for (let i = 0; i < key.length; i++) block[i] = key[i]! ^ pad;
  const state = INITIAL.slice();
  compress(state, block, 0);
  block.fill(0);
  return state;
}

/** Scratch for a key XOR ipad / opad block (wiped after use). */
const PAD_BLOCK = new Uint8Array(BLOCK);

/**
 * HMAC-SHA256 (RFC 2104) keyed once: the states after the ipad and opad
 * blocks are all it keeps, so each MAC costs the message's blocks plus two.
 */
export class HmacSha256 implements Mac {
  readonly length = 32;
  readonly #inner: Int32Array;
  readonly #outer: Int32Array;

  constructor(key: Uint8Array) {
    // RFC 2104 §2: a key longer than the block is hashed first.
    const k = key.length > BLOCK ? sha256(key) : key;
    this.#inner = padState(k, 0x36);
    this.#outer = padState(k, 0x5c);
  }

  compute(...parts: Uint8Array[]): Uint8Array {
    const out = new Uint8Array(32);
    HASHER.start(this.#inner, BLOCK);
    for (const part of parts) HASHER.update(part);
    HASHER.finish(out, 0);
    HASHER.start(this.#outer, BLOCK);
    HASHER.update(out);
    HASHER.finish(out, 0);
    return out;
  }
}
