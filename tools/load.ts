/**
 * A load generator for any DTLS 1.2 PSK server (ours, OpenSSL's, pion's):
 * N concurrent clients, each on its own UDP socket, in lock-step like a
 * request/response application, reporting JSON.
 *
 *     deno task load --port 4433 --mode echo --clients 50 --size 64 --duration 10
 *     deno task load --port 4433 --mode handshake --clients 50 --duration 10
 *     deno task load --port 7 --mode udp --clients 50 --size 64   # plain UDP, the ceiling
 *
 * Modes:
 * - `echo`: each client completes one handshake, then sends a payload of
 *   `--size` bytes and waits for any application-data answer, again and
 *   again until the time is up. Latency is the round trip.
 * - `handshake`: each client opens a fresh socket, runs a full handshake
 *   (with the cookie exchange), sends close_notify, closes, and repeats.
 *   Latency is the handshake's duration.
 * - `udp`: the same lock-step echo without DTLS, against a plain UDP echo
 *   server (`tools/udp_echo.ts`): the ceiling of the socket path.
 *
 * The clients are the project's own sans-I/O client engine driven here
 * directly, with one shared watchdog timer for retransmissions and
 * timeouts (no timer per client). Only loopback targets are meant: every
 * run is bounded by `--duration`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { Connection } from "../src/connection/connection.ts";
import { connectionConfig, createClientConnection } from "../src/connection/endpoint.ts";
import { nobleProvider } from "../src/crypto/noble.ts";
import { nodeProvider } from "../src/crypto/node.ts";
import type { CryptoProvider } from "../src/crypto/provider.ts";
import { aesGcm } from "./gcm.ts";
import { suiteByName } from "../src/record/suites.ts";
import {
  type ClientSocket,
  type ClientSockets,
  denoClientSockets,
  libcClientSockets,
} from "./load_sockets.ts";

/** What to run. */
export interface LoadOptions {
  /** Server address. */
  readonly host: string;
  /** Server UDP port. */
  readonly port: number;
  /** See the module documentation. */
  readonly mode: "echo" | "handshake" | "udp";
  /** Concurrent clients, each with its own socket. */
  readonly clients: number;
  /** Payload bytes per echo message. */
  readonly size: number;
  /** Measured time, ms. */
  readonly durationMs: number;
  /** Time run before measuring (JIT warm-up, handshakes of echo clients), ms. */
  readonly warmupMs: number;
  /** IANA name of the one suite offered. */
  readonly suite: string;
  /** psk_identity. */
  readonly identity: string;
  /** The key. */
  readonly psk: Uint8Array;
  /** The clients' crypto. */
  readonly provider: CryptoProvider;
  /** An answer (or a handshake step) not seen by then counts as a timeout, ms. */
  readonly timeoutMs: number;
  /** Clients bind to 127.0.0.1 … 127.0.0.N in turn (per-address limits see N sources). */
  readonly sources: number;
  /** When set, the report says how the samples slower than this group in time (ms). */
  readonly slowMs?: number;
  /** The clients' sockets: Deno's, or libc's through FFI with one poll for all (needs --allow-ffi). */
  readonly io: "deno" | "libc";
}

/** Latency summary, ms. */
export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly samples: number;
}

/** What a run measured. */
export interface LoadReport {
  readonly mode: LoadOptions["mode"];
  readonly target: string;
  readonly clients: number;
  readonly payloadBytes: number;
  readonly suite: string | null;
  readonly provider: string | null;
  /** The measured window, s (warm-up excluded). */
  readonly durationS: number;
  readonly handshakes: number;
  readonly handshakesPerSec: number;
  readonly messages: number;
  readonly messagesPerSec: number;
  readonly latencyMs: LatencySummary;
  /** With `--slow-ms`: how the slow samples group in time. */
  readonly slow?: SlowSummary;
  readonly errors: Record<ErrorKind, number>;
  readonly errorsTotal: number;
  /** Why connections failed or closed, with counts (the engine's close reasons). */
  readonly reasons: Record<string, number>;
}

