/**
 * Admission control: every limit of the endpoint refuses what is over it,
 * counts the refusal, keeps nothing for it, and lets the rest through; the
 * server shell logs refusals once per reason per interval.
 */
import assert from "node:assert/strict";
import { connectionConfig, ENDPOINT_DEFAULTS } from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { seededRandom } from "../helpers/random.ts";
import { sourceAddress, SourceRateLimiter } from "../../src/connection/admission.ts";
import { HandshakeType } from "../../src/handshake/messages.ts";
import { BUFFER_OVERHEAD } from "../../src/memory/budget.ts";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import { MemoryLogger } from "../../src/server/log.ts";
import { ThrottledLog } from "../../src/server/throttled_log.ts";
import { converse, drain, testClient, testEndpoint, watchDrops } from "../helpers/drive.ts";
import { HostilePeer } from "../helpers/hostile_peer.ts";
import { KEY } from "../helpers/sim.ts";

const T0 = 1_000_000;

/**
 * A ClientKeyExchange fragment (epoch 0) carrying the first `sent` bytes of
 * a message declared `length` bytes long (by default one more, so that it
 * stays incomplete), from a half-open client.
 */
function bigFragment(seq: number, sent: number, messageSeq = 2, length = sent + 1): Uint8Array {
  const out = new Uint8Array(13 + 12 + sent);
  const v = new DataView(out.buffer);
  out[0] = 22;
  v.setUint16(1, 0xfefd);
  v.setUint16(3, 0);
  v.setUint32(7, seq);
  v.setUint16(11, 12 + sent);
  out[13] = HandshakeType.ClientKeyExchange;
  out[14] = length >> 16;
  v.setUint16(15, length & 0xffff);
  v.setUint16(17, messageSeq);
  // fragment_offset 0, fragment_length `sent`
  out[22] = sent >> 16;
  v.setUint16(23, sent & 0xffff);
  return out;
}

/** What holding `bytes` received in one piece costs. */
const held = (bytes: number) => bytes + BUFFER_OVERHEAD;

Deno.test("admission: maxConnections refuses the next handshake after its cookie, keeping nothing", () => {
  const endpoint = testEndpoint({ maxConnections: 3 });
  for (let i = 0; i < 3; i++) {
    const c = testClient(`c${i}`, T0);
    converse(endpoint, c, `10.0.0.${i}:1000`, T0);
    assert.equal(c.isEstablished, true);
  }
  const late = testClient("late", T0);
  const outcomes = converse(endpoint, late, "10.0.0.9:1000", T0);
  assert.deepEqual(outcomes.map((o) => o.kind), ["hello_verify_request", "dropped"]);
  assert.equal(outcomes[1]!.kind === "dropped" && outcomes[1]!.reason, "capacity");
  assert.equal(endpoint.size, 3);
  assert.equal(endpoint.refused.capacity, 1);
});

Deno.test("admission: maxHalfOpen refuses new handshakes until one in progress completes", () => {
  const endpoint = testEndpoint({ maxHalfOpen: 2 });
  // Two clients stop after their ClientHello with cookie: half-open.
  const stalled = [0, 1].map((i) => {
    const c = testClient(`stall${i}`, T0);
    converse(endpoint, c, `10.0.1.${i}:1000`, T0, (_d, index) => index < 2);
    return c;
  });
  assert.equal(endpoint.halfOpen, 2);
  const third = testClient("third", T0);
  const refused = converse(endpoint, third, "10.0.1.9:1000", T0);
  assert.equal(refused.at(-1)?.kind, "dropped");
  assert.equal(endpoint.refused.half_open, 1);
  assert.equal(endpoint.size, 2);
  // One of them finishes (its flight 5 arrives after its retransmission timer).
  stalled[0]!.handleTimeout(T0 + 1_000);
  converse(endpoint, stalled[0]!, "10.0.1.0:1000", T0 + 1_000);
  assert.equal(stalled[0]!.isEstablished, true);
  assert.equal(endpoint.halfOpen, 1);
  // The third client's retransmission is now admitted.
  third.handleTimeout(T0 + 1_000);
  converse(endpoint, third, "10.0.1.9:1000", T0 + 1_000);
  assert.equal(third.isEstablished, true);
});

