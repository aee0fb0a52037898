/**
 * Faults: loss, duplication, reordering and delay between client and server.
 * At 10 %, 30 % and 50 % loss every handshake completes or fails within its
 * deadline, no half-open state is left behind, and application datagrams
 * that arrive are delivered once each, in whatever order, never duplicated.
 *
 * Two networks: the virtual-time simulator (many seeds, exact deadlines) and
 * a real UDP proxy on loopback between real clients and the real server.
 */
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { CONNECTION_DEFAULTS } from "../../src/connection/endpoint.ts";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import { MemoryLogger } from "../../src/server/log.ts";
import { LossyProxy } from "../helpers/lossy_proxy.ts";
import { type Fate, Pair } from "../helpers/sim.ts";
import { KEY } from "../helpers/sim.ts";

const LOSSES = [0.1, 0.3, 0.5];
const SEEDS = 20;
const DEADLINE = CONNECTION_DEFAULTS.handshakeTimeoutMs;

/** A seeded network: each datagram lost with `loss`, else duplicated or held back 10 % each. */
function lossy(loss: number, seed: number) {
  let state = (seed * 2654435761) >>> 0 || 1;
  const random = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
  return (): Fate => {
    if (random() < loss) return "drop";
    const r = random();
    return r < 0.1 ? "duplicate" : r < 0.2 ? "delay" : "deliver";
  };
}

for (const loss of LOSSES) {
  Deno.test(`faults (simulated): at ${loss * 100}% loss every handshake settles within its deadline and leaves no half-open state`, () => {
    let completed = 0;
    for (let seed = 0; seed < SEEDS; seed++) {
      const pair = new Pair({ seed: `loss${loss}/${seed}`, script: lossy(loss, seed + 1) });
      const start = pair.now;
      pair.run(DEADLINE + 10_000);
      assert.ok(pair.client.isEstablished || pair.client.isClosed, `seed ${seed} settled`);
      assert.ok(pair.now - start <= DEADLINE, `seed ${seed} settled within the deadline`);
      if (pair.client.isEstablished) completed++;
      // Past every deadline nothing is left half-open on the server (its own
      // deadline runs from its cookie check, at most one deadline after start).
      pair.now = start + 2 * DEADLINE;
      pair.endpoint.handleTimeouts(pair.now);
      assert.equal(pair.endpoint.halfOpen, 0, `seed ${seed}: no half-open state`);
    }
    if (loss <= 0.3) assert.ok(completed >= SEEDS * 0.8, `${completed}/${SEEDS} completed`);
    assert.ok(completed > 0, `${completed}/${SEEDS} completed`);
  });

  Deno.test(`faults (simulated): at ${loss * 100}% loss application data is delivered at most once, in any order`, () => {
    let delivered = 0;
    for (let seed = 0; seed < SEEDS; seed++) {
      // Handshake on a clean network, then data through the lossy one.
      let impaired = false;
      const network = lossy(loss, seed + 100);
      const pair = new Pair({
        seed: `data${loss}/${seed}`,
        script: () => (impaired ? network() : "deliver"),
      });
      pair.run();
      assert.equal(pair.client.isEstablished, true);
      impaired = true;
      const sent = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const message = `m${i}`;
        sent.add(message);
        pair.client.send(new TextEncoder().encode(message));
        if (i % 3 === 2) pair.pump();
      }
      pair.pump();
      const got = pair.serverEvents.flatMap((e) =>
        e.type === "data" ? [new TextDecoder().decode(e.data)] : []
      );
      assert.equal(new Set(got).size, got.length, `seed ${seed}: no duplicates`);
      assert.ok(got.every((m) => sent.has(m)), `seed ${seed}: only what was sent`);
      delivered += got.length;
    }
    assert.ok(delivered > 0);
  });
}

Deno.test("faults (real sockets): clients through a lossy proxy at 10/30/50% loss settle, deliver once, leave nothing half-open", async () => {
  const received = new Map<string, string[]>();
  const logs = new MemoryLogger();
  const server = new DtlsServer({
    port: 0,
    logger: logs,
    handshakeTimeoutMs: 4_000,
    onDatagram: (data, peer) => {
      const key = `${peer.address}:${peer.port}`;
      const message = new TextDecoder().decode(data);
      received.set(key, [...(received.get(key) ?? []), message]);
      return message === "final" ? "final-ack" : undefined;
    },
  });
  const { port } = server.listen();
  const proxies = LOSSES.map((loss, i) =>
    new LossyProxy(port, { loss, duplicate: 0.1, delay: 0.1, maxDelayMs: 30 }, i + 7)
  );
  const clients: DtlsClient[] = [];
  try {
    const perLevel = 6;
    const attempts = proxies.flatMap((proxy) =>
      Array.from({ length: perLevel }, (_, i) => {
        const client = new DtlsClient({
          hostname: "127.0.0.1",
          port: proxy.port,
          identity: `lossy ${i}`,
          psk: KEY,
          retransmit: { initialMs: 100, maxMs: 800, maxRetransmits: 30 },
          handshakeTimeoutMs: 4_000,
        });
        clients.push(client);
        return client.connect(5_000).then(() => client, () => undefined);
      })
    );
    const settled = await Promise.all(attempts);
    const up = settled.filter((c): c is DtlsClient => c !== undefined);
    assert.ok(up.length > 0, "some handshakes completed");
    // Data through the lossy network, then one message on a clean one.
    const seen = () => proxies.reduce((n, p) => n + p.stats.forwarded + p.stats.lost, 0);
    const before = seen();
    for (const client of up) {
      for (let i = 0; i < 20; i++) client.send(`m${i}`);
    }
    // Keep the network lossy until (most of) the data has gone through it.
    await waitFor(() => seen() - before >= up.length * 10, "data through the proxy");
    for (const proxy of proxies) {
      proxy.impairment = { loss: 0, duplicate: 0, delay: 0, maxDelayMs: 0 };
    }
    // Loopback UDP itself drops datagrams under a burst, so the final
    // message is repeated until answered (each repeat is a new record).
    await Promise.all(up.map(async (client) => {
      for (let attempt = 0; attempt < 20; attempt++) {
        client.send("final");
        try {
          assert.equal(new TextDecoder().decode(await client.receive(500)), "final-ack");
          return;
        } catch {
          // lost: try again
        }
      }
      assert.fail(`no answer to ${client.localPort}`);
    }));
    for (const [peer, all] of received) {
      const messages = all.filter((m) => m !== "final");
      assert.equal(new Set(messages).size, messages.length, `${peer}: no duplicates`);
      assert.ok(messages.every((m) => /^m\d+$/.test(m)), peer);
      assert.ok(all.includes("final"), peer);
    }
    // Failed handshakes do not linger: the server's deadline frees them.
    await waitFor(() => server.halfOpenCount === 0, "no half-open state", 8_000);
  } finally {
    for (const c of clients) await c.close();
    for (const p of proxies) await p.close();
    await server.close();
  }
});

async function waitFor(done: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