type ErrorKind = "handshake_failed" | "timeout" | "closed" | "socket";

/**
 * The load generator's own crypto: the node provider with our table-based
 * AES-GCM (tools/gcm.ts), which costs a quarter of node:crypto's per
 * 64-byte record. That AES is not constant-time, which a server must care
 * about and a load generator need not: the less CPU the clients take on a
 * shared machine, the more of it measures the server.
 */
function loadProvider(): CryptoProvider {
  return {
    ...nodeProvider,
    name: "load",
    aead: (name, key) => name === "aes-gcm" ? aesGcm(key) : nodeProvider.aead(name, key),
  };
}

/** Defaults of {@link LoadOptions}: the Qt example's credentials, AES-128-GCM. */
export const LOAD_DEFAULTS: Omit<LoadOptions, "port"> = {
  host: "127.0.0.1",
  mode: "echo",
  clients: 50,
  size: 64,
  durationMs: 10_000,
  warmupMs: 1_000,
  suite: "TLS_PSK_WITH_AES_128_GCM_SHA256",
  identity: "Qt DTLS example client",
  psk: new Uint8Array([0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]),
  provider: loadProvider(),
  timeoutMs: 2_000,
  sources: 1,
  io: "deno",
};

/**
 * How the slow samples (over a threshold) group in time: a pause of either
 * process delays every request in flight at once, so its samples come as
 * one burst; spread-out slow samples point elsewhere.
 */
export interface SlowSummary {
  readonly thresholdMs: number;
  readonly samples: number;
  /** Share of all samples, %. */
  readonly percent: number;
  /** Runs of slow samples sent less than 2 ms apart. */
  readonly bursts: number;
  readonly largestBurst: number;
  /** Share of all samples in bursts no larger than the number of clients (one round), %. */
  readonly inOneRoundBurstsPercent: number;
}

/** Growable list of latency samples, ms, each with when its request was sent. */
class Samples {
  #data = new Float64Array(1 << 16);
  #sentAt = new Float64Array(1 << 16);
  #n = 0;

  add(ms: number, sentAt: number): void {
    if (this.#n === this.#data.length) {
      this.#data = grow(this.#data);
      this.#sentAt = grow(this.#sentAt);
    }
    this.#sentAt[this.#n] = sentAt;
    this.#data[this.#n++] = ms;
  }

