/**
 * A simulator that runs our client against our server endpoint on virtual
 * time, with a network whose behaviour a test scripts per datagram: deliver,
 * drop, duplicate, or hold back (reorder).
 */

import type { Association } from "../../src/connection/association.ts";
import {
  connectionConfig,
  createClientConnection,
  createClientConnection13,
  type DtlsVersion,
  type EndpointOutcome,
  ServerEndpoint,
} from "../../src/connection/endpoint.ts";
import type { Client13Options } from "../../src/handshake/client13.ts";
import { SUITES_13 } from "../../src/record/suites13.ts";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import type { ClientHandshakeOptions } from "../../src/handshake/client.ts";
import type { ServerHandshakeOptions } from "../../src/handshake/server.ts";
import { PSK_SUITES } from "../../src/record/suites.ts";
import { seededRandom } from "./random.ts";

/** What the network does with one datagram. */
export type Fate = "deliver" | "drop" | "duplicate" | "delay";

/** Decides each datagram's fate; `index` counts datagrams in that direction. */
export type NetworkScript = (direction: "c2s" | "s2c", index: number, datagram: Uint8Array) => Fate;

export const PEER = "127.0.0.1:50000";
export const IDENTITY = new TextEncoder().encode("Qt DTLS example client");
export const KEY = new Uint8Array([0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]);

/** Server PSK options with one identity. */
export function serverPsk(overrides: Partial<ServerHandshakeOptions> = {}): ServerHandshakeOptions {
  return {
    lookupPsk: (id) => new TextDecoder().decode(id) === "Qt DTLS example client" ? KEY : undefined,
    identityHint: new TextEncoder().encode("Qt DTLS example server"),
    suites: PSK_SUITES,
    groups: ["x25519", "secp256r1"],
    maxIdentityLength: 128,
    dummyKeyLength: () => KEY.length,
    ...overrides,
  };
}

/** Client PSK options. */
export function clientPsk(overrides: Partial<ClientHandshakeOptions> = {}): ClientHandshakeOptions {
  return {
    identity: IDENTITY,
    psk: KEY,
    suites: PSK_SUITES,
    groups: ["x25519", "secp256r1"],
    ...overrides,
  };
}

/** DTLS 1.3 client options over the demo PSK. */
export function client13(overrides: Partial<Client13Options> = {}): Client13Options {
  return {
    identity: IDENTITY,
    psk: KEY,
    suites: SUITES_13,
    groups: ["x25519", "secp256r1"],
    ...overrides,
  };
}

/** The description of the first alert among `events` that was sent, if any. */
export function sentAlert(events: readonly ConnectionEvent[]): string | undefined {
  const sent = events.find((e) => e.type === "alert" && e.direction === "sent");
  return sent?.type === "alert" ? sent.description : undefined;
}

/** A client and a server endpoint wired through a scripted network. */
export class Pair {
  now = 1_000_000;
  readonly endpoint: ServerEndpoint;
  readonly client: Association;
  readonly clientEvents: ConnectionEvent[] = [];
  readonly serverEvents: ConnectionEvent[] = [];
  readonly outcomes: EndpointOutcome["kind"][] = [];
  readonly wire: { direction: "c2s" | "s2c"; datagram: Uint8Array }[] = [];
  #delayed: { direction: "c2s" | "s2c"; datagram: Uint8Array }[] = [];
  #counts = { c2s: 0, s2c: 0 };
  readonly script: NetworkScript;
  /** Where the client's datagrams come from (a test may move it: a NAT rebinding). */
  clientAddress = PEER;
  /** What the endpoint made of the last datagram from the client. */
  lastOutcome: EndpointOutcome | undefined;
  #server: Association | undefined;

