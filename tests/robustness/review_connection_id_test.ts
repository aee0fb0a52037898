/**
 * Findings of the adversarial review of Connection IDs (RFC 9146), each a
 * test that failed before its fix (docs/security.md lists them):
 *
 * 1. Anyone who knew a half-open connection's CID (it is sent in the clear
 *    in the ServerHello, or guessed when short) could reach its handshake
 *    from any address: an epoch-0 alert ended it, a forged
 *    ClientKeyExchange was taken, a forged epoch-1 record failed it.
 * 2. The held Finished that a stranger's ChangeCipherSpec released moved
 *    the peer to the stranger's address.
 * 3. A client with keys moved itself to a victim's address and had our
 *    answers (each carrying its 255-byte CID) sent there, amplified.
 * 4. A long client CID with a small MTU made the flight fail as an
 *    internal error.
 */
import assert from "node:assert/strict";
import type { Association } from "../../src/connection/association.ts";
import type { ServerEndpoint } from "../../src/connection/endpoint.ts";
import { connectionConfig, createClientConnection } from "../../src/connection/endpoint.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { AlertDescription, AlertLevel, encodeAlert } from "../../src/handshake/messages.ts";
import { ContentType, parseRecords } from "../../src/record/header.ts";
import { suiteByName } from "../../src/record/suites.ts";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import { MemoryLogger } from "../../src/server/log.ts";
import { testClient, testEndpoint } from "../helpers/drive.ts";
import { KEY, Pair } from "../helpers/sim.ts";
import { concat } from "../crypto/hex.ts";

const PEER = "127.0.0.1:50000";
const STRANGER = "203.0.113.66:6666";
const NOW = 1_000_000;
const EMPTY: Uint8Array = new Uint8Array(0);

/** A raw record; with `cid`, a tls12_cid header (the CID between sequence number and length). */
function record(
  type: number,
  epoch: number,
  seq: number,
  body: Uint8Array,
  cid: Uint8Array = EMPTY,
) {
  const out = new Uint8Array(13 + cid.length + body.length);
  const view = new DataView(out.buffer);
  out[0] = type;
  view.setUint16(1, 0xfefd);
  view.setUint16(3, epoch);
  view.setUint16(5, Math.floor(seq / 2 ** 32));
  view.setUint32(7, seq % 2 ** 32);
  out.set(cid, 11);
  view.setUint16(11 + cid.length, body.length);
  out.set(body, 13 + cid.length);
  return out;
}

function drainServer(server: Association) {
  const sent: Uint8Array[] = [];
  for (let d = server.pollTransmit(); d; d = server.pollTransmit()) sent.push(d);
  for (let e = server.pollEvent(); e; e = server.pollEvent()) void e;
  return sent;
}

/**
 * A handshake up to the client's final flight, which is returned
 * undelivered: the server is half-open with a CID, waiting for it.
 */
function halfOpen(endpoint: ServerEndpoint, seed: string, peer = PEER) {
  const client = testClient(seed, NOW, { connectionId: new Uint8Array([0xc1, 0xd2, 0xe3]) });
  const hvr = endpoint.handleDatagram(client.pollTransmit()!, peer, NOW);
  assert.equal(hvr.kind, "hello_verify_request");
  if (hvr.kind === "hello_verify_request") client.handleDatagram(hvr.datagram, NOW);
  const made = endpoint.handleDatagram(client.pollTransmit()!, peer, NOW);
  assert.equal(made.kind, "connection");
  const server = endpoint.get(peer)!;
  for (const d of drainServer(server)) client.handleDatagram(d, NOW);
  const finalFlight: Uint8Array[] = [];
  for (let d = client.pollTransmit(); d; d = client.pollTransmit()) finalFlight.push(d);
  return { client, server, finalFlight };
}

/** The client's final flight arrives from its own address; both sides should be established. */
function finish(endpoint: ServerEndpoint, half: ReturnType<typeof halfOpen>): void {
  for (const d of half.finalFlight) endpoint.handleDatagram(d, PEER, NOW);
  for (const d of drainServer(half.server)) half.client.handleDatagram(d, NOW);
}

const FATAL_ALERT = encodeAlert(AlertLevel.Fatal, AlertDescription.HandshakeFailure);

Deno.test("finding 1: an epoch-0 alert behind a CID record from a stranger does not end the handshake", () => {
  const endpoint = testEndpoint({ cidLength: 6 }, "cid 1a");
  const half = halfOpen(endpoint, "cid 1a client");
  const cid = half.server.connectionId!;
  endpoint.handleDatagram(
    concat(
      record(ContentType.Tls12Cid, 0, 0, EMPTY, cid),
      record(ContentType.Alert, 0, 99, FATAL_ALERT),
    ),
    STRANGER,
    NOW,
  );
  finish(endpoint, half);
  assert.equal(half.server.isEstablished, true);
  assert.equal(half.client.isEstablished, true);
});

Deno.test("finding 1: a forged epoch-1 CID record from a stranger does not fail the handshake", () => {
  const endpoint = testEndpoint({ cidLength: 6 }, "cid 1b");
  const half = halfOpen(endpoint, "cid 1b client");
  const cid = half.server.connectionId!;
  const forged = record(ContentType.Tls12Cid, 1, 0, new Uint8Array(25).fill(0x41), cid);
  endpoint.handleDatagram(forged, STRANGER, NOW);
  finish(endpoint, half);
  assert.equal(half.server.isEstablished, true);
});

