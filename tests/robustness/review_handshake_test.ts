/**
 * Findings of the handshake/connection review, on the sans-I/O engine with
 * virtual time. Each test FAILS on the code it was written against and
 * states the guarantee it checks.
 */
import assert from "node:assert/strict";
import { connectionConfig, ServerEndpoint } from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import type { CryptoProvider } from "../../src/crypto/provider.ts";
import { encodeHandshakeMessage, parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import {
  decodeClientHello,
  encodeClientHello,
  encodePskClientKeyExchange,
  HandshakeType,
} from "../../src/handshake/messages.ts";
import { ContentType, DTLS_1_2, encodeRecord, parseRecords } from "../../src/record/header.ts";
import { converse, drain, testClient, testEndpoint } from "../helpers/drive.ts";
import { seededRandom } from "../helpers/random.ts";
import { IDENTITY, serverPsk } from "../helpers/sim.ts";

const T0 = 1_000_000;

const bytes = (ds: Uint8Array[]) => ds.reduce((n, d) => n + d.length, 0);

/**
 * Runs a handshake up to the client's final flight, which is captured, not
 * delivered: the server is half-open, waiting for ClientKeyExchange.
 */
function halfOpen(endpoint: ServerEndpoint, seed: string, peer: string, now = T0) {
  const client = testClient(seed, now);
  const hellos: Uint8Array[] = [];
  const finalFlight: Uint8Array[] = [];
  let index = 0;
  for (let round = 0; round < 10; round++) {
    for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
      if (index++ >= 2) {
        finalFlight.push(d);
        continue;
      }
      hellos.push(d);
      const out = endpoint.handleDatagram(d, peer, now);
      if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, now);
    }
    const server = endpoint.get(peer);
    if (server !== undefined) {
      for (let d = server.pollTransmit(); d; d = server.pollTransmit()) {
        client.handleDatagram(d, now);
      }
    }
    while (client.pollEvent());
  }
  const server = endpoint.get(peer)!;
  assert.ok(server !== undefined && !server.isEstablished && !server.isClosed);
  assert.ok(finalFlight.length > 0);
  return { client, server, hello: hellos[1]!, finalFlight };
}

/** A datagram of one epoch-0 handshake record holding `messages` back to back. */
function epoch0(seq: number, ...messages: Uint8Array[]): Uint8Array {
  const n = messages.reduce((a, m) => a + m.length, 0);
  const body = new Uint8Array(n);
  let at = 0;
  for (const m of messages) body.set(m, at), at += m.length;
  return encodeRecord(ContentType.Handshake, DTLS_1_2, 0, seq, body);
}

/** One handshake fragment: header and `fragment` bytes. */
function fragment(
  msgType: number,
  length: number,
  messageSeq: number,
  offset: number,
  body: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  out[0] = msgType;
  out[1] = length >> 16, out[2] = (length >> 8) & 0xff, out[3] = length & 0xff;
  out[4] = messageSeq >> 8, out[5] = messageSeq & 0xff;
  out[6] = offset >> 16, out[7] = (offset >> 8) & 0xff, out[8] = offset & 0xff;
  out[9] = body.length >> 16, out[10] = (body.length >> 8) & 0xff, out[11] = body.length & 0xff;
  out.set(body, 12);
  return out;
}

// ---- R1: epoch-0 bytes delivered as epoch 1 ----------------------------------------------

Deno.test("review R1: an unauthenticated epoch-0 message buffered during the handshake is not delivered as epoch 1 once established", () => {
  const endpoint = testEndpoint({}, "r1");
  const peer = "10.30.0.1:5000";
  const { server, finalFlight } = halfOpen(endpoint, "r1", peer);
  drain(server);
  // A blind spoofer's 25-byte datagram: a complete, empty "Finished" with
  // message_seq 4 (the client's CKE is 2, its Finished 3). It is buffered
  // as a future message of the reassembly window. (Its record number is
  // kept low: a high one would push the client's own records out of the
  // epoch-0 replay window, another way for a spoofer to stall a handshake.)
  const spoof = epoch0(10, encodeHandshakeMessage(HandshakeType.Finished, 4, new Uint8Array(0)));
  assert.equal(spoof.length, 25);
  endpoint.handleDatagram(spoof, peer, T0 + 10);
  assert.equal(server.isClosed, false);
  drain(server);
  // The honest final flight arrives: the handshake completes, and then the
  // spoofed message is handed to the driver in the state "done" with epoch 1,
  // as if the client had sent it under the new keys.
  for (const d of finalFlight) endpoint.handleDatagram(d, peer, T0 + 20);
  const { events } = drain(server);
  assert.ok(events.some((e) => e.type === "handshake_complete"), "the handshake completes");
  const alerts = events.filter((e) => e.type === "alert" && e.direction === "sent");
  assert.deepEqual(alerts, [], "no alert answers the spoofed epoch-0 message");
  assert.equal(server.isClosed, false, "the established connection survives the spoof");
  // and its timers stay harmless afterwards
  endpoint.handleTimeouts(T0 + 120_000);
  assert.equal(server.isEstablished, true);
});

