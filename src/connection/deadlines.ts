/**
 * The endpoint's deadlines in one binary min-heap, so that the next timer
 * is read in O(1) and firing one costs O(log n), however many connections
 * are idle (quinn-proto's one timer per endpoint, not a sweep over every
 * connection).
 *
 * Entries are never updated in place: a later deadline is found out when
 * its entry comes to the top (the owner checks and schedules again), an
 * earlier one is pushed as a new entry, and the owner tells stale entries
 * from live ones.
 *
 * @module
 */

/** One scheduled deadline. */
export interface Deadline<T> {
  /** When, ms. */
  readonly at: number;
  /** What is due. */
  readonly item: T;
}

/** A min-heap of deadlines by time. */
export class DeadlineHeap<T> {
  readonly #heap: Deadline<T>[] = [];

  /** Entries held, stale ones included. */
  get size(): number {
    return this.#heap.length;
  }

  /** The earliest entry, or undefined. */
  peek(): Deadline<T> | undefined {
    return this.#heap[0];
  }

  /** Adds `item` due at `at`. */
  push(at: number, item: T): void {
    const heap = this.#heap;
    heap.push({ at, item });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= heap[i]!.at) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  /** Removes and returns the earliest entry, or undefined. */
  pop(): Deadline<T> | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && heap[left]!.at < heap[smallest]!.at) smallest = left;
      if (right < heap.length && heap[right]!.at < heap[smallest]!.at) smallest = right;
      if (smallest === i) break;
      [heap[smallest], heap[i]] = [heap[i]!, heap[smallest]!];
      i = smallest;
    }
    return top;
  }
}
