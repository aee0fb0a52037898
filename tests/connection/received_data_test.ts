/**
 * What an application is handed: bytes that never change afterwards, from
 * a buffer of its own connection only, and none kept by a quiet connection.
 */
import assert from "node:assert/strict";
import type { Connection } from "../../src/connection/connection.ts";
import { connectionConfig, type ServerEndpoint } from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { type CipherSuite, suiteByName } from "../../src/record/suites.ts";
import { seededRandom } from "../helpers/random.ts";
import { converse, deliver, testClient, testEndpoint } from "../helpers/drive.ts";

/** Sends `payload` from `client` and returns the data event's bytes at the server. */
function received(
  endpoint: ServerEndpoint,
  client: Connection,
  peer: string,
  payload: Uint8Array,
  now: number,
): Uint8Array {
  const data = deliver(endpoint, client, peer, payload, now);
  assert.ok(data !== undefined, "the server got the record");
  return data;
}

function connect(
  endpoint: ServerEndpoint,
  seed: string,
  peer: string,
  suites?: CipherSuite[],
): Connection {
  const client = testClient(seed, 0, suites ? { suites } : {});
  converse(endpoint, client, peer, 0);
  assert.ok(client.isEstablished);
  return client;
}

for (const provider of [nobleProvider, nodeProvider]) {
  for (
    const suite of [
      "TLS_PSK_WITH_AES_128_GCM_SHA256",
      "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
      "TLS_PSK_WITH_AES_128_CCM_8",
      "TLS_PSK_WITH_AES_128_CBC_SHA256",
    ]
  ) {
    Deno.test(`received data: one peer's bytes never share a buffer with another's, and never change (${suite}, ${provider.name})`, () => {
      const endpoint = testEndpoint({ connection: connectionConfig(provider, seededRandom("r")) });
      const suites = [suiteByName(suite)];
      const a = connect(endpoint, "a", "192.0.2.1:1000", suites);
      const b = connect(endpoint, "b", "192.0.2.2:2000", suites);
      const kept: { peer: string; bytes: Uint8Array; expected: Uint8Array }[] = [];
      // Interleaved, as a loaded server sees them; enough to fill several chunks.
      for (let i = 0; i < 200; i++) {
        for (const [client, peer] of [[a, "192.0.2.1:1000"], [b, "192.0.2.2:2000"]] as const) {
          const payload = new Uint8Array(1 + (i % 90)).fill(
            peer === "192.0.2.1:1000" ? 0xaa : 0xbb,
          );
          payload[0] = i % 128;
          const bytes = received(endpoint, client, peer, payload, 0);
          assert.deepEqual(bytes, payload);
          kept.push({ peer, bytes, expected: payload });
        }
      }
      const buffersOf = (peer: string) =>
        new Set(kept.filter((k) => k.peer === peer).map((k) => k.bytes.buffer));
      const ofA = buffersOf("192.0.2.1:1000");
      for (const buffer of buffersOf("192.0.2.2:2000")) assert.ok(!ofA.has(buffer));
      // Nothing handed out earlier was written over by what came later.
      for (const k of kept) assert.deepEqual(k.bytes, k.expected);
      // Whole buffers of one peer hold only that peer's bytes (and zeros).
      for (const buffer of buffersOf("192.0.2.2:2000")) {
        const all = new Uint8Array(buffer);
        assert.ok(!all.includes(0xaa), "a buffer of peer b shows a byte of peer a");
      }
    });
  }
}

Deno.test("received data: a connection quiet for a second lets go of its buffer; what it handed out stays", () => {
  const endpoint = testEndpoint();
  const peer = "192.0.2.3:3000";
  // AES-CCM opens into the shared pool, so its plaintexts go through the
  // connection's own chunk (GCM's and ChaCha20's come whole, in buffers of
  // their own, and are handed on as they are).
  const client = connect(endpoint, "c", peer, [suiteByName("TLS_PSK_WITH_AES_128_CCM")]);
  const first = received(endpoint, client, peer, new Uint8Array([1, 2, 3]), 0);
  const second = received(endpoint, client, peer, new Uint8Array([4, 5, 6]), 0);
  assert.equal(second.buffer, first.buffer, "records in a row share the connection's chunk");
  endpoint.handleTimeouts(500);
  const third = received(endpoint, client, peer, new Uint8Array([7]), 500);
  assert.equal(third.buffer, first.buffer, "not quiet yet: same chunk");
  endpoint.handleTimeouts(1_600);
  const fourth = received(endpoint, client, peer, new Uint8Array([8]), 1_600);
  assert.notEqual(fourth.buffer, first.buffer, "released after a quiet second");
  assert.deepEqual([...first, ...second, ...third, ...fourth], [1, 2, 3, 4, 5, 6, 7, 8]);
});
