/**
 * The endpoint's deadlines in one binary min-heap, so that the next timer
 * is read in O(1) and setting, moving or removing one costs O(log n),
 * however many connections are idle (quinn-proto's one timer per endpoint,
 * not a sweep over every connection).
 *
 * Each item is in the heap at most once and knows its place there, so a
 * deadline that moves is updated in place and an item that goes is taken
 * out at once: nothing stale piles up, and nothing gone is kept alive.
 *
 * @module
 */

/** What the heap orders: an item that remembers its deadline and its place. */
export interface Scheduled {
  /** Its deadline, ms, while in the heap. */
  deadline: number;
  /** Its index in the heap, or -1 when not in it (the heap's to write). */
  heapIndex: number;
}

/** A min-heap of items by deadline. */
export class DeadlineHeap<T extends Scheduled> {
  readonly #heap: T[] = [];

  /** Items held. */
  get size(): number {
    return this.#heap.length;
  }

  /** The item due first, or undefined. */
  peek(): T | undefined {
    return this.#heap[0];
  }

  /** Puts `item` in the heap at `deadline`, or moves it there if it is in already. */
  set(item: T, deadline: number): void {
    item.deadline = deadline;
    if (item.heapIndex < 0) {
      item.heapIndex = this.#heap.length;
      this.#heap.push(item);
    }
    this.#siftDown(this.#siftUp(item.heapIndex));
  }

  /** Takes `item` out, if it is in. */
  delete(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    const heap = this.#heap;
    const last = heap.pop()!;
    item.heapIndex = -1;
    if (last === item) return;
    heap[i] = last;
    last.heapIndex = i;
    this.#siftDown(this.#siftUp(i));
  }

  #swap(i: number, j: number): void {
    const heap = this.#heap;
    const a = heap[i]!;
    const b = heap[j]!;
    heap[i] = b;
    heap[j] = a;
    a.heapIndex = j;
    b.heapIndex = i;
  }

  #siftUp(start: number): number {
    let i = start;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#heap[parent]!.deadline <= this.#heap[i]!.deadline) break;
      this.#swap(parent, i);
      i = parent;
    }
    return i;
  }

  #siftDown(start: number): void {
    const heap = this.#heap;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && heap[left]!.deadline < heap[smallest]!.deadline) smallest = left;
      if (right < heap.length && heap[right]!.deadline < heap[smallest]!.deadline) smallest = right;
      if (smallest === i) return;
      this.#swap(smallest, i);
      i = smallest;
    }
  }
}
