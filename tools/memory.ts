/**
 * Memory per established, idle connection: builds N connections through
 * the server engine (in memory, full PSK handshakes with the cookie
 * exchange), drops every client-side object, collects garbage, and divides
 * the growth of the V8 heap (plus array buffers) by N. The shell's own
 * per-peer entry (the socket address kept for sending) is added in the same
 * way as the shell keeps it. Also times the endpoint's timeout sweep (the
 * shell's one 100 ms tick) over all of them.
 *
 *     deno run --v8-flags=--expose-gc tools/memory.ts [--connections 10000] [--crypto node]
 *
 * Prints one JSON line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  connectionConfig,
  createClientConnection,
  ServerEndpoint,
} from "../src/connection/endpoint.ts";
import { nobleProvider } from "../src/crypto/noble.ts";
import { nodeProvider } from "../src/crypto/node.ts";
import { suiteByName } from "../src/record/suites.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    connections: { type: "string", default: "10000" },
    crypto: { type: "string", default: "node" },
    suite: { type: "string", default: "TLS_PSK_WITH_AES_128_GCM_SHA256" },
  },
});
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error("Cannot measure: run with --v8-flags=--expose-gc");
  Deno.exit(2);
}
const provider = values.crypto === "noble" ? nobleProvider : nodeProvider;
const n = Number(values.connections);
const random = (k: number) => crypto.getRandomValues(new Uint8Array(k));
const key = new Uint8Array([0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]);
const suite = suiteByName(values.suite!);
const config = connectionConfig(provider, random);
const endpoint = new ServerEndpoint({
  connection: config,
  psk: {
    lookupPsk: () => key,
    identityHint: new TextEncoder().encode("Qt DTLS example server"),
    suites: [suite],
    groups: ["x25519"],
    maxIdentityLength: 128,
  },
  maxConnections: n + 1_000,
  maxHalfOpen: n + 1_000,
  idleTimeoutMs: 600_000,
  handshakesPerSecondPerAddress: 0,
});
/** What the shell keeps per peer besides the endpoint's table: its socket address. */
const peers = new Map<string, Deno.NetAddr>();

function connect(i: number): void {
  const hostname = `127.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`;
  const peer = `${hostname}:${10_000 + (i % 50_000)}`;
  const client = createClientConnection(config, {
    identity: new TextEncoder().encode("Qt DTLS example client"),
    psk: key,
    suites: [suite],
    groups: ["x25519"],
  }, 0);
  for (let round = 0; round < 20 && !client.isEstablished; round++) {
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      const out = endpoint.handleDatagram(d, peer, 0);
      if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, 0);
    }
    const server = endpoint.get(peer);
    for (let d = server?.pollTransmit(); d; d = server?.pollTransmit()) client.handleDatagram(d, 0);
  }
  const server = endpoint.get(peer);
  if (!client.isEstablished || server === undefined || !server.isEstablished) {
    throw new Error(`Cannot establish connection ${i}`);
  }
  while (server.pollEvent());
  peers.set(peer, { transport: "udp", hostname, port: 10_000 + (i % 50_000) });
}

function heap(): number {
  gc!();
  gc!();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

// Warm up: code compiled, the cookie secret made, pools allocated.
for (let i = 0; i < 200; i++) connect(1_000_000 + i);
const before = heap();
const rss0 = Deno.memoryUsage().rss;
for (let i = 0; i < n; i++) connect(i);
const after = heap();
const rss1 = Deno.memoryUsage().rss;
// The shell's one timer calls handleTimeouts every 100 ms: its cost with every connection idle.
const ticks = 50;
const t0 = performance.now();
for (let i = 1; i <= ticks; i++) endpoint.handleTimeouts(i * 100);
const tickMs = (performance.now() - t0) / ticks;
console.log(JSON.stringify({
  connections: endpoint.size - 200,
  suite: suite.name,
  provider: provider.name,
  bytesPerConnection: Math.round((after - before) / n),
  rssBytesPerConnection: Math.round((rss1 - rss0) / n),
  timeoutTickMs: Math.round(tickMs * 1000) / 1000,
}));