// ---- R2: the ClientHello a half-open connection holds is not charged -------------------

Deno.test("review R2: a half-open connection does not keep the peer's ClientHello until ClientKeyExchange", () => {
  // A provider that notes the largest input hashed (the transcript hash).
  let largestHash = 0;
  const provider: CryptoProvider = {
    ...nobleProvider,
    hash(hash, data) {
      largestHash = Math.max(largestHash, data.length);
      return nobleProvider.hash(hash, data);
    },
  };
  const endpoint = new ServerEndpoint({
    connection: connectionConfig(provider, seededRandom("r2")),
    psk: serverPsk(),
    maxConnections: 100,
    idleTimeoutMs: 600_000,
  });
  const peer = "10.30.1.1:5000";
  const client = testClient("r2", T0);
  const hvr = endpoint.handleDatagram(client.pollTransmit()!, peer, T0);
  assert.equal(hvr.kind, "hello_verify_request");
  client.handleDatagram(hvr.datagram, T0);
  // The client's ClientHello with the cookie, with a 16 000-byte unknown
  // extension added: the cookie does not cover extensions, so it verifies.
  const record = parseRecords(client.pollTransmit()!).records[0]!;
  const f = parseHandshakeFragments(record.fragment)[0]!;
  const hello = decodeClientHello(f.body);
  hello.extensions.push({ type: 0xfe00, data: new Uint8Array(16_000) });
  const body = encodeClientHello(hello);
  const datagram = encodeRecord(
    ContentType.Handshake,
    DTLS_1_2,
    0,
    record.seq,
    encodeHandshakeMessage(HandshakeType.ClientHello, f.messageSeq, body),
  );
  const out = endpoint.handleDatagram(datagram, peer, T0);
  assert.equal(out.kind, "connection");
  const server = endpoint.get(peer)!;
  drain(server);
  // What this peer makes us hold while we wait for its next flight.
  const charged = endpoint.reassemblyBytes;
  // 20 s later (still half-open) its ClientKeyExchange comes: the server
  // hashes a transcript that still has the whole ClientHello in it, i.e. it
  // held those bytes all along.
  largestHash = 0;
  const cke = encodeHandshakeMessage(
    HandshakeType.ClientKeyExchange,
    f.messageSeq + 1,
    encodePskClientKeyExchange(IDENTITY),
  );
  endpoint.handleDatagram(epoch0(record.seq + 1, cke), peer, T0 + 20_000);
  // Nothing hashed at ClientKeyExchange spans the ClientHello: the transcript
  // hashed it as it came and kept none of it.
  assert.ok(largestHash < body.length, `hashed ${largestHash} bytes at once, 20 s later`);
  assert.ok(charged < 1_000, `${charged} bytes charged for a half-open handshake`);
});

// ---- R3: a full shared budget refuses even messages that are never held -----------------

Deno.test("review R3: two sources filling the shared reassembly budget do not stop a third peer's unfragmented handshake", () => {
  const perSource = 65_536;
  const endpoint = testEndpoint({
    handshakeRate: 0,
    maxReassemblyPerSource: perSource,
    maxReassemblyTotal: 2 * perSource,
  }, "r3");
  // Each attacker source: one half-open handshake holding partial fragments of
  // future messages, exactly up to its share (4 x 16 000 + 1 056 bytes plus
  // 96 of overhead each = 65 536). Nothing here is fatal for its connection.
  for (const host of ["10.30.2.1", "10.30.2.2"]) {
    const peer = `${host}:4000`;
    const { server } = halfOpen(endpoint, `r3/${host}`, peer);
    let seq = 500;
    for (let messageSeq = 3; messageSeq <= 6; messageSeq++) {
      endpoint.handleDatagram(
        epoch0(seq++, fragment(20, 16_384, messageSeq, 0, new Uint8Array(16_000))),
        peer,
        T0 + 1,
      );
    }
    endpoint.handleDatagram(
      epoch0(seq++, fragment(20, 16_384, 7, 0, new Uint8Array(1_056))),
      peer,
      T0 + 1,
    );
    assert.equal(server.isClosed, false);
    assert.equal(endpoint.reassemblyBytesOf(peer), perSource);
  }
  assert.equal(endpoint.reassemblyBytes, 2 * perSource, "the attackers fill the budget");
  // An honest client elsewhere: every one of its messages arrives whole, in
  // one fragment, and would be handed out at once, never held.
  const honest = testClient("r3/honest", T0 + 2);
  const peer = "10.30.2.3:4000";
  let now = T0 + 2;
  for (let i = 0; i < 20 && !honest.isEstablished && !honest.isClosed; i++) {
    converse(endpoint, honest, peer, now);
    const due = [honest.pollTimeout(), endpoint.get(peer)?.pollTimeout()]
      .filter((t): t is number => t !== undefined);
    if (due.length === 0) break;
    now = Math.min(...due);
    honest.handleTimeout(now);
    endpoint.handleTimeouts(now);
    if (now > T0 + 25_000) break; // the attackers' deadline is 30 s; they would just come back
  }
  assert.equal(honest.isEstablished, true, "the honest handshake completes");
});