Deno.test("admission: a half-open handshake past its deadline frees its slot and its buffers", () => {
  const endpoint = testEndpoint({ maxHalfOpen: 1 });
  const c = testClient("deadline", T0);
  converse(endpoint, c, "10.0.2.1:1000", T0, (_d, index) => index < 2);
  endpoint.handleDatagram(bigFragment(30, 1000), "10.0.2.1:1000", T0);
  assert.equal(endpoint.halfOpen, 1);
  assert.equal(endpoint.reassemblyBytes, held(1000));
  endpoint.handleTimeouts(T0 + 30_000);
  assert.equal(endpoint.halfOpen, 0);
  assert.equal(endpoint.reassemblyBytes, 0);
  endpoint.remove("10.0.2.1:1000");
  assert.equal(endpoint.size, 0);
});

Deno.test("admission: a client doing 20 handshakes a second from one address is never refused by default", () => {
  const endpoint = testEndpoint();
  const seconds = 10;
  for (let i = 0; i < 20 * seconds; i++) {
    const now = T0 + i * 50;
    const c = testClient(`steady${i}`, now);
    converse(endpoint, c, `127.0.0.1:${20_000 + i}`, now);
    assert.equal(c.isEstablished, true, `handshake ${i}`);
  }
  assert.deepEqual(endpoint.refused, { capacity: 0, half_open: 0, rate: 0 });
});

Deno.test("admission: a burst from one address past the per-address rate is refused; others are not", () => {
  const endpoint = testEndpoint({ handshakeRate: 10, handshakeBurst: 5 });
  const results = Array.from({ length: 8 }, (_, i) => {
    const c = testClient(`burst${i}`, T0);
    converse(endpoint, c, `10.0.3.1:${2000 + i}`, T0);
    return c.isEstablished;
  });
  assert.deepEqual(results, [true, true, true, true, true, false, false, false]);
  assert.equal(endpoint.refused.rate, 3);
  // Another address is not affected.
  const other = testClient("other", T0);
  converse(endpoint, other, "10.0.3.2:2000", T0);
  assert.equal(other.isEstablished, true);
  // 100 ms later one more token has accrued for the first address.
  const later = testClient("later", T0 + 100);
  converse(endpoint, later, "10.0.3.1:3000", T0 + 100);
  assert.equal(later.isEstablished, true);
});

Deno.test("admission: the per-address rate table stays bounded under many sources", () => {
  const limiter = new SourceRateLimiter({ ratePerSecond: 1, burst: 2, maxSources: 64 });
  for (let i = 0; i < 10_000; i++) {
    assert.equal(limiter.tryTake(`10.${i >> 8}.${i & 0xff}.1`, T0 + i), true);
    assert.ok(limiter.size <= 64);
  }
  // A source evicted and back is treated as new: at worst it gets a fresh burst.
  assert.equal(limiter.tryTake("192.0.2.1", T0), true);
  assert.equal(limiter.tryTake("192.0.2.1", T0), true);
  assert.equal(limiter.tryTake("192.0.2.1", T0), false);
  assert.equal(sourceAddress("127.0.0.1:4433"), "127.0.0.1");
  // IPv6 counts by /64: one host commonly holds the whole network.
  assert.equal(sourceAddress("[::1]:4433"), "0:0:0:0::/64");
  assert.equal(sourceAddress("[2001:db8:1:2:aaaa::1]:1"), "2001:db8:1:2::/64");
  assert.equal(sourceAddress("[2001:db8:1:2:bbbb::9]:2"), "2001:db8:1:2::/64");
  assert.notEqual(sourceAddress("[2001:db8:1:3::1]:1"), "2001:db8:1:2::/64");
  assert.equal(sourceAddress("[::ffff:10.1.2.3]:7"), "10.1.2.3");
});

