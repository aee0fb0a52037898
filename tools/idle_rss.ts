/**
 * `deno task load:idle [count]`: what idle connections cost a real server
 * process, as an operator measures it: the growth of its resident set
 * (VmRSS in /proc/PID/status) from a warmed-up start to `count` (default
 * 10,000) established, idle connections.
 *
 * The server is `main.ts` with the demo key, run as a child process at
 * `--log-level warning` with its limits raised for the run. Each client
 * makes a full handshake on a socket of its own (the server's first choice
 * of suite), sends one message, waits for its answer and closes its socket
 * without close_notify: the server keeps an established connection that
 * then goes quiet. Each client binds its own address and port, distinct
 * for the whole run across 127.1.0.0/16 (so the kernel never gives a later
 * client a port an idle connection still holds), and no more than
 * `--concurrency` sockets are open at once (a process may hold 20,000).
 *
 *     deno task load:idle 100000
 *
 * Needs `ps` (procps). Prints one JSON object.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { connectionConfig, createClientConnection } from "../src/connection/endpoint.ts";
import type { Connection } from "../src/connection/connection.ts";
import { nodeProvider } from "../src/crypto/node.ts";
import { PSK_SUITES } from "../src/record/suites.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    concurrency: { type: "string", default: "200" },
    warmup: { type: "string", default: "2000" },
  },
  allowPositionals: true,
});
const count = Number(positionals[0] ?? Deno.env.get("IDLE_CONNECTIONS") ?? "10000");
/** V8 flags for the server (`IDLE_SERVER_V8_FLAGS`), to see what its heap settings change. */
const v8Flags = Deno.env.get("IDLE_SERVER_V8_FLAGS");
const concurrency = Number(values.concurrency);
const warmup = Number(values.warmup);

const IDENTITY = new TextEncoder().encode("Qt DTLS example client");
const KEY = new Uint8Array([0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]);
const FIRST_PORT = 20_000;
const PORTS_PER_ADDRESS = 40_000;

/** The resident set of process `pid`, bytes, as `ps` reports it (VmRSS). */
function rss(pid: number): number {
  const out = new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)], stdout: "piped" })
    .outputSync();
  const kb = Number(new TextDecoder().decode(out.stdout).trim());
  if (!out.success || !Number.isFinite(kb) || kb === 0) throw new Error(`no RSS for ${pid}`);
  return kb * 1024;
}

/** A UDP port free on loopback now. */
function freePort(): number {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (socket.addr as Deno.NetAddr).port;
  socket.close();
  return port;
}

/** A TCP port free on loopback now (for the server's metrics). */
function freeTcpPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** The server's metrics port, once started. */
let metricsPort = 0;

/** The server's JavaScript heap in use (with its buffers), from its metrics, bytes. */
async function heapUsed(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = /^dtls_heap_used_bytes (\d+)/m.exec(text);
  if (m === null) throw new Error("no dtls_heap_used_bytes");
  return Number(m[1]);
}

