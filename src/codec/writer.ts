/**
 * A growable big-endian byte writer. Length prefixes are reserved first and
 * patched after the body is written, so no length is ever computed by hand.
 *
 * @module
 */

/** Appends big-endian integers, bytes and length-prefixed vectors. */
export class Writer {
  #buf: Uint8Array;
  #len = 0;

  /** Starts with room for `capacity` bytes; grows as needed. */
  constructor(capacity = 256) {
    this.#buf = new Uint8Array(capacity);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  #reserve(n: number): number {
    const at = this.#len;
    if (at + n > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#buf.length * 2, at + n));
      grown.set(this.#buf.subarray(0, at));
      this.#buf = grown;
    }
    this.#len = at + n;
    return at;
  }

  /** One byte. */
  u8(v: number): this {
    // Reserve before reading #buf: reserving may replace the buffer.
    const at = this.#reserve(1);
    this.#buf[at] = v;
    return this;
  }

  /** A big-endian 16-bit integer. */
  u16(v: number): this {
    const at = this.#reserve(2);
    this.#buf[at] = v >>> 8;
    this.#buf[at + 1] = v;
    return this;
  }

  /** A big-endian 24-bit integer. */
  u24(v: number): this {
    const at = this.#reserve(3);
    this.#buf[at] = v >>> 16;
    this.#buf[at + 1] = v >>> 8;
    this.#buf[at + 2] = v;
    return this;
  }

  /** A big-endian 48-bit integer. */
  u48(v: number): this {
    const at = this.#reserve(6);
    writeU48(this.#buf, at, v);
    return this;
  }

  /** Raw bytes. */
  bytes(b: Uint8Array): this {
    const at = this.#reserve(b.length);
    this.#buf.set(b, at);
    return this;
  }

  /** A vector with a 1-byte length prefix, its body written by `body`. */
  vec8(body: (w: this) => void): this {
    return this.#vec(1, 0xff, body);
  }

  /** A vector with a 2-byte length prefix. */
  vec16(body: (w: this) => void): this {
    return this.#vec(2, 0xffff, body);
  }

  /** A vector with a 3-byte length prefix. */
  vec24(body: (w: this) => void): this {
    return this.#vec(3, 0xffffff, body);
  }

  /** Bytes with a 1-byte length prefix. */
  opaque8(b: Uint8Array): this {
    return this.vec8((w) => w.bytes(b));
  }

  /** Bytes with a 2-byte length prefix. */
  opaque16(b: Uint8Array): this {
    return this.vec16((w) => w.bytes(b));
  }

  /** Bytes with a 3-byte length prefix. */
  opaque24(b: Uint8Array): this {
    return this.vec24((w) => w.bytes(b));
  }

  #vec(size: 1 | 2 | 3, max: number, body: (w: this) => void): this {
    const at = this.#reserve(size);
    body(this);
    const n = this.#len - at - size;
    if (n > max) throw new RangeError(`Cannot encode vector: ${n} bytes exceed ${max}`);
    for (let i = size - 1, v = n; i >= 0; i--, v >>>= 8) this.#buf[at + i] = v & 0xff;
    return this;
  }

  /** The written bytes (a copy sized exactly). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** Writes a 32-bit big-endian integer at `at`. */
export function writeU32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v >>> 24;
  buf[at + 1] = v >>> 16;
  buf[at + 2] = v >>> 8;
  buf[at + 3] = v;
}

/** Writes a 48-bit big-endian integer at `at`. */
export function writeU48(buf: Uint8Array, at: number, v: number): void {
  const hi = Math.floor(v / 0x1_0000_0000);
  const lo = v >>> 0;
  buf[at] = hi >>> 8;
  buf[at + 1] = hi;
  buf[at + 2] = lo >>> 24;
  buf[at + 3] = lo >>> 16;
  buf[at + 4] = lo >>> 8;
  buf[at + 5] = lo;
}
