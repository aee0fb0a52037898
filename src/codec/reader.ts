/**
 * A bounded cursor over wire bytes. Every read checks its bounds and throws a
 * {@link DecodeError} naming the field, so a decoder is a straight list of
 * reads and a truncated input can never be read past.
 *
 * Values are subarrays of the input, not copies: copy only what must outlive
 * the datagram.
 *
 * @module
 */

/** The one error every decoder throws: the input is not what the wire format allows. */
export class DecodeError extends Error {
  /** The field or structure that could not be decoded. */
  readonly what: string;
  constructor(what: string, reason = "truncated") {
    super(`Cannot decode ${what}: ${reason}`);
    this.name = "DecodeError";
    this.what = what;
  }
}

/** The big-endian 32-bit integer at `buf[at, at + 4)`; unchecked (the counterpart of `writeU32`). */
export function readU32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) >>> 0) + ((buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!);
}

/**
 * The big-endian 48-bit integer at `buf[at, at + 6)`, exact in a JS number;
 * unchecked, for callers that checked the bounds (the counterpart of
 * `writeU48`).
 */
export function readU48(buf: Uint8Array, at: number): number {
  const hi = (buf[at]! << 8) | buf[at + 1]!;
  const lo = ((buf[at + 2]! << 24) >>> 0) +
    ((buf[at + 3]! << 16) | (buf[at + 4]! << 8) | buf[at + 5]!);
  return hi * 0x1_0000_0000 + lo;
}

/** Reads big-endian integers and length-prefixed vectors from a byte range. */
export class Reader {
  readonly #buf: Uint8Array;
  #pos: number;
  readonly #end: number;

  /** Reads `buf[start, end)`. */
  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.#end - this.#pos;
  }

  /** Offset of the cursor within the underlying buffer. */
  get position(): number {
    return this.#pos;
  }

  #take(n: number, what: string): number {
    const at = this.#pos;
    if (n < 0 || at + n > this.#end) throw new DecodeError(what);
    this.#pos = at + n;
    return at;
  }

  /** One byte. */
  u8(what: string): number {
    return this.#buf[this.#take(1, what)]!;
  }

  /** A big-endian 16-bit integer. */
  u16(what: string): number {
    const at = this.#take(2, what);
    return (this.#buf[at]! << 8) | this.#buf[at + 1]!;
  }

  /** A big-endian 24-bit integer. */
  u24(what: string): number {
    const at = this.#take(3, what);
    return (this.#buf[at]! << 16) | (this.#buf[at + 1]! << 8) | this.#buf[at + 2]!;
  }

  /** A big-endian 48-bit integer (a DTLS sequence number); exact in a JS number. */
  u48(what: string): number {
    return readU48(this.#buf, this.#take(6, what));
  }

  /** `n` bytes as a subarray of the input. */
  bytes(n: number, what: string): Uint8Array {
    const at = this.#take(n, what);
    return this.#buf.subarray(at, at + n);
  }

  /** Everything left, as a subarray. */
  rest(): Uint8Array {
    const at = this.#pos;
    this.#pos = this.#end;
    return this.#buf.subarray(at, this.#end);
  }

  /** A sub-reader over a vector with a 1-byte length prefix. */
  vec8(what: string): Reader {
    return this.#sub(this.u8(what), what);
  }

  /** A sub-reader over a vector with a 2-byte length prefix. */
  vec16(what: string): Reader {
    return this.#sub(this.u16(what), what);
  }

  /** A sub-reader over a vector with a 3-byte length prefix. */
  vec24(what: string): Reader {
    return this.#sub(this.u24(what), what);
  }

  /** The bytes of a vector with a 1-byte length prefix. */
  opaque8(what: string): Uint8Array {
    return this.bytes(this.u8(what), what);
  }

  /** The bytes of a vector with a 2-byte length prefix. */
  opaque16(what: string): Uint8Array {
    return this.bytes(this.u16(what), what);
  }

  /** The bytes of a vector with a 3-byte length prefix. */
  opaque24(what: string): Uint8Array {
    return this.bytes(this.u24(what), what);
  }

  #sub(n: number, what: string): Reader {
    const at = this.#take(n, what);
    return new Reader(this.#buf, at, at + n);
  }

  /** Throws unless every byte was read: trailing bytes are a decode error. */
  end(what: string): void {
    if (this.#pos !== this.#end) throw new DecodeError(what, "trailing bytes");
  }
}
