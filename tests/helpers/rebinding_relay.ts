/**
 * A UDP relay on loopback that behaves as a NAT which gives its client a new
 * public port mid-connection: it forwards the client's datagrams to the
 * server from one upstream socket, and on {@link rebind} (or on its own,
 * before a chosen datagram) from a fresh one, dropping whatever still
 * arrives on the old. The server sees the client's address change.
 */

/** Forwards one client's datagrams, changing its source port on demand. */
export class RebindingRelay {
  readonly #listen: Deno.DatagramConn;
  readonly #server: Deno.NetAddr;
  #upstream: Deno.DatagramConn;
  readonly #retired: Deno.DatagramConn[] = [];
  #client: Deno.NetAddr | undefined;
  readonly #loops: Promise<void>[] = [];
  #closed = false;
  /** Called with each client datagram; true makes the relay rebind before forwarding it. */
  readonly #rebindBefore: (datagram: Uint8Array) => boolean;
  /** Upstream ports used, oldest first. */
  readonly ports: number[] = [];

  constructor(serverPort: number, rebindBefore: (datagram: Uint8Array) => boolean = () => false) {
    this.#server = { transport: "udp", hostname: "127.0.0.1", port: serverPort };
    this.#listen = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#rebindBefore = rebindBefore;
    this.#upstream = this.#open();
    this.#loops.push(this.#fromClient());
  }

  /** The port the client should use. */
  get port(): number {
    return (this.#listen.addr as Deno.NetAddr).port;
  }

  /** From now on the client's datagrams leave from a new port; the old one's replies are dropped. */
  rebind(): void {
    this.#retired.push(this.#upstream);
    this.#upstream = this.#open();
  }

  #open(): Deno.DatagramConn {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.ports.push((socket.addr as Deno.NetAddr).port);
    this.#loops.push(this.#fromServer(socket));
    return socket;
  }

  async #fromClient(): Promise<void> {
    try {
      for (;;) {
        const [datagram, from] = await this.#listen.receive();
        this.#client = from as Deno.NetAddr;
        if (this.#rebindBefore(datagram)) this.rebind();
        await this.#upstream.send(datagram, this.#server);
      }
    } catch (error) {
      if (!this.#closed) throw error;
    }
  }

  async #fromServer(socket: Deno.DatagramConn): Promise<void> {
    try {
      for (;;) {
        const [datagram] = await socket.receive();
        // A NAT forgets the old mapping: what comes back to it is lost.
        if (socket !== this.#upstream || this.#client === undefined) continue;
        await this.#listen.send(datagram, this.#client);
      }
    } catch (error) {
      if (!this.#closed) throw error;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#closed = true;
    for (const socket of [this.#listen, this.#upstream, ...this.#retired]) socket.close();
    await Promise.allSettled(this.#loops);
  }
}
