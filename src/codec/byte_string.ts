/**
 * Bytes as a string of one character each (Latin-1): a map key or a
 * compact value that equals another exactly when the bytes do. Never text.
 *
 * @module
 */

/** Bytes turned into characters per call: well under any engine's argument limit. */
const CHUNK = 4096;

/**
 * One character per byte of `bytes`, as a flat string: built by one call
 * per chunk, not a character at a time, which would leave a rope of one
 * node per byte (about 20 bytes of heap each) wherever the string is kept.
 */
export function byteString(bytes: Uint8Array): string {
  if (bytes.length <= CHUNK) return String.fromCharCode(...bytes);
  const parts: string[] = [];
  for (let at = 0; at < bytes.length; at += CHUNK) {
    parts.push(String.fromCharCode(...bytes.subarray(at, at + CHUNK)));
  }
  return parts.join("");
}