  constructor(
    options: {
      seed?: string;
      server?: Partial<ServerHandshakeOptions>;
      client?: Partial<ClientHandshakeOptions>;
      script?: NetworkScript;
      mtu?: number;
      /** The server's MTU, when it differs from `mtu`. */
      serverMtu?: number;
      /** The endpoint's Connection ID length (default: none). */
      cidLength?: number;
      /** Virtual time at the start, ms (certificates need a date they are valid at). */
      start?: number;
      /** A DTLS 1.3 client with these options (over the demo PSK) instead of the 1.2 one. */
      dtls13?: Partial<Client13Options>;
      /** The versions the endpoint speaks (default: both). */
      versions?: DtlsVersion[];
      /** DTLS 1.3: records a key protects before each side sends a KeyUpdate. */
      keyUpdateAfterRecords?: number;
    } = {},
  ) {
    if (options.start !== undefined) this.now = options.start;
    const seed = options.seed ?? "pair";
    const config = (who: string) => {
      const mtu = who === "server" ? options.serverMtu ?? options.mtu : options.mtu;
      return connectionConfig(nobleProvider, seededRandom(`${seed}/${who}`), {
        ...(mtu ? { mtu } : {}),
        keyUpdateAfterRecords: options.keyUpdateAfterRecords,
      });
    };
    this.script = options.script ?? (() => "deliver");
    this.endpoint = new ServerEndpoint({
      connection: config("server"),
      psk: serverPsk(options.server),
      maxConnections: 100,
      idleTimeoutMs: 600_000,
      cidLength: options.cidLength ?? 0,
      ...(options.versions === undefined ? {} : { versions: options.versions }),
    });
    this.client = options.dtls13 === undefined
      ? createClientConnection(config("client"), clientPsk(options.client), this.now)
      : createClientConnection13(config("client"), client13(options.dtls13), this.now);
  }

  /** The server's connection with the client, if any. */
  get server(): Association | undefined {
    return this.endpoint.get(this.clientAddress) ?? this.#server;
  }

  #route(direction: "c2s" | "s2c", datagram: Uint8Array): void {
    const fate = this.script(direction, this.#counts[direction]++, datagram);
    if (fate === "drop") return;
    if (fate === "delay") {
      this.#delayed.push({ direction, datagram });
      return;
    }
    this.#deliver(direction, datagram);
    if (fate === "duplicate") this.#deliver(direction, datagram);
  }

  #deliver(direction: "c2s" | "s2c", datagram: Uint8Array): void {
    this.wire.push({ direction, datagram });
    if (direction === "s2c") {
      this.client.handleDatagram(datagram, this.now);
      return;
    }
    const outcome = this.endpoint.handleDatagram(datagram, this.clientAddress, this.now);
    if (outcome.kind === "connection") this.#server = outcome.connection;
    this.lastOutcome = outcome;
    this.outcomes.push(outcome.kind);
    if (
      outcome.kind === "hello_verify_request" || outcome.kind === "hello_retry_request" ||
      outcome.kind === "alert"
    ) {
      this.#route("s2c", outcome.datagram);
    }
  }

  /** Moves every queued datagram and event until nothing is left to move. */
  pump(): void {
    for (let round = 0; round < 1000; round++) {
      let moved = false;
      for (let d = this.client.pollTransmit(); d; d = this.client.pollTransmit()) {
        moved = true;
        this.#route("c2s", d);
      }
      const server = this.server;
      if (server) {
        for (let d = server.pollTransmit(); d; d = server.pollTransmit()) {
          moved = true;
          this.#route("s2c", d);
        }
        for (let e = server.pollEvent(); e; e = server.pollEvent()) this.serverEvents.push(e);
      }
      for (let e = this.client.pollEvent(); e; e = this.client.pollEvent()) {
        this.clientEvents.push(e);
      }
      if (!moved) {
        // Release held-back datagrams only once the rest has flowed: a reorder.
        const delayed = this.#delayed;
        this.#delayed = [];
        for (const { direction, datagram } of delayed.reverse()) {
          moved = true;
          this.#deliver(direction, datagram);
        }
      }
      if (!moved) return;
    }
    throw new Error("pump did not settle");
  }

  /** Advances virtual time to the next timer of either side and fires it. */
  advance(): boolean {
    const deadlines = [this.client.pollTimeout(), this.server?.pollTimeout()].filter((
      t,
    ): t is number => t !== undefined);
    if (deadlines.length === 0) return false;
    this.now = Math.max(this.now, Math.min(...deadlines));
    this.client.handleTimeout(this.now);
    for (const { connection: c } of this.endpoint.handleTimeouts(this.now)) void c;
    return true;
  }

  /**
   * Pumps and fires timers until the client is established or closed (with
   * `both`, the server's connection too), or `limitMs` passes.
   */
  run(limitMs = 120_000, both = false): void {
    const end = this.now + limitMs;
    const settled = (c: Association | undefined) =>
      c !== undefined && (c.isEstablished || c.isClosed);
    this.pump();
    while (
      !(settled(this.client) && (!both || settled(this.server))) && this.now < end
    ) {
      if (!this.advance()) break;
      this.pump();
    }
    this.pump();
  }
}