  slow(thresholdMs: number, clients: number): SlowSummary {
    const slow: number[] = [];
    for (let i = 0; i < this.#n; i++) {
      if (this.#data[i]! > thresholdMs) slow.push(this.#sentAt[i]!);
    }
    slow.sort((a, b) => a - b);
    let bursts = 0, largest = 0, inRoundBursts = 0;
    for (let i = 0; i < slow.length;) {
      let j = i + 1;
      while (j < slow.length && slow[j]! - slow[j - 1]! < 2) j++;
      bursts++;
      largest = Math.max(largest, j - i);
      if (j - i <= clients) inRoundBursts += j - i;
      i = j;
    }
    const percent = (k: number) => this.#n === 0 ? 0 : Math.round(10_000 * k / this.#n) / 100;
    return {
      thresholdMs,
      samples: slow.length,
      percent: percent(slow.length),
      bursts,
      largestBurst: largest,
      inOneRoundBurstsPercent: percent(inRoundBursts),
    };
  }

  summary(): LatencySummary {
    const sorted = this.#data.slice(0, this.#n).sort();
    const at = (q: number) =>
      sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return {
      p50: round(at(0.5)),
      p90: round(at(0.9)),
      p99: round(at(0.99)),
      p999: round(at(0.999)),
      max: round(sorted.length === 0 ? 0 : sorted[sorted.length - 1]!),
      samples: sorted.length,
    };
  }
}

function grow(a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> {
  const bigger = new Float64Array(a.length * 2);
  bigger.set(a);
  return bigger;
}

/** One client's socket and engine, as the watchdog sees them. */
interface Client {
  socket: ClientSocket;
  connection: Connection | undefined;
  /** When the outstanding request was sent (performance.now()), or -1. */
  sentAt: number;
  /** Resends the outstanding request (echo and udp modes). */
  resend: (() => void) | undefined;
  /** Application-data records received since the last check. */
  data: number;
  /** Why the connection closed, if it did. */
  closed: string | undefined;
  closedWithError: boolean;
}

/** The state shared by every client of a run. */
class Run {
  readonly options: LoadOptions;
  readonly server: Deno.NetAddr;
  readonly latencies = new Samples();
  readonly errors: Record<ErrorKind, number> = {
    handshake_failed: 0,
    timeout: 0,
    closed: 0,
    socket: 0,
  };
  readonly reasons: Record<string, number> = {};
  readonly clients = new Set<Client>();
  readonly sockets: ClientSockets;
  readonly config;
  handshakes = 0;
  messages = 0;
  measureFrom = 0;
  measureTo = Infinity;
  stopped = false;
  /** One handler for every failed send, rather than a closure per datagram. */
  readonly onSendError = (): void => this.error("socket");

  constructor(options: LoadOptions) {
    this.options = options;
    this.server = { transport: "udp", hostname: options.host, port: options.port };
    this.sockets = options.io === "libc" ? libcClientSockets() : denoClientSockets();
    this.config = connectionConfig(
      options.provider,
      (n) => crypto.getRandomValues(new Uint8Array(n)),
      { handshakeTimeoutMs: Math.max(options.timeoutMs, 1_000) },
    );
  }

  /** True while `t` (performance.now()) is inside the measured window. */
  measuring(t: number): boolean {
    return t >= this.measureFrom && t < this.measureTo;
  }

  /** Counts an answer to `client`'s outstanding request, if inside the window; returns now. */
  answered(client: Client): number {
    const t = performance.now();
    if (this.measuring(t)) {
      this.messages++;
      this.latencies.add(t - client.sentAt, client.sentAt);
    }
    return t;
  }

  error(kind: ErrorKind, client?: Client): void {
    if (!this.measuring(performance.now())) return;
    this.errors[kind]++;
    const reason = client?.closed ?? (client ? "no answer before the end" : undefined);
    if (reason !== undefined) this.reasons[reason] = (this.reasons[reason] ?? 0) + 1;
  }

  open(index: number): Client {
    const local = this.options.host.includes(":")
      ? "::1"
      : `127.0.0.${1 + (index % Math.max(1, this.options.sources))}`;
    const socket = this.sockets.open(local);
    const client: Client = {
      socket,
      connection: undefined,
      sentAt: -1,
      resend: undefined,
      data: 0,
      closed: undefined,
      closedWithError: false,
    };
    this.clients.add(client);
    return client;
  }

  close(client: Client): void {
    this.clients.delete(client);
    try {
      client.socket.close();
    } catch {
      // already closed by stop()
    }
  }

  /** Drains a client's engine: events into counters, datagrams onto the socket. */
  pump(client: Client): Promise<unknown> | undefined {
    const connection = client.connection;
    if (connection === undefined) return undefined;
    for (let e = connection.pollEvent(); e; e = connection.pollEvent()) {
      if (e.type === "data") client.data++;
      else if (e.type === "closed") {
        client.closed = e.reason;
        client.closedWithError = e.error;
      }
    }
    let last: Promise<unknown> | undefined;
    for (let d = connection.pollTransmit(); d; d = connection.pollTransmit()) {
      last = client.socket.send(d, this.server).catch(this.onSendError);
    }
    return last;
  }

  /** The one timer of the run: retransmissions and request timeouts of every client. */
  watchdog(): void {
    const now = Date.now();
    const t = performance.now();
    for (const client of this.clients) {
      const connection = client.connection;
      if (connection !== undefined) {
        const due = connection.pollTimeout();
        if (due !== undefined && due <= now) {
          connection.handleTimeout(now);
          this.pump(client);
        }
      }
      if (client.sentAt >= 0 && t - client.sentAt > this.options.timeoutMs && client.resend) {
        this.error("timeout");
        client.sentAt = t;
        client.resend();
      }
    }
  }

  stop(): void {
    this.stopped = true;
    for (const client of this.clients) {
      try {
        client.socket.close();
      } catch {
        // already closed
      }
    }
    this.clients.clear();
  }
}

/** Receives one datagram into `buffer`; undefined once the socket is closed. */
async function receive(
  socket: ClientSocket,
  buffer: Uint8Array,
): Promise<Uint8Array | undefined> {
  try {
    return (await socket.receive(buffer))[0];
  } catch {
    return undefined;
  }
}

/** Runs a handshake on `client`; true once established. */
async function handshake(run: Run, client: Client, buffer: Uint8Array): Promise<boolean> {
  const o = run.options;
  client.connection = createClientConnection(run.config, {
    identity: new TextEncoder().encode(o.identity),
    psk: o.psk,
    suites: [suiteByName(o.suite)],
    groups: ["x25519", "secp256r1"],
  }, Date.now());
  run.pump(client);
  const connection = client.connection;
  while (!connection.isEstablished) {
    if (connection.isClosed || run.stopped) return false;
    const datagram = await receive(client.socket, buffer);
    if (datagram === undefined) return false;
    connection.handleDatagram(datagram, Date.now());
    run.pump(client);
  }
  return true;
}

async function echoClient(run: Run, index: number): Promise<void> {
  const o = run.options;
  const buffer = new Uint8Array(65_536);
  const payload = new Uint8Array(o.size).fill(0x61);
  while (!run.stopped) {
    const client = run.open(index);
    if (!(await handshake(run, client, buffer))) {
      if (!run.stopped) run.error("handshake_failed", client);
      run.close(client);
      continue;
    }
    const connection = client.connection!;
    client.resend = () => {
      if (!connection.isEstablished) return;
      connection.send(payload);
      run.pump(client);
    };
    if (client.socket.listen !== undefined) {
      await echoByCallback(run, client, connection, payload);
    }
    while (!run.stopped && connection.isEstablished) {
      request(run, client, connection, payload);
      while (client.data === 0 && !connection.isClosed) {
        // Awaited here rather than through receive(): one promise less per datagram.
        let datagram: Uint8Array;
        try {
          datagram = (await client.socket.receive(buffer))[0];
        } catch {
          break;
        }
        connection.handleDatagram(datagram, Date.now());
        run.pump(client);
      }
      if (client.data === 0) break;
      run.answered(client);
    }
    client.sentAt = -1;
    if (!run.stopped && connection.isClosed) run.error("closed", client);
    run.close(client);
  }
}

/** Sends one echo request and starts its clock. */
function request(run: Run, client: Client, connection: Connection, payload: Uint8Array): void {
  client.data = 0;
  client.sentAt = performance.now();
  connection.send(payload);
  run.pump(client);
}

/**
 * The echo loop of {@link echoClient} for a socket that hands datagrams to
 * a callback: no promise per datagram, so more of a shared machine measures
 * the server. Resolves when the connection or the socket closes.
 */
function echoByCallback(
  run: Run,
  client: Client,
  connection: Connection,
  payload: Uint8Array,
): Promise<void> {
  const { promise, resolve } = Promise.withResolvers<void>();
  client.socket.listen!((datagram) => {
    connection.handleDatagram(datagram, Date.now());
    run.pump(client);
    if (client.data > 0) run.answered(client);
    if (run.stopped || !connection.isEstablished) resolve();
    else if (client.data > 0) request(run, client, connection, payload);
  }, resolve);
  request(run, client, connection, payload);
  return promise;
}

async function handshakeClient(run: Run, index: number): Promise<void> {
  const buffer = new Uint8Array(65_536);
  while (!run.stopped) {
    const client = run.open(index);
    const start = performance.now();
    const ok = await handshake(run, client, buffer);
    const t = performance.now();
    if (ok) {
      if (run.measuring(t)) {
        run.handshakes++;
        run.latencies.add(t - start, start);
      }
      client.connection!.close();
      // Let close_notify leave before the socket closes.
      await run.pump(client);
    } else if (!run.stopped) {
      run.error("handshake_failed", client);
    }
    run.close(client);
  }
}

async function udpClient(run: Run, index: number): Promise<void> {
  const o = run.options;
  const buffer = new Uint8Array(65_536);
  const payload = new Uint8Array(o.size).fill(0x61);
  const client = run.open(index);
  const send = () => {
    client.socket.send(payload, run.server).catch(run.onSendError);
  };
  client.resend = send;
  if (client.socket.listen !== undefined) {
    // As echoByCallback: no promise per datagram.
    const { promise, resolve } = Promise.withResolvers<void>();
    client.socket.listen(() => {
      const t = run.answered(client);
      if (run.stopped) return resolve();
      client.sentAt = t;
      send();
    }, resolve);
    client.sentAt = performance.now();
    send();
    await promise;
  }
  while (!run.stopped) {
    client.sentAt = performance.now();
    send();
    try {
      await client.socket.receive(buffer);
    } catch {
      break;
    }
    run.answered(client);
  }
  client.sentAt = -1;
  run.close(client);
}

/** Runs the load and reports what it measured. */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const run = new Run(options);
  const start = performance.now();
  run.measureFrom = start + options.warmupMs;
  run.measureTo = run.measureFrom + options.durationMs;
  const watchdog = setInterval(() => run.watchdog(), 20);
  const body = options.mode === "echo"
    ? echoClient
    : options.mode === "handshake"
    ? handshakeClient
    : udpClient;
  const tasks: Promise<void>[] = [];
  for (let i = 0; i < options.clients; i++) tasks.push(body(run, i));
  await new Promise((resolve) => setTimeout(resolve, options.warmupMs + options.durationMs));
  run.stop();
  clearInterval(watchdog);
  await Promise.allSettled(tasks);
  await run.sockets.close();
  const seconds = options.durationMs / 1000;
  const round = (x: number) => Math.round(x * 10) / 10;
  const errorsTotal = Object.values(run.errors).reduce((a, b) => a + b, 0);
  return {
    mode: options.mode,
    target: `${options.host}:${options.port}`,
    clients: options.clients,
    payloadBytes: options.mode === "handshake" ? 0 : options.size,
    suite: options.mode === "udp" ? null : options.suite,
    provider: options.mode === "udp" ? null : options.provider.name,
    durationS: seconds,
    handshakes: run.handshakes,
    handshakesPerSec: round(run.handshakes / seconds),
    messages: run.messages,
    messagesPerSec: round(run.messages / seconds),
    latencyMs: run.latencies.summary(),
    ...(options.slowMs === undefined
      ? {}
      : { slow: run.latencies.slow(options.slowMs, options.clients) }),
    errors: run.errors,
    errorsTotal,
    reasons: run.reasons,
  };
}

const USAGE = `Usage: deno task load --port N [options]
  --host ADDR        server address (default 127.0.0.1; loopback only)
  --port N           server UDP port (required)
  --mode MODE        echo | handshake | udp (default echo)
  --clients N        concurrent clients, one socket each (default 50)
  --size N           payload bytes per echo (default 64)
  --duration S       measured seconds (default 10)
  --warmup S         seconds run before measuring (default 1)
  --suite NAME       IANA suite name (default TLS_PSK_WITH_AES_128_GCM_SHA256)
  --identity TEXT    PSK identity (default "Qt DTLS example client")
  --psk HEX          PSK (default 1a2b3c4d5e6f)
  --crypto NAME      load | node | noble: the clients' crypto (default load: node's,
                     with our faster, not constant-time, AES-GCM)
  --timeout MS       a request not answered by then is resent and counted (default 2000)
  --sources N        bind clients to 127.0.0.1 … 127.0.0.N in turn (default 1)
  --slow-ms MS       also report how the samples slower than MS group in time
                     (bursts: requests sent less than 2 ms apart)
  --io deno|libc     the clients' sockets: Deno's (default), or Linux libc's with
                     one poll for all clients (needs --allow-ffi)`;

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  Deno.exit(2);
}

