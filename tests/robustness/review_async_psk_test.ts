/**
 * Findings of the adversarial review of asynchronous key stores, each a
 * test that failed before its fix (docs/security.md lists them):
 *
 * 1. A store's "no row" (null) was taken for a key, an empty key let a
 *    client with an empty PSK in, and a thenable that is not a Promise was
 *    used as the key itself.
 * 2. A store rejecting with a value String() cannot show crashed the
 *    process.
 * 3. A lookup kept its slot after its connection was gone: a few abandoned
 *    handshakes had every other peer refused.
 * 4. The bound held only for a store that said it was asynchronous.
 * 5. A lookup timeout of 2^31 ms or more (which a timer takes as 1 ms)
 *    failed every lookup.
 */
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import type { Association } from "../../src/connection/association.ts";
import type { PeerEntry, ServerEndpoint } from "../../src/connection/endpoint.ts";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import { asyncPskStore, parseHexKey, type PskStore } from "../../src/server/psk_store.ts";
import { ContentType, parseRecords } from "../../src/record/header.ts";
import { drain, testClient, testEndpoint } from "../helpers/drive.ts";
import { withServer } from "../helpers/in_process_server.ts";
import { serverPsk } from "../helpers/sim.ts";

const DEMO_KEY = parseHexKey("1a2b3c4d5e6f", "demo key");
const ID = "Qt DTLS example client";
const NOW = 1_000_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function client(port: number, identity = ID, psk = DEMO_KEY): DtlsClient {
  return new DtlsClient({ hostname: "127.0.0.1", port, identity, psk });
}

/** What connecting gives: "connected", or why not. */
async function connectResult(c: DtlsClient, ms = 10_000): Promise<string> {
  try {
    await c.connect(ms);
    return "connected";
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    await c.close();
  }
}

/** A handshake against `endpoint` up to its key lookup; the lookup's answer handed over, then the rest. */
async function handshakeWith(
  endpoint: ServerEndpoint,
  seed: string,
  psk = new Uint8Array(0),
): Promise<{ server: Association; client: Association }> {
  const client = testClient(seed, NOW, psk.length === 0 ? {} : { psk });
  let entry: PeerEntry | undefined;
  const run = () => {
    for (let round = 0; round < 20; round++) {
      let moved = false;
      for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
        moved = true;
        const out = endpoint.handleDatagram(d, "10.0.0.9:9", NOW);
        if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, NOW);
        if (out.kind === "connection") entry = out.entry;
      }
      const lookups: Promise<Uint8Array | undefined>[] = [];
      if (entry !== undefined) {
        const { events, sent } = drain(entry.connection);
        for (const e of events) if (e.type === "psk_lookup") lookups.push(e.lookup);
        for (const d of sent) {
          moved = true;
          client.handleDatagram(d, NOW);
        }
      }
      if (lookups.length > 0) return lookups[0];
      if (!moved) return undefined;
    }
    return undefined;
  };
  const lookup = run();
  if (lookup !== undefined) {
    endpoint.deliverPskLookup(entry!, await lookup, NOW);
    run();
  }
  return { server: entry!.connection, client };
}

Deno.test(
  "finding 1: over UDP, a null answer reads as unknown (bad_record_mac, logged known: false)",
  {
    sanitizeOps: false,
    sanitizeResources: false,
  },
  async () => {
    const psk = asyncPskStore((id) =>
      Promise.resolve(
        new TextDecoder().decode(id) === ID ? DEMO_KEY : (null as unknown as undefined),
      )
    );
    await withServer({ psk }, async (_server, port, log) => {
      const wrongKey = await connectResult(client(port, ID, parseHexKey("00112233", "k")));
      const unknown = await connectResult(client(port, "no-such-user"));
      assert.match(wrongKey, /bad_record_mac/);
      assert.match(unknown, /bad_record_mac/);
      const line = log.entries.find((e) =>
        e.event === "psk_identity" && /no-such-user/.test(String(e.identity))
      );
      assert.equal(line?.known, false);
    });
  },
);

Deno.test("finding 1: an empty key from the store lets no one in", async () => {
  const endpoint = testEndpoint({
    psk: serverPsk({ lookupPsk: () => Promise.resolve(new Uint8Array(0)) }),
  }, "review async 1b");
  const { server, client } = await handshakeWith(endpoint, "1b client", new Uint8Array(1));
  assert.equal(server.isEstablished, false);
  assert.equal(client.isEstablished, false);
});