/** The server, started on a free port; ready once it answers a ClientHello. */
async function startServer(limit: number): Promise<{ child: Deno.ChildProcess; port: number }> {
  const port = freePort();
  metricsPort = freeTcpPort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...(v8Flags === undefined ? [] : [`--v8-flags=${v8Flags}`]),
      "--unstable-net",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      new URL("../main.ts", import.meta.url).pathname,
      "--port",
      String(port),
      "--log-level",
      "warning",
      "--max-connections",
      String(limit),
      "--max-half-open",
      String(Math.max(1_000, concurrency * 2)),
      "--handshake-rate",
      "0",
      "--idle-timeout",
      "2h",
      "--metrics",
      `127.0.0.1:${metricsPort}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const server: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  for (let i = 0; i < 50; i++) {
    if (await idleClient(FIRST_INDEX_FOR_PROBES + i, server)) return { child, port };
  }
  child.kill("SIGKILL");
  throw new Error("the server did not start");
}

/** Client indices past any run's, for the start-up probes. */
const FIRST_INDEX_FOR_PROBES = 200 * PORTS_PER_ADDRESS;

/** The `index`th client address and port of the run. */
function clientAddress(index: number): { hostname: string; port: number } {
  const address = Math.floor(index / PORTS_PER_ADDRESS);
  return {
    hostname: `127.1.${(address >> 8) & 0xff}.${(address & 0xff) + 1}`,
    port: FIRST_PORT + (index % PORTS_PER_ADDRESS),
  };
}

const config = connectionConfig(nodeProvider, (n) => crypto.getRandomValues(new Uint8Array(n)));

/** One client: handshake, one message and its answer, socket closed. False if it failed. */
async function idleClient(index: number, server: Deno.NetAddr): Promise<boolean> {
  let socket: Deno.DatagramConn;
  try {
    socket = Deno.listenDatagram({ transport: "udp", ...clientAddress(index) });
  } catch {
    return false;
  }
  const connection: Connection = createClientConnection(config, {
    identity: IDENTITY,
    psk: KEY,
    suites: PSK_SUITES,
    groups: ["x25519", "secp256r1"],
  }, Date.now());
  const deadline = Date.now() + 30_000;
  let sent = false;
  let answered = false;
  try {
    while (!answered && !connection.isClosed && Date.now() < deadline) {
      for (let d = connection.pollTransmit(); d; d = connection.pollTransmit()) {
        await socket.send(d, server);
      }
      if (connection.isEstablished && !sent) {
        connection.send(new TextEncoder().encode("idle from now on"));
        sent = true;
        continue;
      }
      const due = connection.pollTimeout() ?? Date.now() + 1_000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const received = await Promise.race([
        socket.receive().then(([d]) => d),
        new Promise<undefined>((r) => {
          timer = setTimeout(() => r(undefined), Math.max(1, due - Date.now()));
        }),
      ]);
      clearTimeout(timer);
      if (received === undefined) connection.handleTimeout(Date.now());
      else connection.handleDatagram(received, Date.now());
      for (let e = connection.pollEvent(); e; e = connection.pollEvent()) {
        if (e.type === "data") answered = true;
      }
    }
  } finally {
    socket.close();
  }
  return answered;
}

/** Runs clients `from` to `to` (exclusive), `concurrency` at a time; the number that failed. */
async function open(from: number, to: number, server: Deno.NetAddr): Promise<number> {
  let next = from;
  let failed = 0;
  const worker = async () => {
    while (next < to) {
      const index = next++;
      if (!(await idleClient(index, server))) failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return failed;
}

/**
 * The server's RSS once it has been quiet a while: V8's memory reducer
 * collects and gives pages back some seconds after allocation stops. The
 * lowest of a few samples over 15 s.
 */
async function settledRss(pid: number): Promise<number> {
  let lowest = Infinity;
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 3_000));
    lowest = Math.min(lowest, rss(pid));
  }
  return lowest;
}

const { child, port } = await startServer(count + warmup + 1_000);
const server: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
try {
  // Warm up: compiled code and the first heap pages are not the connections'.
  let phase = performance.now();
  const warmupFailed = await open(0, warmup, server);
  const warmupSeconds = (performance.now() - phase) / 1000;
  const before = await settledRss(child.pid);
  const heapBefore = await heapUsed();
  phase = performance.now();
  const failed = await open(warmup, warmup + count, server);
  const seconds = (performance.now() - phase) / 1000;
  const after = await settledRss(child.pid);
  const heapAfter = await heapUsed();
  const perConnection = (after - before) / (count - failed);
  console.log(JSON.stringify(
    {
      connections: count - failed,
      failed: failed + warmupFailed,
      rssBeforeMiB: +(before / 2 ** 20).toFixed(1),
      rssAfterMiB: +(after / 2 ** 20).toFixed(1),
      rssBytesPerConnection: Math.round(perConnection),
      heapBytesPerConnection: Math.round((heapAfter - heapBefore) / (count - failed)),
      seconds: Math.round(seconds),
      warmupSeconds: Math.round(warmupSeconds),
      suite: "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 (the server's first choice)",
    },
    null,
    2,
  ));
} finally {
  child.kill("SIGKILL");
  await child.status;
}
