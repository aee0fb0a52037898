/**
 * Comparison of secret values without a data-dependent early exit.
 *
 * @module
 */

/**
 * Whether `a` and `b` hold the same bytes. Every byte is visited whatever
 * the contents, so the time taken reveals only the (public) length: an early
 * exit at the first difference would let an attacker learn a MAC, tag or
 * cookie byte by byte from response timing. Arrays of different lengths are
 * unequal.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
