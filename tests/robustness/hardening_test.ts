/**
 * Regression tests for the findings of the hardening review, on the
 * sans-I/O engine with virtual time: each one failed before its fix. The
 * live-server form of the crash is tests/robustness/live_crash_test.ts; the
 * uniform answer to unknown identities is in tests/connection/handshake_test.ts.
 */
import assert from "node:assert/strict";
import { Connection } from "../../src/connection/connection.ts";
import {
  connectionConfig,
  MAX_CLIENT_HELLO_MESSAGE_SEQ,
  MAX_CLIENT_HELLO_SEQ,
} from "../../src/connection/endpoint.ts";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import { clientHelloParams, CookieAuthority } from "../../src/cookie/cookie.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import { encodeClientHello, HandshakeType } from "../../src/handshake/messages.ts";
import { ServerHandshake } from "../../src/handshake/server.ts";
import { BUFFER_OVERHEAD } from "../../src/memory/budget.ts";
import {
  ContentType,
  DTLS_1_0,
  DTLS_1_2,
  encodeRecord,
  parseRecords,
} from "../../src/record/header.ts";
import { converse, drain, testClient, testEndpoint, watchDrops } from "../helpers/drive.ts";
import { seededRandom } from "../helpers/random.ts";
import { serverPsk } from "../helpers/sim.ts";

const T0 = 1_000_000;
const encoder = new TextEncoder();

/** The ClientHello body and record of a client's first datagram. */
function firstHello(seed: string) {
  const datagram = testClient(seed, T0).pollTransmit()!;
  const record = parseRecords(datagram).records[0]!;
  return { datagram, record, body: parseHandshakeFragments(record.fragment)[0]!.body };
}

/** The client's ClientHello with the cookie, re-sent in record `seq` with `messageSeq`. */
function helloWithCookie(seed: string, peer: string, seq: number, messageSeq = 1) {
  const endpoint = testEndpoint({ handshakeRate: 0 }, seed);
  const client = testClient(seed, T0);
  const hvr = endpoint.handleDatagram(client.pollTransmit()!, peer, T0);
  assert.equal(hvr.kind, "hello_verify_request");
  client.handleDatagram(hvr.datagram, T0);
  const record = parseRecords(client.pollTransmit()!).records[0]!;
  const fragment = new Uint8Array(record.fragment);
  fragment[4] = messageSeq >> 8;
  fragment[5] = messageSeq & 0xff;
  return { endpoint, datagram: encodeRecord(record.type, record.version, 0, seq, fragment) };
}

/** Fires every timer of `connection` until it has none or `until` passes; returns its events. */
function runTimers(connection: Connection, until: number): ConnectionEvent[] {
  const events: ConnectionEvent[] = [];
  for (let due = connection.pollTimeout(); due !== undefined && due <= until;) {
    connection.handleTimeout(due);
    events.push(...drain(connection).events);
    due = connection.pollTimeout();
  }
  return events;
}

// ---- finding 1: sequence numbers at their limit --------------------------------------

Deno.test("finding 1: a ClientHello with the cookie in record 2^48-1 is dropped, not answered with a connection", () => {
  for (const seq of [2 ** 48 - 1, 2 ** 48 - 2, MAX_CLIENT_HELLO_SEQ + 1]) {
    const peer = "10.20.0.1:5000";
    const { endpoint, datagram } = helloWithCookie(`f1/${seq}`, peer, seq);
    const out = endpoint.handleDatagram(datagram, peer, T0);
    assert.deepEqual(out, { kind: "dropped", reason: "sequence_limit" }, `seq ${seq}`);
    assert.equal(endpoint.size, 0);
  }
  // The last sequence number we accept leaves 2^32 of our own: it is served.
  const peer = "10.20.0.2:5000";
  const { endpoint, datagram } = helloWithCookie("f1/max", peer, MAX_CLIENT_HELLO_SEQ);
  const out = endpoint.handleDatagram(datagram, peer, T0);
  assert.equal(out.kind, "connection");
});

Deno.test("finding 1: a ClientHello with message_seq near 2^16 is dropped; ours would overflow", () => {
  for (const messageSeq of [0xffff, 0xfffe, MAX_CLIENT_HELLO_MESSAGE_SEQ + 1]) {
    const peer = "10.20.0.3:5000";
    const { endpoint, datagram } = helloWithCookie(`f1m/${messageSeq}`, peer, 1, messageSeq);
    const out = endpoint.handleDatagram(datagram, peer, T0);
    assert.deepEqual(out, { kind: "dropped", reason: "sequence_limit" }, `${messageSeq}`);
  }
});