Deno.test("admission: reassembly per handshake is bounded (handshake_failure past it)", () => {
  const endpoint = testEndpoint({
    connection: connectionConfig(nobleProvider, seededRandom("perconn/server"), {
      maxReassemblyPerHandshake: 3 * held(1000),
    }),
  });
  const c = testClient("perconn", T0);
  const peer = "10.0.4.1:1000";
  converse(endpoint, c, peer, T0, (_d, index) => index < 2);
  const server = endpoint.get(peer)!;
  // Messages 2..4 are each 1,000 bytes: 3,000 fit, a fourth does not.
  for (let i = 0; i < 3; i++) endpoint.handleDatagram(bigFragment(30 + i, 1000, 2 + i), peer, T0);
  assert.equal(server.isClosed, false);
  assert.equal(endpoint.reassemblyBytes, 3 * held(1000));
  endpoint.handleDatagram(bigFragment(40, 1000, 5), peer, T0);
  assert.equal(server.isClosed, true);
  const alerts = [];
  for (let e = server.pollEvent(); e; e = server.pollEvent()) {
    if (e.type === "alert") alerts.push(e.description);
  }
  assert.deepEqual(alerts, ["handshake_failure"]);
  assert.equal(endpoint.reassemblyBytes, 0);
});

Deno.test("admission: reassembly in total is bounded; over it fragments are dropped, not fatal", () => {
  const endpoint = testEndpoint({ maxReassemblyTotal: 10_000 });
  const peers = Array.from({ length: 4 }, (_, i) => `10.0.5.${i}:1000`);
  for (const [i, peer] of peers.entries()) {
    converse(endpoint, testClient(`total${i}`, T0), peer, T0, (_d, index) => index < 2);
  }
  for (const peer of peers.slice(0, 3)) endpoint.handleDatagram(bigFragment(30, 3000), peer, T0);
  assert.equal(endpoint.reassemblyBytes, 3 * held(3000));
  const last = endpoint.get(peers[3]!)!;
  drain(last);
  const drops = watchDrops(last);
  endpoint.handleDatagram(bigFragment(30, 3000), peers[3]!, T0);
  assert.equal(endpoint.reassemblyBytes, 3 * held(3000));
  assert.equal(last.isClosed, false, "not the peer's fault: dropped, not failed");
  drain(last);
  assert.equal(drops.buffer_full, 1);
  // Once another handshake is gone, the retransmitted fragment fits.
  endpoint.get(peers[0]!)!.close();
  endpoint.remove(peers[0]!);
  endpoint.handleDatagram(bigFragment(31, 3000), peers[3]!, T0);
  assert.equal(endpoint.reassemblyBytes, 3 * held(3000));
});

Deno.test("admission: declared lengths cost nothing; one address is held to its share and others go on (finding 2)", () => {
  // The reported attack: ~140 half-open handshakes from one address, each
  // declaring 16 KiB messages in one-byte fragments, filled the 8 MiB total
  // and every other client's ClientKeyExchange was refused as busy.
  const endpoint = testEndpoint();
  const attacker = (i: number) => `10.0.6.1:${2000 + i}`;
  // Within the default rate limit: a burst of 100, then 50 a second.
  const at = (i: number) => T0 + (i < 100 ? 0 : 1_000);
  for (let i = 0; i < 140; i++) {
    converse(endpoint, testClient(`share${i}`, at(i)), attacker(i), at(i), (_d, n) => n < 2);
    for (let m = 0; m < 4; m++) {
      endpoint.handleDatagram(bigFragment(30 + m, 1, 2 + m, 16_384), attacker(i), at(i));
    }
  }
  // Each handshake holds what it sent: 4 bytes and their overhead, not 64 KiB.
  assert.equal(endpoint.halfOpen, 140);
  assert.equal(endpoint.reassemblyBytesOf(attacker(0)), 140 * 4 * held(1));
  // Sending the bytes for real stops at the address's share.
  for (let i = 0; i < 140; i++) {
    for (let m = 0; m < 4; m++) {
      endpoint.handleDatagram(bigFragment(40 + m, 3_000, 2 + m, 16_384), attacker(i), T0 + 1_000);
    }
  }
  // 140 x 12 KB would be 1.7 MB: the address is held to its share.
  const share = ENDPOINT_DEFAULTS.maxReassemblyPerSource;
  assert.ok(endpoint.reassemblyBytesOf(attacker(0)) <= share);
  assert.ok(endpoint.reassemblyBytesOf(attacker(0)) > share - held(3_000));
  // Another address's handshake is served as if nothing had happened.
  const bystander = testClient("bystander", T0 + 1_000);
  converse(endpoint, bystander, "10.0.7.1:1000", T0 + 1_000);
  assert.equal(bystander.isEstablished, true);
});

