/**
 * Keys from where a fleet keeps them: a key store that answers later (a
 * Promise). In the engine, on virtual time: a handshake waits for its key
 * without holding up anyone, and its ChangeCipherSpec and Finished, which
 * came meanwhile, are read once the key is there. In the server, over UDP:
 * the lookups are bounded in number and in time, each failure a clear
 * internal_error for that handshake alone.
 */
import assert from "node:assert/strict";
import type { Association } from "../../src/connection/association.ts";
import type { PeerEntry, ServerEndpoint } from "../../src/connection/endpoint.ts";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { asyncPskStore, parseHexKey } from "../../src/server/psk_store.ts";
import { drain, testClient, testEndpoint } from "../helpers/drive.ts";
import { client13, KEY, serverPsk } from "../helpers/sim.ts";
import { connectionConfig, createClientConnection13 } from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { seededRandom } from "../helpers/random.ts";
import { withServer } from "../helpers/in_process_server.ts";

const NOW = 1_000_000;
const PEER = "10.0.0.1:4000";

/** A lookup the test answers when it likes. */
function deferred() {
  const lookups: { identity: string; resolve: (key: Uint8Array | undefined) => void }[] = [];
  const lookupPsk = (identity: Uint8Array) =>
    new Promise<Uint8Array | undefined>((resolve) => {
      lookups.push({ identity: new TextDecoder().decode(identity), resolve });
    });
  return { lookups, lookupPsk };
}

/**
 * Runs a client against `endpoint` at `peer` until nothing moves; returns
 * the server's entry and the lookup promises its events announced.
 */
function exchange(endpoint: ServerEndpoint, client: Association, peer: string) {
  let entry: PeerEntry | undefined;
  const pending: Promise<Uint8Array | undefined>[] = [];
  for (let round = 0; round < 20; round++) {
    let moved = false;
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      moved = true;
      const out = endpoint.handleDatagram(d, peer, NOW);
      if (out.kind === "hello_verify_request" || out.kind === "hello_retry_request") {
        client.handleDatagram(out.datagram, NOW);
      }
      if (out.kind === "connection") entry = out.entry;
    }
    if (entry !== undefined) {
      const { events, sent } = drain(entry.connection);
      for (const e of events) if (e.type === "psk_lookup") pending.push(e.lookup);
      for (const d of sent) {
        moved = true;
        client.handleDatagram(d, NOW);
      }
    }
    if (!moved) break;
  }
  return { entry: entry!, pending };
}

Deno.test("a handshake waits for its key, then completes; its CCS and Finished are read then", async () => {
  const store = deferred();
  const endpoint = testEndpoint({ psk: serverPsk({ lookupPsk: store.lookupPsk }) }, "async 1");
  const client = testClient("async client 1", NOW);
  const { entry, pending } = exchange(endpoint, client, PEER);
  assert.equal(pending.length, 1);
  assert.deepEqual(store.lookups.map((l) => l.identity), ["Qt DTLS example client"]);
  assert.equal(entry.connection.isEstablished, false, "waiting for the key");
  assert.equal(client.isEstablished, false);
  // The client's whole final flight came already; the key arrives.
  store.lookups[0]!.resolve(KEY);
  endpoint.deliverPskLookup(entry, await pending[0]!, NOW);
  const { sent } = drain(entry.connection);
  for (const d of sent) client.handleDatagram(d, NOW);
  assert.equal(entry.connection.isEstablished, true);
  assert.equal(client.isEstablished, true);
});

Deno.test("while one handshake waits for its key, another peer's completes", async () => {
  const store = deferred();
  const endpoint = testEndpoint({ psk: serverPsk({ lookupPsk: store.lookupPsk }) }, "async 2");
  const slow = exchange(endpoint, testClient("slow", NOW), "10.0.0.1:1");
  const fastClient = testClient("fast", NOW);
  const fast = exchange(endpoint, fastClient, "10.0.0.2:2");
  store.lookups[1]!.resolve(KEY);
  endpoint.deliverPskLookup(fast.entry, await fast.pending[0]!, NOW);
  for (const d of drain(fast.entry.connection).sent) fastClient.handleDatagram(d, NOW);
  assert.equal(fastClient.isEstablished, true, "the second peer did not wait for the first");
  assert.equal(slow.entry.connection.isEstablished, false);
  assert.equal(slow.entry.connection.isClosed, false);
});

Deno.test("an unknown identity answered later fails as a wrong key does (bad_record_mac)", async () => {
  const store = deferred();
  const endpoint = testEndpoint({ psk: serverPsk({ lookupPsk: store.lookupPsk }) }, "async 3");
  const client = testClient("async client 3", NOW);
  const { entry, pending } = exchange(endpoint, client, PEER);
  store.lookups[0]!.resolve(undefined);
  endpoint.deliverPskLookup(entry, await pending[0]!, NOW);
  const { events } = drain(entry.connection);
  const sent = events.find((e) => e.type === "alert" && e.direction === "sent");
  assert.equal(sent?.type === "alert" && sent.description, "bad_record_mac");
  assert.equal(entry.connection.isClosed, true);
});

