/**
 * A misbehaving DTLS client on a real loopback socket: our sans-I/O client
 * connection, driven in real time, whose outgoing datagrams a test can hold
 * back, rewrite or replace, and which can send any bytes it likes. What the
 * server answers is kept, decoded where it is plaintext, and fed back to the
 * connection.
 *
 * Nothing here sleeps for a fixed time: every wait is for an observable
 * condition, bounded by a timeout.
 */

import type { Connection } from "../../src/connection/connection.ts";
import { connectionConfig, createClientConnection } from "../../src/connection/endpoint.ts";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import type { ClientHandshakeOptions } from "../../src/handshake/client.ts";
import { encodeHandshakeMessage, parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import { Writer } from "../../src/codec/writer.ts";
import {
  ContentType,
  DTLS_1_2,
  encodeRecord,
  parseRecords,
  type RecordView,
} from "../../src/record/header.ts";
import { suiteByName } from "../../src/record/suites.ts";
import { clientPsk } from "./sim.ts";
import { seededRandom } from "./random.ts";

/** Plain PSK with AES-128-GCM: its ClientKeyExchange is just the identity, easy to forge. */
export const PLAIN_PSK = suiteByName("TLS_PSK_WITH_AES_128_GCM_SHA256");

/** What to do with a datagram the connection wants to send. */
export type Outgoing = "send" | "hold";

/** A client on its own socket whose traffic a test controls. */
export class HostilePeer {
  readonly socket: Deno.DatagramConn;
  readonly server: Deno.NetAddr;
  connection: Connection | undefined;
  /** Everything the server sent us, in order. */
  readonly received: Uint8Array[] = [];
  /** The connection's events, in order. */
  readonly events: ConnectionEvent[] = [];
  /** Datagrams the filter held back. */
  readonly held: Uint8Array[] = [];
  /** Decides, per outgoing datagram of the connection, whether it leaves. */
  filter: (datagram: Uint8Array) => Outgoing = () => "send";
  #waiters: (() => void)[] = [];
  #loop: Promise<void>;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /**
   * Sequence numbers for hand-made epoch-0 records: past the connection's own
   * (about 4 in a handshake) but close enough that its later records still
   * fall inside the server's 64-record replay window.
   */
  #rawSeq = 20;

  private constructor(socket: Deno.DatagramConn, server: Deno.NetAddr) {
    this.socket = socket;
    this.server = server;
    this.#loop = this.#receive();
  }

  /** A peer bound to 127.0.0.1 on a free port, talking to `port`. */
  static open(port: number): HostilePeer {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    return new HostilePeer(socket, { transport: "udp", hostname: "127.0.0.1", port });
  }

  /** Our local port. */
  get port(): number {
    return (this.socket.addr as Deno.NetAddr).port;
  }

  /** Our key in the server's connection table. */
  get key(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts a handshake with the connection; `overrides` change what the client offers. */
  connect(overrides: Partial<ClientHandshakeOptions> = {}, seed = `peer/${this.port}`): Connection {
    const random = seededRandom(`${seed}/${Date.now()}`);
    this.connection = createClientConnection(
      connectionConfig(nobleProvider, random),
      clientPsk({ suites: [PLAIN_PSK], ...overrides }),
      Date.now(),
    );
    this.flush();
    return this.connection;
  }

  /** Sends bytes as they are. */
  async sendRaw(...datagrams: Uint8Array[]): Promise<void> {
    for (const d of datagrams) await this.socket.send(d, this.server);
  }

  /** A plaintext epoch-0 record of `type` with a fresh sequence number. */
  rawRecord(type: number, fragment: Uint8Array, version = DTLS_1_2, epoch = 0): Uint8Array {
    return encodeRecord(type, version, epoch, this.#rawSeq++, fragment);
  }

  /** A plaintext epoch-0 handshake record holding one fragment of a message. */
  rawFragment(
    msgType: number,
    messageSeq: number,
    length: number,
    offset: number,
    body: Uint8Array,
  ): Uint8Array {
    const fragment = new Writer(12 + body.length).u8(msgType).u24(length).u16(messageSeq)
      .u24(offset).u24(body.length).bytes(body).finish();
    return this.rawRecord(ContentType.Handshake, fragment);
  }

  /** A plaintext epoch-0 handshake record holding one whole message. */
  rawMessage(msgType: number, messageSeq: number, body: Uint8Array): Uint8Array {
    return this.rawRecord(ContentType.Handshake, encodeHandshakeMessage(msgType, messageSeq, body));
  }

  /** Sends what the connection has queued (through the filter) and re-arms its timer. */
  flush(): void {
    const c = this.connection;
    if (c === undefined) return;
    for (let e = c.pollEvent(); e; e = c.pollEvent()) this.events.push(e);
    for (let d = c.pollTransmit(); d; d = c.pollTransmit()) {
      if (this.filter(d) === "hold") this.held.push(d);
      else this.socket.send(d, this.server).catch(() => {});
    }
    clearTimeout(this.#timer);
    const due = c.pollTimeout();
    if (due !== undefined && !this.#closed) {
      this.#timer = setTimeout(() => {
        c.handleTimeout(Date.now());
        this.flush();
      }, Math.max(0, due - Date.now()));
    }
    this.#wake();
  }

  /** Resolves once `done()` holds, re-checked on every datagram and event; rejects on timeout. */
  async until(done: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The records of every datagram the server sent us. */
  receivedRecords(): RecordView[] {
    return this.received.flatMap((d) => parseRecords(d).records);
  }

  /** Alerts the connection received, by name. */
  alertsReceived(): string[] {
    return this.events.flatMap((e) =>
      e.type === "alert" && e.direction === "received" ? [e.description] : []
    );
  }

  /** Stops the timer and closes the socket (no close_notify). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.socket.close();
    await this.#loop;
  }

  async #receive(): Promise<void> {
    const buffer = new Uint8Array(65_536);
    while (true) {
      let datagram: Uint8Array;
      try {
        [datagram] = await this.socket.receive(buffer);
      } catch {
        return;
      }
      const copy = datagram.slice();
      this.received.push(copy);
      this.connection?.handleDatagram(copy, Date.now());
      this.flush();
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/** Whether a datagram carries a record of `type` (e.g. the ChangeCipherSpec of flight 5). */
export function carries(datagram: Uint8Array, type: number): boolean {
  return parseRecords(datagram).records.some((r) => r.type === type);
}

/** Whether a datagram carries a handshake message of `msgType` in epoch 0. */
export function carriesHandshake(datagram: Uint8Array, msgType: number): boolean {
  return parseRecords(datagram).records.some((r) =>
    r.type === ContentType.Handshake && r.epoch === 0 &&
    parseHandshakeFragments(r.fragment).some((f) => f.msgType === msgType)
  );
}

/** The records of a datagram as separate byte arrays. */
export function splitRecords(datagram: Uint8Array): Uint8Array[] {
  return parseRecords(datagram).records.map((r) => r.raw.slice());
}
