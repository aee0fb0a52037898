/**
 * RFC 6347 §4.2.8: a client that restarts on the same address and port sends
 * a fresh epoch-0 ClientHello; the server starts a new handshake once the
 * cookie checks out, and keeps the old association until then.
 */
import assert from "node:assert/strict";
import type { Connection } from "../../src/connection/connection.ts";
import { connectionConfig, createClientConnection } from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { seededRandom } from "../helpers/random.ts";
import { clientPsk, Pair, PEER } from "../helpers/sim.ts";
import { drain, watchDrops } from "../helpers/drive.ts";
import { encodeClientHello, HandshakeType } from "../../src/handshake/messages.ts";
import { encodeHandshakeMessage } from "../../src/handshake/fragments.ts";
import { ContentType } from "../../src/record/header.ts";

/** Moves datagrams between a client and the pair's endpoint until quiet; returns the endpoint outcomes. */
function talk(pair: Pair, client: Connection): string[] {
  const outcomes: string[] = [];
  for (let round = 0; round < 50; round++) {
    let moved = false;
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      moved = true;
      const out = pair.endpoint.handleDatagram(d, PEER, pair.now);
      outcomes.push(out.kind);
      if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, pair.now);
    }
    const server = pair.endpoint.get(PEER);
    for (let d = server?.pollTransmit(); d; d = server?.pollTransmit()) {
      moved = true;
      client.handleDatagram(d, pair.now);
    }
    if (!moved) break;
  }
  return outcomes;
}

Deno.test("a restarted client on the same port gets a new connection after the cookie exchange", () => {
  const pair = new Pair();
  pair.run();
  const old = pair.server!;
  assert.equal(old.isEstablished, true);

  // Within 2 s of the old association's last progress a new ClientHello is
  // dropped: its client may still be waiting for our Finished.
  const hasty = createClientConnection(
    connectionConfig(nobleProvider, seededRandom("hasty")),
    clientPsk(),
    pair.now,
  );
  assert.deepEqual(pair.endpoint.handleDatagram(hasty.pollTransmit()!, PEER, pair.now + 1_999), {
    kind: "dropped",
    reason: "handshake_in_progress",
  });
  pair.now += 2_000;
  const restarted = createClientConnection(
    connectionConfig(nobleProvider, seededRandom("restarted")),
    clientPsk(),
    pair.now,
  );
  // The first ClientHello only earns a HelloVerifyRequest: the old association stays.
  const first = restarted.pollTransmit()!;
  const out = pair.endpoint.handleDatagram(first, PEER, pair.now);
  assert.equal(out.kind, "hello_verify_request");
  assert.equal(pair.endpoint.get(PEER), old);
  assert.equal(old.isEstablished, true);

  restarted.handleDatagram((out as { datagram: Uint8Array }).datagram, pair.now);
  const outcomes = talk(pair, restarted);
  assert.equal(outcomes[0], "connection");
  assert.equal(restarted.isEstablished, true);
  assert.notEqual(pair.endpoint.get(PEER), old);
  assert.equal(old.isClosed, true);
  assert.equal(pair.endpoint.size, 1);
});

Deno.test("a late copy of the handshake's own ClientHello does not replace the connection", () => {
  const pair = new Pair();
  pair.run();
  const old = pair.server!;
  const cookieHello = pair.wire.filter((w) => w.direction === "c2s")[1]!.datagram;
  const out = pair.endpoint.handleDatagram(cookieHello, PEER, pair.now);
  assert.equal(out.kind, "connection");
  assert.equal(pair.endpoint.get(PEER), old);
  assert.equal(old.isEstablished, true);
});

Deno.test("a replayed application record is dropped, not delivered twice", () => {
  const pair = new Pair();
  pair.run();
  pair.client.send(new TextEncoder().encode("once"));
  const record = pair.client.pollTransmit()!;
  const server = pair.server!;
  drain(server);
  const drops = watchDrops(server);
  pair.endpoint.handleDatagram(record, PEER, pair.now);
  pair.endpoint.handleDatagram(record, PEER, pair.now);
  const events = [];
  for (let e = server.pollEvent(); e; e = server.pollEvent()) events.push(e);
  assert.equal(events.filter((e) => e.type === "data").length, 1);
  assert.equal(drops.replay, 1);
});

Deno.test("a tampered application record is dropped silently and counted", () => {
  const pair = new Pair();
  pair.run();
  pair.client.send(new TextEncoder().encode("tamper"));
  const record = pair.client.pollTransmit()!.slice();
  record[record.length - 1]! ^= 1;
  const server = pair.server!;
  drain(server);
  const drops = watchDrops(server);
  pair.endpoint.handleDatagram(record, PEER, pair.now);
  assert.equal(server.isEstablished, true);
  drain(server);
  assert.equal(drops.bad_mac, 1);
  assert.equal(server.pollTransmit(), undefined, "no answer to a bad record");
});

Deno.test("renegotiation is refused with a no_renegotiation warning and the connection goes on", () => {
  const pair = new Pair();
  pair.run();
  const hello = encodeClientHello({
    clientVersion: 0xfefd,
    random: new Uint8Array(32).fill(9),
    sessionId: new Uint8Array(0),
    cookie: new Uint8Array(0),
    cipherSuites: [0x00a8],
    compressionMethods: new Uint8Array([0]),
    extensions: [],
  });
  // The client's next message_seq after ClientHello, ClientHello, ClientKeyExchange, Finished.
  (pair.client as Connection).injectRecord(
    ContentType.Handshake,
    encodeHandshakeMessage(HandshakeType.ClientHello, 4, hello),
  );
  pair.pump();
  const warning = pair.clientEvents.find((e) => e.type === "alert" && e.direction === "received");
  assert.ok(warning && warning.type === "alert");
  assert.equal(warning.description, "no_renegotiation");
  assert.equal(warning.level, "warning");
  assert.equal(pair.server?.isEstablished, true);
  assert.equal(pair.client.isEstablished, true);
  pair.client.send(new TextEncoder().encode("still here"));
  pair.pump();
  assert.ok(pair.serverEvents.some((e) => e.type === "data"));
});

Deno.test("a half-open handshake is freed at the handshake deadline", () => {
  // The client vanishes after its ClientHello with cookie.
  const pair = new Pair({
    script: (direction, index) => direction === "c2s" && index >= 2 ? "drop" : "deliver",
  });
  pair.pump();
  const server = pair.server!;
  assert.equal(server.isEstablished, false);
  assert.equal(server.isClosed, false);
  pair.now += 30_000;
  pair.endpoint.handleTimeouts(pair.now);
  assert.equal(server.isClosed, true);
  const events = [];
  for (let e = server.pollEvent(); e; e = server.pollEvent()) events.push(e);
  const closed = events.find((e) => e.type === "closed");
  assert.ok(closed && closed.type === "closed" && closed.reason === "handshake timeout");
});

Deno.test("an established connection silent past the idle timeout is closed with close_notify", () => {
  const pair = new Pair();
  pair.run();
  const server = pair.server!;
  pair.now += 600_000;
  pair.endpoint.handleTimeouts(pair.now);
  assert.equal(server.isClosed, true);
  const alert = server.pollTransmit();
  assert.ok(alert, "close_notify sent");
  pair.client.handleDatagram(alert, pair.now);
  assert.equal(pair.client.isClosed, true);
});
