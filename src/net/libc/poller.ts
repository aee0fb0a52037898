/**
 * The wait for datagrams: one `poll` on a worker thread for any number of
 * sockets (the server has one per socket; the load tool shares one among all
 * its clients), so the event loop runs while nothing arrives.
 *
 * @module
 */

import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EINTR,
  errno,
  type Libc,
  openLibc,
  POLLIN,
  systemError,
} from "./ffi.ts";

/** Called once per datagram received; `datagram` is valid only during the call. */
export type DatagramListener = (datagram: Uint8Array, from: Deno.NetAddr) => void;
export type ErrorListener = (error: unknown) => void;

/** What the poller needs of a socket (the socket imports the poller, not the reverse). */
export interface PolledSocket {
  /** The descriptor to poll. */
  readonly fd: number;
  /** Datagrams one receive may take: a batch that full means more may wait. */
  readonly receiveSlots: number;
  /** Takes one batch of datagrams and hands each over; returns how many it took. */
  receiveBatch(onDatagram: DatagramListener, onError: ErrorListener): number;
  /** Closes the descriptor, once. */
  release(): void;
}

/** Full batches taken from one socket per wake-up before the event loop gets a turn. */
const BATCHES_PER_WAKE = 8;

/**
 * One `poll` on a worker thread for any number of sockets, woken by an
 * eventfd when the set changes or it is closed. The set is rebuilt only
 * between polls, so the array the thread reads never changes under it; and
 * a descriptor is closed only when no poll holds it, exactly once (a number
 * closed twice would close whatever the kernel gave it to in between).
 */
export class LibcPoller {
  readonly #libc: Libc;
  readonly #wake: number;
  readonly #members = new Map<
    PolledSocket,
    { onDatagram: DatagramListener; onError: ErrorListener }
  >();
  #order: PolledSocket[] = [];
  /** The sockets in the poll set, including those unwatched since it was built. */
  #polled = new Set<PolledSocket>();
  /** Unwatched while a poll held them: closed at the next rebuild. */
  readonly #retired: PolledSocket[] = [];
  #fds = new Uint8Array(new ArrayBuffer(16));
  #fdsView = new DataView(this.#fds.buffer);
  #changed = true;
  #closed = false;
  #running = false;
  #polling = false;
  #released = false;
  readonly #signal = new Uint8Array(new ArrayBuffer(64), 0, 8);

  constructor() {
    this.#libc = openLibc();
    this.#wake = this.#libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#wake < 0) throw systemError("open an eventfd", errno());
  }

  /** Starts delivering `socket`'s datagrams (from the next wake-up on). */
  watch(socket: PolledSocket, onDatagram: DatagramListener, onError: ErrorListener): void {
    if (this.#closed) throw new TypeError("Cannot watch: poller closed");
    this.#members.set(socket, { onDatagram, onError });
    this.#change();
  }

  /** Stops delivering `socket`'s datagrams; its descriptor is closed once no poll holds it. */
  unwatch(socket: PolledSocket): void {
    this.#members.delete(socket);
    if (this.#polling && this.#polled.has(socket)) {
      this.#retired.push(socket);
      this.#change();
    } else {
      this.#changed = true;
      socket.release();
    }
  }

  #change(): void {
    this.#changed = true;
    if (this.#polling) this.#poke();
  }

  #poke(): void {
    new DataView(this.#signal.buffer).setBigUint64(0, 1n, true);
    this.#libc.write(this.#wake, this.#signal, 8n);
  }

  /** Polls until closed. */
  async run(): Promise<void> {
    if (this.#running || this.#closed) throw new TypeError("Cannot run: running or closed");
    this.#running = true;
    try {
      await this.#loop();
    } finally {
      this.#running = false;
      this.#releaseAll();
    }
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      if (this.#changed) this.#rebuild();
      this.#polling = true;
      const ready = await this.#libc.pollAsync(this.#fds, BigInt(this.#order.length + 1), -1);
      this.#polling = false;
      if (this.#closed) break;
      if (ready < 0) {
        // errno belongs to the worker thread that polled: ask again here, at once, to read it.
        if (this.#libc.poll(this.#fds, BigInt(this.#order.length + 1), 0) >= 0) continue;
        const code = errno();
        if (code === EINTR) continue;
        // Not transient (the set itself is wrong): say so and stop rather than spin.
        this.#reportToAll(systemError("wait for datagrams", code));
        this.#closed = true;
        break;
      }
      const view = this.#fdsView;
      if (view.getInt16(6, true) !== 0) {
        // Drain the eventfd so the next poll sleeps again.
        this.#libc.read(this.#wake, this.#signal, 8n);
      }
      const order = this.#order;
      for (let i = 0; i < order.length; i++) {
        if (view.getInt16((i + 1) * 8 + 6, true) === 0) continue;
        const socket = order[i]!;
        const member = this.#members.get(socket);
        if (member === undefined) continue;
        // Full batches mean more is waiting: drain up to a bound, then back to the
        // event loop (timers must not starve). A burst that outruns one batch per
        // wake-up would otherwise overflow the kernel's buffer.
        for (
          let round = 0;
          round < BATCHES_PER_WAKE &&
          socket.receiveBatch(member.onDatagram, member.onError) === socket.receiveSlots;
          round++
        );
      }
    }
  }

  /** Closes every descriptor left, once: the sockets' and the eventfd. */
  #releaseAll(): void {
    if (this.#released) return;
    this.#released = true;
    for (const socket of this.#retired) socket.release();
    for (const socket of this.#order) socket.release();
    for (const socket of this.#members.keys()) socket.release();
    this.#retired.length = 0;
    this.#libc.close(this.#wake);
  }

  #rebuild(): void {
    this.#changed = false;
    for (const socket of this.#retired) socket.release();
    this.#retired.length = 0;
    this.#order = [...this.#members.keys()];
    this.#polled = new Set(this.#order);
    const length = (this.#order.length + 1) * 8;
    if (this.#fds.length < length) {
      // struct pollfd { int fd; short events; short revents; }, in memory V8 never moves.
      this.#fds = new Uint8Array(new ArrayBuffer(Math.max(length, this.#fds.length * 2)));
      this.#fdsView = new DataView(this.#fds.buffer);
    }
    const view = this.#fdsView;
    view.setInt32(0, this.#wake, true);
    view.setInt16(4, POLLIN, true);
    this.#order.forEach((socket, i) => {
      view.setInt32((i + 1) * 8, socket.fd, true);
      view.setInt16((i + 1) * 8 + 4, POLLIN, true);
    });
  }

  #reportToAll(error: Error): void {
    for (const member of this.#members.values()) member.onError(error);
  }

  /** Ends `run()`, which then closes every socket still watched (at once if not running). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#polling) this.#poke();
    else if (!this.#running) this.#releaseAll();
    // Running but between polls (a callback closed it): run() ends at its next check.
  }
}