Deno.test("admission: ThrottledLog logs once per reason per interval, then a count", () => {
  const log = new MemoryLogger();
  const throttled = new ThrottledLog(log, 10_000);
  for (let i = 0; i < 1000; i++) throttled.note(T0 + i, "rate", "warning", "refused", `#${i}`);
  throttled.note(T0, "capacity", "warning", "refused", "cap");
  assert.deepEqual(log.entries.map((e) => e.msg), ["#0", "cap"]);
  throttled.flush(T0 + 5_000);
  assert.equal(log.entries.length, 2, "nothing before the interval is over");
  throttled.flush(T0 + 10_000);
  assert.deepEqual(log.entries.slice(2).map((e) => [e.reason, e.suppressed]), [["rate", 999]]);
  assert.equal(throttled.counts.get("rate"), 1000);
});

Deno.test("admission: the server refuses over maxConnections and logs it once per interval", async () => {
  const log = new MemoryLogger();
  let now = Date.now();
  const server = new DtlsServer({
    port: 0,
    logger: log,
    maxConnections: 1,
    clock: () => now,
    refusalLogIntervalMs: 60_000,
  });
  const { port } = server.listen();
  const first = new DtlsClient({ hostname: "127.0.0.1", port, identity: "first", psk: KEY });
  const peers = Array.from({ length: 5 }, () => HostilePeer.open(port));
  try {
    await first.connect(5_000);
    for (const p of peers) p.connect();
    await peers[0]!.until(() => server.refused.capacity >= 5, "five refusals");
    const refusals = () => log.entries.filter((e) => e.event === "handshake_refused");
    assert.equal(refusals().length, 1);
    assert.equal(refusals()[0]!.reason, "capacity");
    assert.equal(server.connectionCount, 1);
    // After the interval, one summary line counts the rest (the clock jumps
    // here, so a new refusal may come in the same instant and be logged too).
    now += 60_000;
    const summary = () => refusals().find((e) => e.suppressed !== undefined);
    await peers[0]!.until(() => summary() !== undefined, "summary");
    assert.equal(refusals().indexOf(summary()!), 1, "the summary follows the first line");
    assert.ok(Number(summary()!.suppressed) >= 4);
  } finally {
    for (const p of peers) await p.close();
    await first.close();
    await server.close();
  }
});

Deno.test("admission: a ClientHello flood on a live server logs a bounded number of lines", async () => {
  const log = new MemoryLogger();
  const server = new DtlsServer({ port: 0, logger: log, refusalLogIntervalMs: 60_000 });
  const { port } = server.listen();
  const flooder = HostilePeer.open(port);
  const legit = new DtlsClient({ hostname: "127.0.0.1", port, identity: "legit", psk: KEY });
  try {
    const hello = testClient("flood", 0).pollTransmit()!;
    const sending = (async () => {
      for (let i = 0; i < 1_000; i++) await flooder.sendRaw(hello);
    })();
    await legit.connect(5_000);
    legit.send("during the flood");
    await legit.receive(5_000);
    await sending;
    // Loopback UDP may drop some of a burst; well over the log budget arrive.
    await flooder.until(() => flooder.received.length > 200, "HelloVerifyRequests");
    assert.ok(flooder.received.length <= 1_000, "at most one answer per ClientHello");
    assert.equal(server.connectionCount, 1);
    assert.equal(server.halfOpenCount, 0);
    const cookieLines = log.entries.filter((e) => e.event === "cookie_sent").length;
    assert.ok(cookieLines <= 101, `${cookieLines} cookie_sent lines`);
    assert.ok(flooder.received.every((d) => d.length <= hello.length), "no amplification");
  } finally {
    await flooder.close();
    await legit.close();
    await server.close();
  }
});
