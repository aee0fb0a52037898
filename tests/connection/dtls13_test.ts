/**
 * DTLS 1.3 end to end in the simulator: our client against our endpoint on
 * virtual time, over a network a test scripts (loss, duplication,
 * reordering), with every suite, both PSK modes, a HelloRetryRequest for a
 * key share, ACKs, per-record retransmission and KeyUpdate.
 */

import assert from "node:assert/strict";
import type { Connection13 } from "../../src/connection/connection13.ts";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import {
  decodeServerHello13,
  DOWNGRADE_SENTINEL_TLS12,
  HELLO_RETRY_REQUEST_RANDOM,
} from "../../src/handshake/messages13.ts";
import { encodeHandshakeMessage, parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import {
  decodeHelloVerifyRequest,
  encodeClientHello,
  HandshakeType,
} from "../../src/handshake/messages.ts";
import { ContentType, DTLS_1_2, encodeRecord, parseRecords } from "../../src/record/header.ts";
import { SUITES_13 } from "../../src/record/suites13.ts";
import { toHex } from "../../src/codec/hex.ts";
import { isUnifiedHeader } from "../../src/record/unified_header.ts";
import { Pair, PEER, sentAlert } from "../helpers/sim.ts";

const text = new TextEncoder();

function completed(events: readonly ConnectionEvent[]) {
  const e = events.find((e) => e.type === "handshake_complete");
  return e?.type === "handshake_complete" ? e : undefined;
}

function received(events: readonly ConnectionEvent[]): string[] {
  return events.flatMap((e) => e.type === "data" ? [new TextDecoder().decode(e.data)] : []);
}

/** The epoch-0 ServerHellos (HelloRetryRequests and ServerHellos) the server sent, decoded. */
function serverHellos(pair: Pair) {
  const hellos = [];
  for (const { direction, datagram } of pair.wire) {
    if (direction !== "s2c" || datagram[0] !== 22) continue;
    const length = (datagram[11]! << 8) | datagram[12]!;
    for (const f of parseHandshakeFragments(datagram.subarray(13, 13 + length))) {
      if (f.msgType === 2) hellos.push(decodeServerHello13(f.body));
    }
  }
  return hellos;
}

/** Sends `message` from the client, then the server answers every data event with "ack:" + it. */
function exchange(pair: Pair, message: string): string[] {
  pair.client.send(text.encode(message));
  pair.pump();
  const server = pair.server!;
  const got = received(pair.serverEvents.splice(0));
  for (const m of got) server.send(text.encode(`ack:${m}`));
  pair.pump();
  return received(pair.clientEvents.splice(0));
}

for (const suite of SUITES_13) {
  Deno.test(`dtls13: ${suite.name} with X25519 completes after a HelloRetryRequest, data both ways`, () => {
    const pair = new Pair({ seed: suite.name, dtls13: { suites: [suite] } });
    pair.run();
    assert.ok(pair.client.isEstablished, "client established");
    assert.ok(pair.server?.isEstablished, "server established");
    const done = completed(pair.serverEvents);
    assert.equal(done?.version, "DTLS 1.3");
    assert.equal(done?.suite, suite.name);
    assert.equal(done?.group, "x25519");
    assert.equal(completed(pair.clientEvents)?.suite, suite.name);
    assert.deepEqual(pair.outcomes.slice(0, 2), ["hello_retry_request", "connection"]);
    const hellos = serverHellos(pair);
    assert.deepEqual(hellos[0]!.random, HELLO_RETRY_REQUEST_RANDOM);
    assert.ok(hellos[0]!.cookie !== undefined && hellos[0]!.keyShare === undefined);
    assert.equal(hellos[1]!.selectedIdentity, 0);
    pair.serverEvents.length = 0;
    pair.clientEvents.length = 0;
    for (let i = 0; i < 5; i++) assert.deepEqual(exchange(pair, `m${i}`), [`ack:m${i}`]);
    // Everything after the hellos is in the unified header.
    const protectedRecords = pair.wire.filter((w) => isUnifiedHeader(w.datagram[0]!));
    assert.ok(protectedRecords.length >= 10);
  });
}

Deno.test("dtls13: psk_ke (no (EC)DHE) when it is the only mode offered", () => {
  const pair = new Pair({ dtls13: { modes: ["psk_ke"], keyShares: [] } });
  pair.run();
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  assert.equal(completed(pair.serverEvents)?.group, undefined);
  assert.equal(serverHellos(pair)[1]!.keyShare, undefined);
});

Deno.test("dtls13: a first ClientHello without key shares gets a HelloRetryRequest asking for one", () => {
  const pair = new Pair({ dtls13: { keyShares: [], groups: ["secp256r1", "x25519"] } });
  pair.run();
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  const [retry] = serverHellos(pair);
  // Our preference (X25519 first), among the groups the client supports.
  assert.deepEqual(retry!.keyShare, { group: 29 });
  assert.equal(completed(pair.serverEvents)?.group, "x25519");
});

Deno.test("dtls13: the PSK is bound with SHA-384 for the SHA-384 suite; the server picks that suite", () => {
  const sha384 = SUITES_13.find((s) => s.hash === "sha384")!;
  const pair = new Pair({ dtls13: { suites: [sha384, ...SUITES_13] } });
  pair.run();
  assert.equal(completed(pair.serverEvents)?.suite, "TLS_AES_256_GCM_SHA384");
});

Deno.test("dtls13: a wrong key fails at the binder with decrypt_error, as an unknown identity does", () => {
  const wrong = new Pair({ dtls13: { psk: new Uint8Array(6).fill(7) } });
  wrong.run();
  const unknown = new Pair({ dtls13: { identity: text.encode("nobody") } });
  unknown.run();
  for (const pair of [wrong, unknown]) {
    assert.ok(pair.client.isClosed, "the client hears the alert");
    assert.equal(sentAlert(pair.serverEvents), "decrypt_error");
    assert.ok(pair.server === undefined || pair.server.isClosed);
  }
  const identity = (p: Pair) => p.serverEvents.find((e) => e.type === "psk_identity");
  assert.deepEqual(
    [identity(wrong)?.type === "psk_identity" && identity(wrong)!.known],
    [true],
  );
});

Deno.test("dtls13: the handshake completes with every second datagram lost", () => {
  const pair = new Pair({ dtls13: {}, script: (_d, i) => i % 2 === 1 ? "drop" : "deliver" });
  pair.run(300_000, true);
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  assert.ok(pair.serverEvents.some((e) => e.type === "retransmit"));
});

Deno.test("dtls13: the handshake completes with every datagram duplicated, and with flights reordered", () => {
  for (const fate of ["duplicate", "delay"] as const) {
    const pair = new Pair({
      dtls13: {},
      serverMtu: 150,
      script: (_d, i) => i % 2 === 0 ? fate : "deliver",
    });
    pair.run(300_000, true);
    assert.ok(pair.client.isEstablished && pair.server?.isEstablished, fate);
    assert.deepEqual(exchange(pair, "after"), ["ack:after"], fate);
  }
});

Deno.test("dtls13: the client's ACKs of a partial flight make the server resend only the missing records", () => {
  // A 100-byte MTU cuts the server's flight into many records; the third
  // datagram of it is lost once.
  let lost = false;
  const pair = new Pair({
    dtls13: {},
    serverMtu: 100,
    script: (direction, i) => {
      if (direction === "s2c" && i === 3 && !lost) {
        lost = true;
        return "drop";
      }
      return "deliver";
    },
  });
  pair.pump();
  const serverSent = () => pair.wire.filter((w) => w.direction === "s2c").length;
  const flight = serverSent();
  const acks = () =>
    pair.wire.filter((w) => w.direction === "c2s" && isUnifiedHeader(w.datagram[0]!));
  // No gap shows (the lost record was the flight's last): the ACK waits a
  // quarter of the retransmission timeout, then says what came.
  assert.equal(acks().length, 0);
  const start = pair.now;
  assert.ok(pair.advance());
  pair.pump();
  assert.equal(pair.now - start, 250);
  assert.equal(acks().length, 1, "the client acknowledged what came");
  assert.ok(flight >= 3, `${flight} datagrams in the HelloRetryRequest and the flight`);
  pair.run(60_000, true);
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  // The one record lost, then the ACK of the client's Finished.
  assert.equal(serverSent() - flight, 2);
  assert.equal(pair.serverEvents.filter((e) => e.type === "retransmit").length, 1);
});

Deno.test("dtls13: KeyUpdate from the client, asking for one back: both move on, data still flows", () => {
  const pair = new Pair({ dtls13: {} });
  pair.run();
  pair.pump();
  const client = pair.client as Connection13;
  assert.equal(client.updateKeys(true), true);
  pair.pump();
  const updates = (events: ConnectionEvent[]) =>
    events.flatMap((e) => e.type === "key_update" ? [`${e.direction}:${e.epoch}`] : []);
  assert.deepEqual(updates(pair.serverEvents).sort(), ["received:4", "sent:4"]);
  assert.deepEqual(updates(pair.clientEvents).sort(), ["received:4", "sent:4"]);
  pair.serverEvents.length = 0;
  pair.clientEvents.length = 0;
  assert.deepEqual(exchange(pair, "after the update"), ["ack:after the update"]);
  // A second one goes through as well.
  assert.equal(client.updateKeys(false), true);
  pair.pump();
  assert.deepEqual(exchange(pair, "again"), ["ack:again"]);
});

Deno.test("dtls13: the rekeying policy: after keyUpdateAfterRecords records each side updates its keys on its own", () => {
  const pair = new Pair({ dtls13: {}, keyUpdateAfterRecords: 5 });
  pair.run();
  pair.pump();
  const sent = (events: ConnectionEvent[]) =>
    events.flatMap((e) => e.type === "key_update" && e.direction === "sent" ? [e.epoch] : []);
  const client: number[] = [];
  const server: number[] = [];
  for (let i = 0; i < 12; i++) {
    pair.client.send(text.encode(`m${i}`));
    pair.pump();
    pair.server!.send(text.encode(`ack:m${i}`));
    pair.pump();
    assert.deepEqual(received(pair.clientEvents), [`ack:m${i}`]);
    client.push(...sent(pair.clientEvents.splice(0)));
    server.push(...sent(pair.serverEvents.splice(0)));
  }
  // 12 records each way at 5 a key: epochs 4 and 5 at least, in turn, and data never stopped.
  assert.ok(client.length >= 2 && server.length >= 2, `${client} / ${server}`);
  assert.deepEqual(client, client.map((_, i) => 4 + i));
  assert.deepEqual(server, server.map((_, i) => 4 + i));
  assert.ok(pair.client.isEstablished && pair.server!.isEstablished);
});

Deno.test("dtls13: a KeyUpdate whose ACK is lost is resent; records keep the old keys until it is acknowledged", () => {
  let drop = false;
  const pair = new Pair({ dtls13: {}, script: (d) => drop && d === "s2c" ? "drop" : "deliver" });
  pair.run();
  pair.pump();
  drop = true;
  (pair.client as Connection13).updateKeys(false);
  pair.pump();
  // No ACK came: the client still writes epoch 3, and the server reads it.
  drop = false;
  assert.deepEqual(exchange(pair, "old keys"), ["ack:old keys"]);
  assert.ok(pair.advance(), "the KeyUpdate's timer is set");
  pair.pump();
  assert.ok(pair.clientEvents.some((e) => e.type === "retransmit" && e.cause === "timeout"));
  assert.ok(
    pair.clientEvents.some((e) => e.type === "key_update" && e.direction === "sent"),
    "the resent KeyUpdate was acknowledged",
  );
  assert.deepEqual(exchange(pair, "new keys"), ["ack:new keys"]);
});

Deno.test("dtls13: close_notify both ways", () => {
  const pair = new Pair({ dtls13: {} });
  pair.run();
  pair.client.close();
  pair.pump();
  assert.ok(pair.server?.isClosed);
  const closed = pair.serverEvents.find((e) => e.type === "closed");
  assert.equal(closed?.type === "closed" && closed.cause, "peer_closed");
});

Deno.test("dtls13: a 1.2 client of a server that speaks 1.3 gets 1.2 with the downgrade sentinel; of a 1.2-only server, without", () => {
  for (const [versions, sentinel] of [[undefined, true], [["1.2"], false]] as const) {
    const pair = new Pair(versions === undefined ? {} : { versions: [...versions] });
    pair.run();
    assert.ok(pair.client.isEstablished);
    assert.equal(completed(pair.serverEvents)?.version, "DTLS 1.2");
    const hello = pair.wire.find((w) =>
      w.direction === "s2c" && w.datagram[0] === 22 && w.datagram[13] === 2
    )!.datagram;
    // ServerHello body at 13 + 12: version(2) random(32): the sentinel is random[24..32].
    const tail = hello.subarray(25 + 2 + 24, 25 + 2 + 32);
    assert.equal(
      new TextDecoder().decode(tail.subarray(0, 7)) === "DOWNGRD" && tail[7] === 1,
      sentinel,
    );
  }
});

Deno.test("dtls13: a client offering 1.3 without a PSK, to a server with no certificate, is served 1.2 without the sentinel (nobody downgraded it)", () => {
  const endpoint = new Pair({}).endpoint;
  const hello = (cookie: Uint8Array) =>
    encodeRecord(
      ContentType.Handshake,
      DTLS_1_2,
      0,
      cookie.length === 0 ? 0 : 1,
      encodeHandshakeMessage(
        HandshakeType.ClientHello,
        cookie.length === 0 ? 0 : 1,
        encodeClientHello({
          clientVersion: DTLS_1_2,
          random: new Uint8Array(32).fill(9),
          sessionId: new Uint8Array(0),
          cookie,
          cipherSuites: [0xc0a4],
          compressionMethods: new Uint8Array([0]),
          extensions: [{ type: 43, data: new Uint8Array([4, 0xfe, 0xfc, 0xfe, 0xfd]) }],
        }),
      ),
    );
  const first = endpoint.handleDatagram(hello(new Uint8Array(0)), PEER, 1_000_000);
  assert.equal(first.kind, "hello_verify_request");
  const verify = first.kind === "hello_verify_request" ? first.datagram : new Uint8Array(0);
  const [fragment] = parseHandshakeFragments(verify.subarray(13));
  const { cookie } = decodeHelloVerifyRequest(fragment!.body);
  const second = endpoint.handleDatagram(hello(cookie), PEER, 1_000_010);
  assert.equal(second.kind, "connection");
  const datagram = second.kind === "connection" ? second.connection.pollTransmit()! : undefined;
  const serverHello = parseHandshakeFragments(parseRecords(datagram!).records[0]!.fragment)[0]!;
  assert.equal(serverHello.msgType, HandshakeType.ServerHello);
  // ServerHello: version(2) random(32): the sentinel would be random[24..32].
  const tail = serverHello.body.subarray(2 + 24, 2 + 32);
  assert.notDeepEqual(tail, DOWNGRADE_SENTINEL_TLS12);
});

Deno.test("dtls13: a server that speaks 1.3 only refuses a 1.2 client with protocol_version", () => {
  const pair = new Pair({ versions: ["1.3"] });
  pair.run(5_000);
  assert.ok(!pair.client.isEstablished);
  assert.equal(pair.lastOutcome?.kind, "alert");
});

const CLIENT_CID = new Uint8Array([0xc1, 0xd0]);

Deno.test("dtls13: Connection IDs both ways: every protected record carries the other side's, and the client moves address", () => {
  const pair = new Pair({ dtls13: { connectionId: CLIENT_CID }, cidLength: 6 });
  pair.run();
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  const serverCid = pair.server!.connectionId!;
  assert.equal(serverCid.length, 6);
  assert.deepEqual(pair.client.connectionId, CLIENT_CID);
  for (const { direction, datagram } of pair.wire) {
    if (!isUnifiedHeader(datagram[0]!)) continue;
    assert.equal(datagram[0]! & 0x10, 0x10, "the C bit");
    const cid = direction === "s2c" ? CLIENT_CID : serverCid;
    assert.deepEqual(datagram.subarray(1, 1 + cid.length), cid, direction);
  }
  // A NAT rebinding: the client's next record comes from another port.
  pair.clientAddress = "127.0.0.1:50001";
  assert.deepEqual(exchange(pair, "from elsewhere"), ["ack:from elsewhere"]);
  assert.equal(
    pair.lastOutcome?.kind === "connection" && pair.lastOutcome.movedFrom,
    "127.0.0.1:50000",
  );
  assert.equal(pair.endpoint.get("127.0.0.1:50001"), pair.server);
});

Deno.test("dtls13: a client that offers no CID, or a server with none to give, uses none", () => {
  for (
    const options of [{ dtls13: {}, cidLength: 6 }, {
      dtls13: { connectionId: CLIENT_CID },
      cidLength: 0,
    }]
  ) {
    const pair = new Pair(options);
    pair.run();
    assert.ok(pair.client.isEstablished);
    assert.equal(pair.server!.connectionId, undefined);
    for (const { datagram } of pair.wire) {
      if (isUnifiedHeader(datagram[0]!)) assert.equal(datagram[0]! & 0x10, 0);
    }
    assert.deepEqual(exchange(pair, "x"), ["ack:x"]);
  }
});

Deno.test("dtls13: RequestConnectionId is answered with spare CIDs that route to the same connection, four at most", () => {
  const pair = new Pair({ dtls13: { connectionId: CLIENT_CID }, cidLength: 6 });
  pair.run();
  pair.pump();
  const before = pair.endpoint.connectionIdCount;
  assert.ok((pair.client as Connection13).requestConnectionIds(3));
  pair.pump();
  assert.equal(pair.endpoint.connectionIdCount, before + 3);
  assert.ok((pair.client as Connection13).requestConnectionIds(10));
  pair.pump();
  assert.equal(pair.endpoint.connectionIdCount, before + 4, "four spares at most");
  assert.deepEqual(exchange(pair, "still"), ["ack:still"]);
  pair.client.close();
  pair.pump();
  assert.ok(pair.server!.isClosed);
  // The shell removes a closed connection: every CID of it goes.
  pair.endpoint.remove(PEER);
  assert.equal(pair.endpoint.connectionIdCount, 0, "every CID forgotten with the connection");
});

Deno.test("dtls13: a record with our CID from elsewhere that does not authenticate moves nothing", () => {
  const pair = new Pair({ dtls13: { connectionId: CLIENT_CID }, cidLength: 6 });
  pair.run();
  pair.pump();
  const cid = pair.server!.connectionId!;
  const forged = new Uint8Array(60);
  forged[0] = 0x3f; // C, S, L, epoch 3
  forged.set(cid, 1);
  forged[1 + 6 + 2] = 0;
  forged[1 + 6 + 3] = 60 - 11;
  const outcome = pair.endpoint.handleDatagram(forged, "10.9.9.9:1", pair.now);
  assert.equal(outcome.kind, "connection");
  assert.equal(outcome.kind === "connection" && outcome.movedFrom, undefined);
  assert.equal(pair.endpoint.get(PEER), pair.server);
  assert.deepEqual(exchange(pair, "still here"), ["ack:still here"]);
});

Deno.test("dtls13: a gap in the server's flight is acknowledged at once", () => {
  // The ServerHello's first record is lost: what comes after it is a gap.
  let lost = false;
  const pair = new Pair({
    dtls13: {},
    serverMtu: 100,
    script: (direction, i) => {
      if (direction === "s2c" && i === 1 && !lost) {
        lost = true;
        return "drop";
      }
      return "deliver";
    },
  });
  pair.pump();
  const acks = pair.wire.filter((w) => w.direction === "c2s" && w.datagram[0] !== 22);
  // No keys yet (the ServerHello is missing): the ACK waits for them; the
  // records are kept in the list it will carry.
  assert.equal(acks.length, 0);
  pair.run(60_000, true);
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
});

Deno.test("dtls13: the key log gets the four traffic secrets of a completed handshake, none of a failed one", () => {
  const lines: string[] = [];
  const keyLog = (random: Uint8Array, secret: Uint8Array, label = "CLIENT_RANDOM") =>
    lines.push(`${label} ${toHex(random)} ${secret.length}`);
  const pair = new Pair({ server: { keyLog }, dtls13: {} });
  pair.run();
  assert.ok(pair.server?.isEstablished);
  // The client random of the ClientHello on the wire (record 13 + handshake 12 + version 2).
  const hello = pair.wire[0]!.datagram;
  const random = toHex(hello.subarray(13 + 12 + 2, 13 + 12 + 2 + 32));
  assert.deepEqual(lines, [
    `CLIENT_HANDSHAKE_TRAFFIC_SECRET ${random} 32`,
    `SERVER_HANDSHAKE_TRAFFIC_SECRET ${random} 32`,
    `CLIENT_TRAFFIC_SECRET_0 ${random} 32`,
    `SERVER_TRAFFIC_SECRET_0 ${random} 32`,
  ]);
  lines.length = 0;
  const failed = new Pair({ server: { keyLog }, dtls13: { psk: new Uint8Array(6).fill(9) } });
  failed.run();
  assert.ok(!failed.client.isEstablished);
  assert.deepEqual(lines, []);
});