Deno.test("finding 1: a thenable that is not a Promise is awaited", async () => {
  const thenable = {
    then(resolve: (key: Uint8Array) => void) {
      resolve(new Uint8Array([0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f]));
    },
  };
  const endpoint = testEndpoint({
    psk: serverPsk({ lookupPsk: () => thenable as unknown as Promise<Uint8Array> }),
  }, "review async 1c");
  const { server, client } = await handshakeWith(endpoint, "1c client");
  assert.equal(server.isEstablished, true);
  assert.equal(client.isEstablished, true);
});

Deno.test("finding 2: rejections String() cannot show fail the handshake, not the process", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  for (
    const reason of [
      Object.create(null),
      {
        toString() {
          throw new Error("no");
        },
      },
    ]
  ) {
    let first = true;
    const psk = asyncPskStore(() => {
      if (!first) return Promise.resolve(DEMO_KEY);
      first = false;
      return Promise.reject(reason);
    });
    await withServer({ psk }, async (_server, port) => {
      assert.match(await connectResult(client(port)), /internal_error/);
      assert.equal(await connectResult(client(port)), "connected", "the server still serves");
    });
  }
});

/**
 * A client that gets as far as its ClientKeyExchange (so the server asks
 * the store), then ends its own handshake with an epoch-0 fatal alert.
 */
async function startAndAbandon(port: number, identity: string, seed: string): Promise<void> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
  const c = testClient(seed, Date.now(), { identity: new TextEncoder().encode(identity) });
  let sentKeyExchange = false;
  try {
    for (let round = 0; round < 10 && !sentKeyExchange; round++) {
      for (let d = c.pollTransmit(); d; d = c.pollTransmit()) {
        await socket.send(d, to);
        if (parseRecords(d).records.some((r) => r.type === ContentType.ChangeCipherSpec)) {
          sentKeyExchange = true;
        }
      }
      if (sentKeyExchange) break;
      const [d] = await socket.receive();
      c.handleDatagram(d, Date.now());
    }
    await sleep(50);
    // Alert, DTLS 1.2, epoch 0, seq 99: fatal handshake_failure.
    await socket.send(Uint8Array.of(21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 99, 0, 2, 2, 40), to);
  } finally {
    socket.close();
  }
}

Deno.test("finding 3: a handshake gone before its key frees its lookup's slot", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  let asked = 0;
  const psk = asyncPskStore(async (id) => {
    asked++;
    await sleep(2_000);
    return new TextDecoder().decode(id) === ID ? DEMO_KEY : undefined;
  });
  await withServer({ psk, maxPskLookups: 4, pskLookupTimeoutMs: 5_000 }, async (_server, port) => {
    for (let i = 0; i < 4; i++) await startAndAbandon(port, `junk-${i}`, `abandon ${i}`);
    await sleep(100);
    assert.equal(asked, 4);
    assert.equal(await connectResult(client(port), 8_000), "connected");
  });
});

Deno.test("finding 3: one source holds a quarter of the lookups at most", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const psk = asyncPskStore(() => new Promise(() => {}));
  await withServer({ psk, maxPskLookups: 8, pskLookupTimeoutMs: 2_000 }, async (server, port) => {
    // Each client its own port, all on 127.0.0.1: one source.
    const results = await Promise.all(
      Array.from({ length: 4 }, () => connectResult(client(port), 6_000)),
    );
    assert.ok(results.every((r) => /internal_error/.test(r)), results.join("; "));
    assert.match(server.metrics.render(), /dtls_psk_lookups_total\{result="busy"\} 2/);
  });
});

Deno.test("finding 4: the bound holds for a store that answers later without saying so", {
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  let inFlight = 0;
  let most = 0;
  const psk: PskStore = {
    kind: "keys",
    size: 0,
    typicalKeyLength: 6,
    lookup: async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await sleep(1_000);
      inFlight--;
      return DEMO_KEY;
    },
  };
  await withServer({ psk, maxPskLookups: 1, pskLookupTimeoutMs: 3_000 }, async (_server, port) => {
    await Promise.all([
      connectResult(client(port)),
      connectResult(client(port)),
      connectResult(client(port)),
    ]);
    assert.equal(most, 1, `${most} lookups at once with maxPskLookups 1`);
  });
});

Deno.test("finding 5: a lookup timeout a timer cannot take is refused at construction", () => {
  assert.throws(
    () => new DtlsServer({ port: 0, pskLookupTimeoutMs: 3_000_000_000 }),
    /pskLookupTimeoutMs 3000000000: at most 2147483647/,
  );
});
