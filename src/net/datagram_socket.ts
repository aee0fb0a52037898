/**
 * The server shell's UDP socket, with two backends: Deno's own
 * (`Deno.listenDatagram`, the portable default) and Linux libc through FFI
 * (`recvmmsg`/`sendmmsg`, a batch of datagrams per system call; see
 * libc/mod.ts). The server sees one interface and never which it has.
 *
 * @module
 */

import { LibcDatagramSocket, SERVER_SIZES } from "./libc/mod.ts";

/** Which socket implementation the server uses. */
export type SocketIo = "deno" | "libc";

/** Called once per datagram received; `datagram` is valid only during the call. */
export type DatagramListener = (datagram: Uint8Array, from: Deno.NetAddr) => void;

/** A bound UDP socket. */
export interface DatagramSocket {
  /** The bound address (the port chosen when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /**
   * Receives until the socket is closed, calling `onDatagram` for each
   * datagram; a receive error that does not end the socket goes to
   * `onError`. Resolves once closed. Sends made during `onDatagram` may be
   * held and sent together when the calls for one batch have returned.
   */
  serve(onDatagram: DatagramListener, onError: (error: unknown) => void): Promise<void>;
  /**
   * Sends a datagram (copied before this returns, so its buffer may be
   * reused); a failure goes to `onError`. The promise settles once the
   * datagram has left or failed.
   */
  send(datagram: Uint8Array, to: Deno.NetAddr, onError: (error: unknown) => void): Promise<void>;
  /** Closes the socket; `serve` then resolves. */
  close(): void;
  /** Datagrams the kernel dropped for want of buffer room, where the backend can tell (libc). */
  readonly receiveDrops?: number;
  /** The socket receive buffer the kernel granted, where the backend can tell (libc). */
  readonly receiveBufferBytes?: number;
}

/** Where to bind and with which backend. */
export interface DatagramSocketOptions {
  readonly hostname: string;
  readonly port: number;
  readonly io: SocketIo;
  /** SO_RCVBUF to ask for, bytes (libc only: Deno's socket cannot set it). */
  readonly receiveBuffer?: number | undefined;
}

/** Binds a UDP socket. Throws if the address cannot be bound or the backend is unavailable. */
export function bindDatagramSocket(options: DatagramSocketOptions): DatagramSocket {
  if (options.io === "libc") {
    return LibcDatagramSocket.bind(options.hostname, options.port, SERVER_SIZES, {
      receiveBuffer: options.receiveBuffer,
    });
  }
  if (options.receiveBuffer !== undefined) {
    throw new Error("Cannot set a receive buffer on Deno's socket: it needs --io libc");
  }
  return new DenoDatagramSocket(options.hostname, options.port);
}

const RECEIVE_BUFFER = 65_536;

/** `Deno.listenDatagram`: one promise per datagram received and per datagram sent. */
class DenoDatagramSocket implements DatagramSocket {
  readonly #conn: Deno.DatagramConn;
  #closed = false;

  constructor(hostname: string, port: number) {
    this.#conn = Deno.listenDatagram({ transport: "udp", hostname, port });
  }

  get addr(): Deno.NetAddr {
    return this.#conn.addr as Deno.NetAddr;
  }

  async serve(onDatagram: DatagramListener, onError: (error: unknown) => void): Promise<void> {
    // One buffer for every datagram: receive() without one allocates 64 KiB each time.
    const buffer = new Uint8Array(RECEIVE_BUFFER);
    while (true) {
      let datagram: Uint8Array, from: Deno.Addr;
      try {
        // Indexed rather than destructured: no iterator per datagram.
        const received = await this.#conn.receive(buffer);
        datagram = received[0];
        from = received[1];
      } catch (error) {
        if (this.#closed) return;
        onError(error);
        continue;
      }
      onDatagram(datagram, from as Deno.NetAddr);
    }
  }

  send(datagram: Uint8Array, to: Deno.NetAddr, onError: (error: unknown) => void): Promise<void> {
    return this.#conn.send(datagram, to).then(ignore, onError);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }
}

function ignore(): void {}
