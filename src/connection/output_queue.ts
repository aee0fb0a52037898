/**
 * A first-in first-out queue that is pushed to and drained to empty over
 * and over, as a connection's outgoing datagrams and events are: items are
 * read from a head index (Array.prototype.shift would move every remaining
 * element on each call), a drained slot is cleared so that the queue holds
 * nothing it handed out, and the array is emptied once all is read.
 *
 * @module
 */

export class OutputQueue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  push(item: T): void {
    this.#items.push(item);
  }

  /** The oldest item not yet taken, or undefined when none is left. */
  poll(): T | undefined {
    const items = this.#items;
    if (this.#head < items.length) {
      const item = items[this.#head];
      items[this.#head++] = undefined;
      return item;
    }
    if (items.length > 0) {
      items.length = 0;
      this.#head = 0;
    }
    return undefined;
  }
}