Deno.test("finding 1: a connection whose write sequence runs out closes without throwing, and its timers stay quiet", () => {
  const config = connectionConfig(nobleProvider, seededRandom("f1/exhaust"));
  const { body } = firstHello("f1/exhaust-client");
  for (const start of [2 ** 48 - 1, 2 ** 48 - 2, 2 ** 48 - 3, 2 ** 48 - 4]) {
    const connection = new Connection(config, T0, {
      driver: (host) => new ServerHandshake(host, serverPsk(), { body, messageSeq: 0 }),
      helloSeq: start,
    });
    connection.start(); // flight 4 is three records: from 2^48-3 on, they do not fit
    const { events, sent } = drain(connection);
    for (const datagram of sent) {
      for (const r of parseRecords(datagram).records) assert.ok(r.seq <= 2 ** 48 - 2);
    }
    // Whatever fitted, every later timer (retransmission, deadline) is harmless.
    const later = runTimers(connection, T0 + 120_000);
    assert.equal(connection.isClosed, true, `start ${start}`);
    const closed = [...events, ...later].find((e) => e.type === "closed");
    assert.ok(closed?.type === "closed" && closed.internal === undefined, `start ${start}`);
    assert.equal(connection.pollTimeout(), undefined);
  }
});

// ---- finding 3: no amplification from unauthenticated repeats -------------------------

/** An epoch-0 handshake record of `count` empty fragments of message `messageSeq`. */
function emptyFragments(seq: number, messageSeq: number, msgType: number, count: number) {
  const body = new Uint8Array(12 * count);
  for (let i = 0; i < count; i++) {
    body[12 * i] = msgType;
    body[12 * i + 3] = 40; // length 40, offset 0, fragment_length 0
    body[12 * i + 4] = messageSeq >> 8;
    body[12 * i + 5] = messageSeq & 0xff;
  }
  return encodeRecord(ContentType.Handshake, DTLS_1_2, 0, seq, body);
}

Deno.test("finding 3: spoofed epoch-0 fragments to an established peer get nothing and keep nothing alive", () => {
  const endpoint = testEndpoint({}, "f3/established");
  const peer = "10.20.1.1:5000";
  converse(endpoint, testClient("f3/established", T0), peer, T0);
  const server = endpoint.get(peer)!;
  assert.equal(server.isEstablished, true);
  drain(server);
  const heard = server.lastReceive;
  const datagram = emptyFragments(40, 2, HandshakeType.ClientKeyExchange, 98);
  assert.equal(datagram.length, 1189);
  endpoint.handleDatagram(datagram, peer, T0 + 5_000);
  assert.deepEqual(drain(server).sent, [], "no resend for an unauthenticated record");
  assert.equal(server.lastReceive, heard, "the idle timer is not refreshed");
});

Deno.test("finding 3: a half-open peer's repeats are answered at most once a second and with at most 3x their bytes", () => {
  const endpoint = testEndpoint({}, "f3/halfopen");
  const peer = "10.20.1.2:5000";
  converse(endpoint, testClient("f3/halfopen", T0), peer, T0, (_d, i) => i < 2);
  const server = endpoint.get(peer)!;
  drain(server);
  const drops = watchDrops(server);
  const bytesOut = (d: Uint8Array, now: number) => {
    endpoint.handleDatagram(d, peer, now);
    return drain(server).sent.reduce((n, s) => n + s.length, 0);
  };
  // 98 fragments in one datagram: one resend, within 3x the datagram.
  const packed = emptyFragments(50, 1, HandshakeType.ClientHello, 98);
  const first = bytesOut(packed, T0 + 100);
  assert.ok(first > 0 && first <= 3 * packed.length, `${first} bytes out`);
  assert.equal(bytesOut(emptyFragments(51, 1, HandshakeType.ClientHello, 98), T0 + 200), 0);
  // A repeat too small to pay for the flight gets nothing, even later.
  const tiny = emptyFragments(52, 1, HandshakeType.ClientHello, 1);
  assert.equal(bytesOut(tiny, T0 + 5_000), 0);
  assert.ok((drops.resend_limited ?? 0) >= 2);
  // A full-size repeat a second later is answered again.
  assert.ok(bytesOut(emptyFragments(53, 1, HandshakeType.ClientHello, 98), T0 + 5_000) > 0);
});

// ---- finding 4: early records are charged --------------------------------------------

