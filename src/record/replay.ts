/**
 * Anti-replay for one epoch of received records (RFC 6347 §4.1.2.6), the
 * sliding window of IPsec (RFC 4303 §3.4.3).
 *
 * @module
 */

/** Records older than this many below the highest one seen are refused. */
const WINDOW = 64;

/** Sequence numbers are uint48 (RFC 6347 §4.1). */
const SEQ_LIMIT = 2 ** 48;

/**
 * A 64-record sliding window over received sequence numbers.
 *
 * RFC 6347 §4.1.2.6: a record is checked with {@link isFresh} before it is
 * decrypted, and the window is updated with {@link accept} only once the
 * record has authenticated, so forged records cannot move the window.
 *
 * Sequence numbers are below 2^48, exact in a JS number; the 64-bit bitmap
 * is kept as two 32-bit words so no BigInt is needed. Bit `i` (word `lo`
 * for i < 32, `hi` above) stands for sequence number `top - i`.
 */
export class ReplayWindow {
  /** Highest sequence number accepted so far; -1 before the first. */
  #top = -1;
  #lo = 0;
  #hi = 0;

  /**
   * False for a sequence number already accepted, one too old for the
   * window (64 or more below the highest accepted), or one that is not a
   * uint48; true otherwise.
   */
  isFresh(seq: number): boolean {
    if (!Number.isInteger(seq) || seq < 0 || seq >= SEQ_LIMIT) return false;
    if (seq > this.#top) return true;
    const d = this.#top - seq;
    if (d >= WINDOW) return false;
    const word = d < 32 ? this.#lo : this.#hi;
    return ((word >>> (d & 31)) & 1) === 0;
  }

  /**
   * Marks `seq` as received. Call only for a record that authenticated;
   * an invalid sequence number is ignored.
   */
  accept(seq: number): void {
    if (!Number.isInteger(seq) || seq < 0 || seq >= SEQ_LIMIT) return;
    if (seq > this.#top) {
      // Slide the window up: shift the bitmap left by the advance, then
      // mark the new top (bit 0).
      const shift = seq - this.#top;
      if (shift >= WINDOW) {
        this.#hi = 0;
        this.#lo = 0;
      } else if (shift >= 32) {
        this.#hi = this.#lo << (shift - 32);
        this.#lo = 0;
      } else {
        this.#hi = (this.#hi << shift) | (this.#lo >>> (32 - shift));
        this.#lo = this.#lo << shift;
      }
      this.#lo |= 1;
      this.#top = seq;
      return;
    }
    const d = this.#top - seq;
    if (d >= WINDOW) return;
    if (d < 32) this.#lo |= 1 << d;
    else this.#hi |= 1 << (d - 32);
  }
}

/** Sequence numbers a {@link RecentSequences} remembers. */
const RECENT = 32;

/**
 * The last {@link RECENT} record numbers seen, for epoch 0, which has no
 * replay window: it tells a copy the network made of a record from a new
 * record, and never refuses a number for being old or far from the others
 * (epoch-0 records are anyone's: one at 2^48-1 must not make the peer's own
 * look stale).
 */
export class RecentSequences {
  readonly #seqs = new Array<number>(RECENT).fill(-1);
  #next = 0;

  /** Whether `seq` is one of the last added. */
  has(seq: number): boolean {
    return this.#seqs.includes(seq);
  }

  /** Adds `seq`, forgetting the oldest. */
  add(seq: number): void {
    this.#seqs[this.#next] = seq;
    this.#next = (this.#next + 1) % RECENT;
  }
}
