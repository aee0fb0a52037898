/**
 * Memory libc reads or writes through a stored pointer. It must not move:
 * V8 keeps small typed arrays' bytes on its heap, where a collection may move
 * them, and a prototype with its buffers in separate arrays got EFAULT from
 * recvmmsg after ~1,600 datagrams. An `ArrayBuffer` made with
 * `new ArrayBuffer` stays put, so a socket keeps all of its buffers in one
 * (arrays passed to a call directly are made that way too).
 *
 * @module
 */

/** The one ArrayBuffer of a socket, carved into the views libc uses. */
export class Arena {
  readonly buffer: ArrayBuffer;
  readonly base: number;
  #used = 0;

  constructor(size: number) {
    this.buffer = new ArrayBuffer(size);
    this.base = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.buffer)));
  }

  /** The offset of the next `length` bytes, 8-aligned. */
  take(length: number): number {
    const offset = this.#used;
    this.#used += (length + 7) & ~7;
    if (this.#used > this.buffer.byteLength) throw new RangeError("Arena too small");
    return offset;
  }
}