Deno.test("finding 4: epoch-1 records before ChangeCipherSpec are charged; one address cannot hold more than its share", () => {
  const endpoint = testEndpoint({ handshakeRate: 0 }, "f4");
  const record = (seq: number) =>
    encodeRecord(ContentType.Handshake, DTLS_1_2, 1, seq, new Uint8Array(16_000));
  for (let i = 0; i < 300; i++) {
    const peer = `10.20.2.1:${3000 + i}`;
    converse(endpoint, testClient(`f4/${i}`, T0), peer, T0, (_d, n) => n < 2);
    for (let seq = 0; seq < 4; seq++) endpoint.handleDatagram(record(seq), peer, T0);
    if (i === 0) {
      // The first handshake's four records are held, copied once, and charged.
      assert.equal(endpoint.get(peer)!.bufferedBytes, 4 * (13 + 16_000 + BUFFER_OVERHEAD));
    }
  }
  assert.equal(endpoint.halfOpen, 300);
  // 300 x 64 KB would be 19 MB: the address is held to its 256 KiB share.
  assert.ok(endpoint.reassemblyBytesOf("10.20.2.1:1") <= 256 * 1024);
  assert.equal(endpoint.reassemblyBytes, endpoint.reassemblyBytesOf("10.20.2.1:1"));
  // Handshakes that end give their bytes back.
  for (let i = 0; i < 300; i++) endpoint.get(`10.20.2.1:${3000 + i}`)!.abort("test");
  endpoint.handleTimeouts(T0);
  for (let i = 0; i < 300; i++) endpoint.remove(`10.20.2.1:${3000 + i}`);
  assert.equal(endpoint.reassemblyBytes, 0);
});

// ---- finding 8: cookies bound to exactly one address and port -------------------------

Deno.test("finding 8: a cookie minted for 10.0.0.1:555 does not verify for 10.0.0.1:55 with the byte moved", () => {
  const cookies = new CookieAuthority({ provider: nobleProvider, random: seededRandom("f8") });
  const random = new Uint8Array(32).fill(7);
  random[31] = 1; // read as a session_id length once everything shifts by one byte
  const hello = (clientVersion: number, r: Uint8Array, sessionId: Uint8Array, cookie: Uint8Array) =>
    clientHelloParams(encodeClientHello({
      clientVersion,
      random: r,
      sessionId,
      cookie,
      cipherSuites: [0x00a8],
      compressionMethods: new Uint8Array([0]),
      extensions: [],
    }));
  const minted = cookies.mint(
    encoder.encode("10.0.0.1:555"),
    hello(DTLS_1_2, random, new Uint8Array(0), new Uint8Array(0)),
    T0,
  );
  // "...:555" fe fd R[0..31] 00  ==  "...:55" 35 fe fd R[0..30] 01 00
  const shifted = new Uint8Array(32);
  shifted[0] = 0xfd;
  shifted.set(random.subarray(0, 31), 1);
  const moved = hello(0x35fe, shifted, new Uint8Array([0]), minted);
  assert.equal(cookies.verify(encoder.encode("10.0.0.1:55"), moved, minted, T0), "invalid");
  // The honest pair still verifies.
  const honest = hello(DTLS_1_2, random, new Uint8Array(0), minted);
  assert.equal(cookies.verify(encoder.encode("10.0.0.1:555"), honest, minted, T0), "ok");
});

Deno.test("finding 8: a ClientHello below DTLS 1.2 gets protocol_version at once, statelessly and smaller", () => {
  const endpoint = testEndpoint({}, "f8/version");
  const { body } = firstHello("f8/version-client");
  for (const version of [DTLS_1_0, 0xfefe, 0x35fe, 0x0303]) {
    const changed = new Uint8Array(body);
    changed[0] = version >> 8;
    changed[1] = version & 0xff;
    const message = new Uint8Array(12 + changed.length);
    message[0] = HandshakeType.ClientHello;
    message[2] = changed.length >> 8;
    message[3] = changed.length & 0xff;
    message[10] = changed.length >> 8;
    message[11] = changed.length & 0xff;
    message.set(changed, 12);
    const datagram = encodeRecord(ContentType.Handshake, DTLS_1_0, 0, 0, message);
    const out = endpoint.handleDatagram(datagram, "10.20.3.1:5000", T0);
    assert.equal(out.kind, "alert", `version ${version.toString(16)}`);
    if (out.kind !== "alert") continue;
    assert.equal(out.description, "protocol_version");
    assert.ok(out.datagram.length < datagram.length);
    const alert = parseRecords(out.datagram).records[0]!;
    assert.deepEqual([...alert.fragment], [2, 70]);
    assert.equal(endpoint.size, 0);
  }
});