Deno.test("a failed lookup ends that handshake with internal_error, and a late answer changes nothing", () => {
  const store = deferred();
  const endpoint = testEndpoint({ psk: serverPsk({ lookupPsk: store.lookupPsk }) }, "async 4");
  const { entry } = exchange(endpoint, testClient("async client 4", NOW), PEER);
  endpoint.deliverPskLookup(entry, new Error("key service unreachable"), NOW);
  const { events } = drain(entry.connection);
  const sent = events.find((e) => e.type === "alert" && e.direction === "sent");
  assert.equal(sent?.type === "alert" && sent.description, "internal_error");
  const closed = events.find((e) => e.type === "closed");
  assert.match(closed?.type === "closed" ? closed.reason : "", /key service unreachable/);
  endpoint.deliverPskLookup(entry, KEY, NOW);
  assert.equal(entry.connection.isEstablished, false);
  assert.equal(endpoint.internalErrors, 0);
});

/** A DTLS 1.3 client over the demo PSK. */
function testClient13(seed: string): Association {
  return createClientConnection13(
    connectionConfig(nobleProvider, seededRandom(seed)),
    client13(),
    NOW,
  );
}

Deno.test("DTLS 1.3: a handshake waits for its key, then completes", async () => {
  const store = deferred();
  const endpoint = testEndpoint({ psk: serverPsk({ lookupPsk: store.lookupPsk }) }, "async13 1");
  const client = testClient13("async13 client 1");
  const { entry, pending } = exchange(endpoint, client, PEER);
  assert.equal(pending.length, 1);
  assert.deepEqual(store.lookups.map((l) => l.identity), ["Qt DTLS example client"]);
  assert.equal(entry.connection.isEstablished, false, "waiting for the key");
  store.lookups[0]!.resolve(KEY);
  endpoint.deliverPskLookup(entry, await pending[0]!, NOW);
  for (let round = 0; round < 5; round++) {
    for (const d of drain(entry.connection).sent) client.handleDatagram(d, NOW);
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      endpoint.handleDatagram(d, PEER, NOW);
    }
  }
  assert.equal(client.isEstablished, true);
  assert.equal(entry.connection.isEstablished, true);
});

Deno.test("DTLS 1.3: an unknown identity answered later fails at the binder (decrypt_error)", async () => {
  const store = deferred();
  const endpoint = testEndpoint({ psk: serverPsk({ lookupPsk: store.lookupPsk }) }, "async13 2");
  const { entry, pending } = exchange(endpoint, testClient13("async13 client 2"), PEER);
  store.lookups[0]!.resolve(undefined);
  endpoint.deliverPskLookup(entry, await pending[0]!, NOW);
  const { events } = drain(entry.connection);
  const sent = events.find((e) => e.type === "alert" && e.direction === "sent");
  assert.equal(sent?.type === "alert" && sent.description, "decrypt_error");
  assert.equal(entry.connection.isClosed, true);
});

// ---- the server: bounds and timeouts ---------------------------------------------------------

const DEMO_KEY = parseHexKey("1a2b3c4d5e6f", "demo key");

function client(port: number): DtlsClient {
  return new DtlsClient({
    hostname: "127.0.0.1",
    port,
    identity: "Qt DTLS example client",
    psk: DEMO_KEY,
  });
}

Deno.test("the server: a key store that answers later serves its clients", async () => {
  const psk = asyncPskStore(async (identity) => {
    await new Promise((r) => setTimeout(r, 100));
    return new TextDecoder().decode(identity) === "Qt DTLS example client" ? DEMO_KEY : undefined;
  });
  await withServer({ psk }, async (server, port) => {
    const c = client(port);
    try {
      await c.connect(10_000);
      c.send(new TextEncoder().encode("hello"));
      const reply = await c.receive(5_000);
      assert.match(new TextDecoder().decode(reply), /ACK/);
    } finally {
      await c.close();
    }
    assert.match(server.metrics.render(), /dtls_psk_lookups_total\{result="ok"\} 1/);
  });
});

Deno.test("the server: a lookup not answered in time fails that handshake with internal_error", async () => {
  const psk = asyncPskStore(() => new Promise(() => {}));
  await withServer({ psk, pskLookupTimeoutMs: 200 }, async (server, port, log) => {
    const c = client(port);
    await assert.rejects(() => c.connect(10_000), /internal_error/);
    await c.close();
    assert.match(server.metrics.render(), /dtls_psk_lookups_total\{result="error"\} 1/);
    assert.ok(
      log.entries.some((e) =>
        e.event === "connection_closed" &&
        /no answer from the key store in 200 ms/.test(String(e.reason))
      ),
    );
  });
});

Deno.test("the server: over the bound of lookups in flight, a handshake fails without asking the store", async () => {
  let asked = 0;
  const psk = asyncPskStore(() => {
    asked++;
    return new Promise(() => {});
  });
  await withServer({ psk, maxPskLookups: 1, pskLookupTimeoutMs: 3_000 }, async (server, port) => {
    const first = client(port);
    const waiting = first.connect(10_000).catch((e: Error) => e);
    // The first handshake's lookup is in flight; the second one's is refused at once.
    while (asked === 0) await new Promise((r) => setTimeout(r, 20));
    const second = client(port);
    await assert.rejects(() => second.connect(10_000), /internal_error/);
    await second.close();
    assert.equal(asked, 1, "the store was asked once");
    assert.match(server.metrics.render(), /dtls_psk_lookups_total\{result="busy"\} 1/);
    assert.ok((await waiting) instanceof Error, "the first times out");
    await first.close();
  });
});
