/**
 * Short-lived byte arrays for the per-record path, carved from chunks.
 *
 * Every `new Uint8Array(n)` makes its own ArrayBuffer, and V8 sweeps each
 * young ArrayBuffer at every scavenge: measured on Deno 2.9.6, a scavenge of
 * young garbage made of small typed arrays pauses about three times longer
 * than one of the same bytes of plain objects or subarray views. Two such
 * buffers per record (the sealed record, the opened plaintext) made the
 * server's scavenges 0.3 ms long, every 15 ms under echo load: the latency
 * tail. A view into a chunk is an ordinary object.
 *
 * A chunk is never written again once handed out, so a view stays valid
 * for as long as anyone holds it, whatever happens later (a send still
 * pending in the runtime, an application keeping a message): this is a bump
 * allocator whose chunks the GC frees when their last view dies, as
 * Node.js's Buffer pool is. The costs are the same as Node's: a view keeps
 * its whole chunk alive, and its `.buffer` shows the chunk's other bytes.
 * That is why what an application is handed comes from a pool of its own
 * connection (Connection keeps one), never from the shared one.
 *
 * @module
 */

/** Bytes per chunk of the shared pool: Node.js's Buffer.poolSize, for the same trade-off. */
export const CHUNK_BYTES = 8192;

/** A bump allocator over chunks of a fixed size. */
export class BytePool {
  readonly #chunkBytes: number;
  #chunk: Uint8Array | undefined = undefined;
  #used = 0;

  constructor(chunkBytes: number) {
    this.#chunkBytes = chunkBytes;
  }

  /** `length` zeroed bytes: a view into a chunk, or an array of its own if over half a chunk. */
  allocate(length: number): Uint8Array {
    if (length > this.#chunkBytes >>> 1) return new Uint8Array(length);
    let chunk = this.#chunk;
    if (chunk === undefined || this.#used + length > this.#chunkBytes) {
      chunk = this.#chunk = new Uint8Array(this.#chunkBytes);
      this.#used = 0;
    }
    const view = chunk.subarray(this.#used, this.#used + length);
    // Keep views 8-byte aligned, as a fresh buffer is.
    this.#used = (this.#used + length + 7) & ~7;
    return view;
  }

  /** Lets go of the current chunk (views already handed out stay valid); the next allocation starts a new one. */
  release(): void {
    this.#chunk = undefined;
    this.#used = 0;
  }
}

const SHARED = new BytePool(CHUNK_BYTES);

/**
 * `length` zeroed bytes from the pool shared by every connection: for what
 * the engine hands only to the socket (sealed records) or keeps to itself
 * (opened plaintexts, which it copies before an application sees them).
 */
export function allocateBytes(length: number): Uint8Array {
  return SHARED.allocate(length);
}
