/**
 * A first-in first-out queue that is pushed to and drained to empty over
 * and over, as a connection's outgoing datagrams and events are.
 *
 * The usual load is one item at a time (a record in, an event and an answer
 * out), so the first item waits in a field of its own and only a second one
 * opens an array: an array emptied after each drain would allocate its
 * storage again on every datagram, and one kept would cost every idle
 * connection its slots. Array items are read from a head index
 * (Array.prototype.shift would move every remaining element on each call),
 * and a drained slot is cleared so that the queue holds nothing it handed
 * out.
 *
 * @module
 */

export class OutputQueue<T> {
  #first: T | undefined = undefined;
  #rest: (T | undefined)[] | undefined = undefined;
  #head = 0;

  push(item: T): void {
    const rest = this.#rest;
    if (rest === undefined || this.#head >= rest.length) {
      if (this.#first === undefined) {
        this.#first = item;
        return;
      }
    }
    if (rest === undefined) this.#rest = [item];
    else rest.push(item);
  }

  /** The oldest item not yet taken, or undefined when none is left. */
  poll(): T | undefined {
    const first = this.#first;
    if (first !== undefined) {
      this.#first = undefined;
      return first;
    }
    const rest = this.#rest;
    if (rest === undefined) return undefined;
    if (this.#head < rest.length) {
      const item = rest[this.#head];
      rest[this.#head++] = undefined;
      return item;
    }
    this.#rest = undefined;
    this.#head = 0;
    return undefined;
  }
}
