/**
 * A UDP proxy on loopback that loses, duplicates, reorders and delays
 * datagrams between real clients and a real server. Each client gets its own
 * upstream socket, so the server sees one peer per client, as it would
 * without the proxy. Fates are drawn from a seeded generator.
 */

/** What the network does, as probabilities per datagram, in each direction. */
export interface Impairment {
  /** Probability a datagram is lost. */
  loss: number;
  /** Probability a datagram that survives is delivered twice. */
  duplicate: number;
  /** Probability a datagram is held back for a random delay (so it is reordered). */
  delay: number;
  /** Longest delay, ms. */
  maxDelayMs: number;
}

/** No impairment. */
export const CLEAN: Impairment = { loss: 0, duplicate: 0, delay: 0, maxDelayMs: 0 };

interface Route {
  readonly client: Deno.NetAddr;
  readonly upstream: Deno.DatagramConn;
  readonly loop: Promise<void>;
}

/** A lossy proxy: clients talk to {@link port}; it forwards to the server. */
export class LossyProxy {
  readonly #socket: Deno.DatagramConn;
  readonly #server: Deno.NetAddr;
  readonly #routes = new Map<string, Route>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #loop: Promise<void>;
  #state: number;
  #closed = false;
  /** The current impairment; tests may change it at any time. */
  impairment: Impairment;
  /** Datagrams lost, duplicated and delayed so far. */
  readonly stats = { forwarded: 0, lost: 0, duplicated: 0, delayed: 0 };

  constructor(serverPort: number, impairment: Impairment, seed = 1) {
    this.#server = { transport: "udp", hostname: "127.0.0.1", port: serverPort };
    this.#socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.impairment = impairment;
    this.#state = seed >>> 0 || 1;
    this.#loop = this.#fromClients();
  }

  /** The port clients should use. */
  get port(): number {
    return (this.#socket.addr as Deno.NetAddr).port;
  }

  /** Datagrams held back and not yet delivered. */
  get inFlight(): number {
    return this.#timers.size;
  }

  /** xorshift32: deterministic per seed, good enough to pick fates. */
  #random(): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state / 2 ** 32;
  }

  #forward(datagram: Uint8Array, send: (d: Uint8Array) => void): void {
    const { loss, duplicate, delay, maxDelayMs } = this.impairment;
    if (this.#random() < loss) {
      this.stats.lost++;
      return;
    }
    const copies = this.#random() < duplicate ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      if (this.#random() < delay) {
        this.stats.delayed++;
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          if (!this.#closed) send(datagram);
        }, Math.floor(this.#random() * maxDelayMs));
        this.#timers.add(timer);
      } else {
        send(datagram);
      }
    }
    this.stats.forwarded++;
  }

  async #fromClients(): Promise<void> {
    const buffer = new Uint8Array(65_536);
    while (true) {
      let datagram: Uint8Array, addr: Deno.Addr;
      try {
        [datagram, addr] = await this.#socket.receive(buffer);
      } catch {
        return;
      }
      const client = addr as Deno.NetAddr;
      const route = this.#route(client);
      this.#forward(datagram.slice(), (d) => {
        route.upstream.send(d, this.#server).catch(() => {});
      });
    }
  }

  #route(client: Deno.NetAddr): Route {
    const key = `${client.hostname}:${client.port}`;
    let route = this.#routes.get(key);
    if (route === undefined) {
      const upstream = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      route = { client, upstream, loop: this.#fromServer(upstream, client) };
      this.#routes.set(key, route);
    }
    return route;
  }

  async #fromServer(upstream: Deno.DatagramConn, client: Deno.NetAddr): Promise<void> {
    const buffer = new Uint8Array(65_536);
    while (true) {
      let datagram: Uint8Array;
      try {
        [datagram] = await upstream.receive(buffer);
      } catch {
        return;
      }
      this.#forward(datagram.slice(), (d) => {
        if (!this.#closed) this.#socket.send(d, client).catch(() => {});
      });
    }
  }

  /** Drops everything held and closes every socket. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#socket.close();
    await this.#loop;
    for (const route of this.#routes.values()) {
      route.upstream.close();
      await route.loop;
    }
  }
}