function positive(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) {
    fail(`Cannot use --${name} ${value}: expected a number ≥ ${min}`);
  }
  return n;
}

/** Parses the command line into {@link LoadOptions}. */
export function parseLoadArgs(args: string[]): LoadOptions {
  let v;
  try {
    v = parseArgs({
      args,
      strict: true,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        mode: { type: "string" },
        clients: { type: "string" },
        size: { type: "string" },
        duration: { type: "string" },
        warmup: { type: "string" },
        suite: { type: "string" },
        identity: { type: "string" },
        psk: { type: "string" },
        crypto: { type: "string" },
        timeout: { type: "string" },
        sources: { type: "string" },
        "slow-ms": { type: "string" },
        io: { type: "string" },
        help: { type: "boolean" },
      },
    }).values;
  } catch (error) {
    fail(error instanceof Error ? error.message : String(error));
  }
  if (v.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (v.port === undefined) fail("Cannot run: --port is required");
  const mode = v.mode ?? "echo";
  if (mode !== "echo" && mode !== "handshake" && mode !== "udp") {
    fail(`Cannot use --mode ${mode}: expected echo, handshake or udp`);
  }
  const cryptoName = v.crypto ?? "load";
  if (cryptoName !== "load" && cryptoName !== "node" && cryptoName !== "noble") {
    fail(`Cannot use --crypto ${cryptoName}: expected load, node or noble`);
  }
  const io = v.io ?? "deno";
  if (io !== "deno" && io !== "libc") fail(`Cannot use --io ${io}: expected deno or libc`);
  const psk = v.psk ?? "1a2b3c4d5e6f";
  if (!/^([0-9a-fA-F]{2})+$/.test(psk)) fail(`Cannot use --psk: expected hex`);
  const suite = v.suite ?? LOAD_DEFAULTS.suite;
  try {
    suiteByName(suite);
  } catch {
    fail(`Cannot use --suite ${suite}: unknown suite`);
  }
  return {
    host: v.host ?? LOAD_DEFAULTS.host,
    port: positive("port", v.port, 0, 1),
    mode,
    clients: Math.floor(positive("clients", v.clients, LOAD_DEFAULTS.clients)),
    size: Math.floor(positive("size", v.size, LOAD_DEFAULTS.size, 0)),
    durationMs: positive("duration", v.duration, 10, 0.1) * 1000,
    warmupMs: positive("warmup", v.warmup, 1, 0) * 1000,
    suite,
    identity: v.identity ?? LOAD_DEFAULTS.identity,
    psk: Uint8Array.from(psk.match(/../g)!.map((h) => parseInt(h, 16))),
    provider: cryptoName === "node"
      ? nodeProvider
      : cryptoName === "noble"
      ? nobleProvider
      : LOAD_DEFAULTS.provider,
    timeoutMs: positive("timeout", v.timeout, LOAD_DEFAULTS.timeoutMs),
    sources: Math.floor(positive("sources", v.sources, 1)),
    ...(v["slow-ms"] === undefined ? {} : { slowMs: positive("slow-ms", v["slow-ms"], 0, 0) }),
    io,
  };
}

if (import.meta.main) {
  const report = await runLoad(parseLoadArgs(Deno.args));
  console.log(JSON.stringify(report));
}
