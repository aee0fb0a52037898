/**
 * Bytes as a string of one character each (Latin-1): a map key or a
 * compact value that equals another exactly when the bytes do. Never text.
 *
 * @module
 */

/** One character per byte of `bytes`. */
export function byteString(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}