// ---- R4: the timer and peer repeats both resend within one interval --------------------

Deno.test("review R4: a peer's repeat right after a timer retransmission (or the reverse) does not send the flight twice in one interval", () => {
  for (const order of ["timer_then_peer", "peer_then_timer"] as const) {
    const endpoint = testEndpoint({}, `r4/${order}`);
    const peer = "10.30.3.1:5000";
    const { server, hello } = halfOpen(endpoint, `r4/${order}`, peer);
    drain(server);
    const deadline = server.pollTimeout()!;
    const record = parseRecords(hello).records[0]!;
    // The client's repeated ClientHello, in a fresh record (a real repeat).
    const repeat = encodeRecord(record.type, record.version, 0, record.seq + 7, record.fragment);
    const sends: number[] = [];
    const note = (now: number) => {
      for (const e of drain(server).events) if (e.type === "retransmit") sends.push(now);
    };
    if (order === "timer_then_peer") {
      endpoint.handleTimeouts(deadline);
      note(deadline);
      endpoint.handleDatagram(repeat, peer, deadline + 1);
      note(deadline + 1);
    } else {
      endpoint.handleDatagram(repeat, peer, deadline - 1);
      note(deadline - 1);
      endpoint.handleTimeouts(deadline);
      note(deadline);
    }
    assert.ok(sends.length >= 1);
    assert.equal(sends.length, 1, `${order}: flight sent at ${sends.map((t) => t - T0)} ms`);
  }
});

// ---- R5: a resend plus an alert from one unauthenticated datagram over 3x --------------

Deno.test("review R5: one unauthenticated datagram gets at most 3x its bytes back, resend and alert together", () => {
  const endpoint = testEndpoint({}, "r5");
  const peer = "10.30.4.1:5000";
  // The size of flight 4, from a twin handshake (same seeds, same flight).
  const twin = testEndpoint({}, "r5");
  const probe = halfOpen(twin, "r5", peer);
  probe.server.handleTimeout(probe.server.pollTimeout()!);
  const flight = bytes(drain(probe.server).sent);

  const { server } = halfOpen(endpoint, "r5", peer);
  drain(server);
  // One record: an old ClientHello fragment (a repeat: resend, if the flight is
  // at most 3x the datagram), then an empty Finished with message_seq 2 (out
  // of order: unexpected_message). Sized so the flight alone just fits in 3x.
  const size = Math.ceil(flight / 3);
  const pad = size - 13 - 12 - 12;
  assert.ok(pad >= 0 && pad <= 40);
  const datagram = epoch0(
    700,
    fragment(HandshakeType.ClientHello, 40, 1, 0, new Uint8Array(pad)),
    encodeHandshakeMessage(HandshakeType.Finished, 2, new Uint8Array(0)),
  );
  assert.equal(datagram.length, size);
  endpoint.handleDatagram(datagram, peer, T0 + 100);
  const out = bytes(drain(server).sent);
  assert.ok(out > 0);
  assert.ok(out <= 3 * datagram.length, `${out} bytes out for ${datagram.length} in`);
});

// ---- R6: an unknown identity's key is not shaped like a real one ------------------------

Deno.test("review R6: the server's key schedule for an unknown identity looks like a known identity's with a wrong key", () => {
  const keyLengths = (identity: Uint8Array, psk: Uint8Array) => {
    const lengths: number[] = [];
    const provider: CryptoProvider = {
      ...nobleProvider,
      hmac(hash, key) {
        lengths.push(key.length);
        return nobleProvider.hmac(hash, key);
      },
    };
    const endpoint = new ServerEndpoint({
      connection: connectionConfig(provider, seededRandom("r6")),
      psk: serverPsk(),
      maxConnections: 100,
      idleTimeoutMs: 600_000,
    });
    converse(endpoint, testClient("r6", T0, { identity, psk }), "10.30.5.1:5000", T0);
    return lengths;
  };
  // The server's key is 6 bytes: a known identity with a wrong key runs the
  // PRF keyed with a 16-byte premaster; an unknown one with a 68-byte one
  // (32 random bytes), past SHA-256's 64-byte block, so HMAC hashes it first.
  const wrongKey = keyLengths(IDENTITY, new Uint8Array(6).fill(9));
  const unknown = keyLengths(new TextEncoder().encode("nobody"), new Uint8Array(6).fill(9));
  assert.deepEqual(unknown, wrongKey);
});
