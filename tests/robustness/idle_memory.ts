/**
 * `deno task load:idle`: holds IDLE_CONNECTIONS (default 10,000) established,
 * idle connections in one ServerEndpoint and reports the server-side memory
 * per connection (V8 heap plus ArrayBuffer memory, after a full GC, before
 * and after). Each connection carries one message and then goes quiet; the
 * clients' halves are discarded as soon as that is done, so only what the
 * server keeps is counted, with the route and peer key the server shell keeps
 * per peer.
 * Also times the endpoint's timeout handling with all of them idle (the one
 * timer visits only connections with something due). Then checks that all are still held just before the idle
 * timeout and all evicted after it.
 *
 *     deno run --v8-flags=--expose-gc tests/robustness/idle_memory.ts [count]
 */
import type { Connection } from "../../src/connection/connection.ts";
import { converse, deliver, testClient, testEndpoint } from "../helpers/drive.ts";
import { PSK_SUITES } from "../../src/record/suites.ts";
import { connectionConfig } from "../../src/connection/endpoint.ts";
import { PeerKeys, type PeerRoute, peerRoute } from "../../src/server/dtls_server.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { seededRandom } from "../helpers/random.ts";

const count = Number(Deno.args[0] ?? Deno.env.get("IDLE_CONNECTIONS") ?? "10000");
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("Run with --v8-flags=--expose-gc");

/** V8 heap plus the ArrayBuffer memory outside it (buffers a connection holds). */
function heap(): number {
  gc!();
  gc!();
  const { heapUsed, external } = Deno.memoryUsage();
  return heapUsed + external;
}

/** One 64-byte message from `client` through the endpoint, its data event drained. */
function message(client: Connection, peer: string, now: number): void {
  if (deliver(endpoint, client, peer, new Uint8Array(64).fill(0x61), now) !== undefined) {
    dataEvents++;
  }
}
let dataEvents = 0;

const IDLE_MS = 600_000;
// The server's default provider, so that what is counted is what a server holds.
const endpoint = testEndpoint({
  connection: connectionConfig(nodeProvider, seededRandom("idle")),
  idleTimeoutMs: IDLE_MS,
  maxConnections: count,
  handshakeRate: 0,
  cidLength: Number(Deno.env.get("IDLE_CID_LENGTH") ?? "6"),
}, "idle");
const T0 = 1_000_000;

// Warm up code paths so compiled code is not counted.
for (let i = 0; i < 50; i++) {
  const peer = `10.255.0.${i}:9`;
  converse(endpoint, testClient(`warm${i}`, T0, { suites: PSK_SUITES }), peer, T0);
  endpoint.get(peer)!.close();
  endpoint.remove(peer);
}
/** The server shell's per-peer entry besides the endpoint's table, as it makes it. */
const routes = new Map<string, PeerRoute>();
const peerKeys = new PeerKeys();
const logSendError = (peer: string) => (error: unknown) => console.error(peer, error);
const before = heap();
const rssBefore = Deno.memoryUsage().rss;
const started = performance.now();
for (let i = 0; i < count; i++) {
  const peer = `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}:${1024 + (i % 60000)}`;
  const client = testClient(`idle${i}`, T0, { suites: PSK_SUITES });
  converse(endpoint, client, peer, T0);
  if (!client.isEstablished) throw new Error(`handshake ${i} failed`);
  // Each carries a message, as a server's connections do, before going quiet.
  message(client, peer, T0);
  const [hostname, port] = peer.split(":") as [string, string];
  const addr: Deno.NetAddr = { transport: "udp", hostname, port: Number(port) };
  routes.set(peer, peerRoute(addr, logSendError(peer)));
  peerKeys.of(addr);
}
const elapsed = performance.now() - started;
const withData = heap();
// A second later every quiet connection's receive buffer is let go.
endpoint.handleTimeouts(T0 + 1_500);
const after = heap();
const rssAfter = Deno.memoryUsage().rss;

// handleTimeouts with every connection idle and nothing due: what a timer wake-up costs.
const ticks = 50;
const tickStart = performance.now();
for (let i = 1; i <= ticks; i++) endpoint.handleTimeouts(T0 + 1_500 + i * 100);
const tickMs = (performance.now() - tickStart) / ticks;

let established = 0;
for (const { connection: c } of endpoint.entries()) if (c.isEstablished) established++;
endpoint.handleTimeouts(T0 + IDLE_MS - 1);
let held = 0;
for (const { connection: c } of endpoint.entries()) if (c.isEstablished) held++;
endpoint.handleTimeouts(T0 + IDLE_MS);
let evicted = 0;
for (const { peer, connection: c } of [...endpoint.entries()]) {
  if (c.isClosed) {
    evicted++;
    endpoint.remove(peer, c);
  }
}

const perConnection = (after - before) / count;
console.log(JSON.stringify(
  {
    connections: count,
    // Read here, after the measurement, so the routes are alive for it.
    routes: routes.size,
    peerKey: peerKeys.of({ transport: "udp", hostname: "10.0.0.0", port: 1024 }),
    established,
    heldJustBeforeIdleTimeout: held,
    evictedAtIdleTimeout: evicted,
    bytesPerConnection: Math.round(perConnection),
    bytesPerConnectionJustAfterData: Math.round((withData - before) / count),
    heapMiB: +((after - before) / 2 ** 20).toFixed(1),
    rssMiB: +((rssAfter - rssBefore) / 2 ** 20).toFixed(1),
    handshakesPerSecond: Math.round(count / (elapsed / 1000)),
    timeoutTickMs: Math.round(tickMs * 1000) / 1000,
    suite: "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 (the server's first choice)",
  },
  null,
  2,
));
if (
  established !== count || held !== count || evicted !== count || endpoint.size !== 0 ||
  dataEvents !== count
) {
  throw new Error("not every connection carried its message, was held and then evicted");
}
