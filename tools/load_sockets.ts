/**
 * The load tool's client sockets: Deno's own, or libc's through FFI with one
 * shared poll for every client (src/net/libc/mod.ts), so a load
 * generator on the libc backend spends less of a shared machine on its
 * sockets and more of it measures the server.
 *
 * @module
 */

import { LibcDatagramSocket, LibcPoller, type LibcSocketSizes } from "../src/net/libc/mod.ts";

/**
 * What the load tool uses of a UDP socket: Deno's interface, so its own
 * socket needs no wrapper; and, where the socket can, datagrams handed to a
 * callback without a promise each (`listen`).
 */
export type ClientSocket = Pick<Deno.DatagramConn, "receive" | "send" | "close"> & {
  listen?: (onDatagram: (datagram: Uint8Array) => void, onClose: () => void) => void;
};

/** Each client's buffers: answers up to 16 KiB, a few queued (a handshake flight, say). */
const CLIENT_SIZES: LibcSocketSizes = {
  receiveSlots: 4,
  receiveSlotBytes: 16_384,
  sendSlots: 8,
  sendBytes: 32_768,
};

/** Datagrams a client holds unread before the oldest is dropped (as a full socket buffer would). */
const QUEUE_LIMIT = 64;

/** Opens client sockets of one kind; `close()` ends what they share. */
export interface ClientSockets {
  open(hostname: string): ClientSocket;
  close(): Promise<void>;
}

/** Deno's UDP sockets. */
export function denoClientSockets(): ClientSockets {
  return {
    open: (hostname) => Deno.listenDatagram({ transport: "udp", hostname, port: 0 }),
    close: () => Promise.resolve(),
  };
}

/** libc sockets on one shared poller. */
export function libcClientSockets(): ClientSockets {
  const poller = new LibcPoller();
  const running = poller.run();
  return {
    open: (hostname) => new LibcClientSocket(poller, hostname),
    close: () => {
      poller.close();
      return running;
    },
  };
}

const SENT: Promise<number> = Promise.resolve(0);

/** What Deno's `receive` gives: bytes in an ArrayBuffer (the socket's arena is one). */
type Bytes = Uint8Array<ArrayBuffer>;

/** A libc socket behind Deno's `receive`/`send` interface. */
class LibcClientSocket implements ClientSocket {
  readonly #socket: LibcDatagramSocket;
  readonly #queue: [Bytes, Deno.Addr][] = [];
  #waiter:
    | { resolve: (v: [Bytes, Deno.Addr]) => void; reject: (e: Error) => void }
    | undefined;
  #closed = false;
  #failed: Error | undefined;
  #listener: ((datagram: Uint8Array) => void) | undefined;
  #onClose: (() => void) | undefined;

  constructor(poller: LibcPoller, hostname: string) {
    this.#socket = LibcDatagramSocket.bind(hostname, 0, CLIENT_SIZES);
    this.#socket.serveOn(poller, this.#onDatagram, this.#onError);
  }

  readonly #onDatagram = (datagram: Uint8Array, from: Deno.NetAddr): void => {
    if (this.#listener !== undefined) {
      this.#listener(datagram);
      return;
    }
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      // The waiter runs before this socket's next recvmmsg can reuse the slot.
      waiter.resolve([datagram as Bytes, from]);
      return;
    }
    if (this.#queue.length === QUEUE_LIMIT) this.#queue.shift();
    this.#queue.push([datagram.slice() as Bytes, from]);
  };

  readonly #onError = (error: unknown): void => {
    this.#failed = error instanceof Error ? error : new Error(String(error));
  };

  /** From now on every datagram goes to `onDatagram`, while it runs (no copy, no promise). */
  listen(onDatagram: (datagram: Uint8Array) => void, onClose: () => void): void {
    this.#listener = onDatagram;
    this.#onClose = onClose;
    for (let q = this.#queue.shift(); q !== undefined; q = this.#queue.shift()) onDatagram(q[0]);
  }

  receive(): Promise<[Bytes, Deno.Addr]> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#closed) return Promise.reject(new Error("Cannot receive: socket closed"));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  send(data: Uint8Array, to: Deno.Addr): Promise<number> {
    this.#sendError = undefined;
    this.#socket.send(data, to as Deno.NetAddr, this.#onSendError);
    const error = this.#sendError;
    return error === undefined ? SENT : Promise.reject(error);
  }

  #sendError: unknown;
  /** One handler for every send, rather than a closure per datagram. */
  readonly #onSendError = (error: unknown): void => {
    this.#sendError = error;
  };

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.close();
    this.#waiter?.reject(this.#failed ?? new Error("Cannot receive: socket closed"));
    this.#waiter = undefined;
    this.#onClose?.();
  }
}
