/**
 * Short-lived byte arrays for the per-record path, carved from shared
 * chunks.
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
 * its whole chunk alive, and its `.buffer` shows its chunk's other records,
 * so a holder that keeps bytes for long should copy them (`slice()`).
 *
 * @module
 */

/** Bytes per chunk: Node.js's Buffer.poolSize, for the same trade-off. */
export const CHUNK_BYTES = 8192;

/** Larger requests get their own buffer: a chunk would hold few of them. */
const POOLED_MAX = CHUNK_BYTES >>> 1;

let chunk = new Uint8Array(CHUNK_BYTES);
let used = 0;

/** `length` zeroed bytes: a view into a shared chunk, or an array of its own if large. */
export function allocateBytes(length: number): Uint8Array {
  if (length > POOLED_MAX) return new Uint8Array(length);
  if (used + length > CHUNK_BYTES) {
    chunk = new Uint8Array(CHUNK_BYTES);
    used = 0;
  }
  const view = chunk.subarray(used, used + length);
  // Keep views 8-byte aligned, as a fresh buffer is.
  used = (used + length + 7) & ~7;
  return view;
}