Deno.test("finding 1: a stranger spraying every one-byte CID ends no handshake", () => {
  const endpoint = testEndpoint({ cidLength: 1 }, "cid 1c");
  const victims = Array.from(
    { length: 20 },
    (_, i) => halfOpen(endpoint, `cid 1c client ${i}`, `10.0.0.${i + 1}:4000`),
  );
  for (let b = 0; b < 256; b++) {
    endpoint.handleDatagram(
      concat(
        record(ContentType.Tls12Cid, 0, 0, EMPTY, new Uint8Array([b])),
        record(ContentType.Alert, 0, 99, FATAL_ALERT),
      ),
      STRANGER,
      NOW,
    );
  }
  assert.equal(victims.filter((v) => v.server.isClosed).length, 0);
});

Deno.test("finding 1: a stranger's ClientKeyExchange behind a CID record is not taken", () => {
  const endpoint = testEndpoint({ cidLength: 6 }, "cid 1d");
  const half = halfOpen(endpoint, "cid 1d client");
  const cid = half.server.connectionId!;
  const identity = new TextEncoder().encode("attacker");
  const body = concat(new Uint8Array([0, identity.length]), identity);
  const message = concat(
    new Uint8Array([16, 0, 0, body.length, 0, 2, 0, 0, 0, 0, 0, body.length]),
    body,
  );
  endpoint.handleDatagram(
    concat(
      record(ContentType.Tls12Cid, 0, 0, EMPTY, cid),
      record(ContentType.Handshake, 0, 77, message),
    ),
    STRANGER,
    NOW,
  );
  finish(endpoint, half);
  assert.equal(half.server.isEstablished, true);
});

Deno.test("finding 2: a stranger's ChangeCipherSpec that releases the held Finished moves nothing", () => {
  const endpoint = testEndpoint({ cidLength: 6 }, "cid 2");
  const half = halfOpen(endpoint, "cid 2 client");
  const cid = half.server.connectionId!;
  const [cke, , fin] = parseRecords(half.finalFlight[0]!, 6).records.map((r) => r.raw.slice());
  // The client's ChangeCipherSpec is lost: its Finished is held for epoch 1.
  endpoint.handleDatagram(cke!, PEER, NOW);
  endpoint.handleDatagram(fin!, PEER, NOW);
  drainServer(half.server);
  const out = endpoint.handleDatagram(
    concat(
      record(ContentType.Tls12Cid, 0, 0, EMPTY, cid),
      record(ContentType.ChangeCipherSpec, 0, 500, new Uint8Array([1])),
    ),
    STRANGER,
    NOW,
  );
  assert.ok(out.kind !== "connection" || out.movedFrom === undefined, "moved by a stranger");
  assert.equal(endpoint.get(PEER), half.server, "still at the client's address");
});

Deno.test({
  name: "finding 3: a client with keys cannot aim amplified answers at another address",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // An application whose answers are bigger than the questions (600 bytes each).
    const server = new DtlsServer({
      port: 0,
      logger: new MemoryLogger(),
      cidLength: 6,
      onDatagram: () => new Uint8Array(600),
    });
    const { port } = server.listen();
    // One attacker socket per try (a new handshake from the same port would wait).
    const attackers = [0, 1, 2].map(() =>
      Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 })
    );
    // Stands for a spoofed source address: the datagram leaves from the victim's socket.
    const victim = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
    const receiveFor = async (socket: Deno.DatagramConn, ms: number) => {
      const got: Uint8Array[] = [];
      const end = Date.now() + ms;
      while (Date.now() < end) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<undefined>((r) => {
          timer = setTimeout(() => r(undefined), end - Date.now());
        });
        const r = await Promise.race([socket.receive(), timeout]);
        clearTimeout(timer);
        if (r === undefined) break;
        got.push(r[0]);
      }
      return got;
    };
    try {
      const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
      for (const [index, cidLength] of [255, 32, 0].entries()) {
        const attacker = attackers[index]!;
        const client = createClientConnection(connectionConfig(nodeProvider, random), {
          identity: new TextEncoder().encode("Qt DTLS example client"),
          psk: KEY,
          suites: [suiteByName("TLS_PSK_WITH_AES_128_GCM_SHA256")],
          groups: ["x25519"],
          connectionId: new Uint8Array(cidLength).fill(0xab),
        }, Date.now());
        for (let round = 0; round < 20 && !client.isEstablished; round++) {
          for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
            await attacker.send(d, to);
          }
          for (const d of await receiveFor(attacker, 200)) client.handleDatagram(d, Date.now());
        }
        assert.ok(client.isEstablished);
        let sent = 0;
        let received = 0;
        for (let i = 0; i < 5; i++) {
          const batch: Uint8Array[] = [];
          for (let j = 0; j < 32; j++) {
            client.send(new Uint8Array([0x41]));
            for (let d = client.pollTransmit(); d; d = client.pollTransmit()) batch.push(d);
          }
          const datagram = concat(...batch);
          await victim.send(datagram, to);
          sent += datagram.length;
          for (const d of await receiveFor(victim, 300)) received += d.length;
        }
        assert.ok(
          received <= 3 * sent,
          `CID ${cidLength}: the victim got ${received} bytes for ${sent} sent "from" it`,
        );
      }
    } finally {
      for (const attacker of attackers) attacker.close();
      victim.close();
      await server.close();
    }
  },
});

Deno.test("finding 4: a client CID too long for our records is declined, and the handshake completes", () => {
  const pair = new Pair({
    seed: "cid 4",
    cidLength: 6,
    serverMtu: 256,
    client: { connectionId: new Uint8Array(255).fill(7) },
  });
  pair.run(120_000, true);
  assert.equal(pair.server?.isEstablished, true);
  assert.equal(pair.server!.connectionId, undefined, "no CID agreed");
  assert.equal(pair.endpoint.internalErrors, 0);
});
