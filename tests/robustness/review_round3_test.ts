/**
 * Findings of the adversarial review of the round-2 fixes (82a41c3, 0c59e91):
 * the per-address list of used cookies, the half-open restart path, epoch 0's
 * RecentSequences. Each test FAILS on the code as reviewed (cd2d7d7).
 * Sans-I/O engine on virtual time; deterministic.
 */
import assert from "node:assert/strict";
import { ContentType, DTLS_1_2, encodeRecord } from "../../src/record/header.ts";
import { encodeClientHello, HandshakeType } from "../../src/handshake/messages.ts";
import { encodeHandshakeMessage } from "../../src/handshake/fragments.ts";
import {
  converse,
  drain,
  nextMessageSeq,
  observedSession,
  testClient,
  testEndpoint,
  upToFinalFlight,
  watchDrops,
} from "../helpers/drive.ts";

const T0 = 1_000_000;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---- F1: a cookie replay replaces a re-created association ---------------------------------

Deno.test("review round 3 F1: a replayed ClientHello does not replace an association re-created after the previous one closed", () => {
  const endpoint = testEndpoint({}, "round3/f1");
  const peer = "10.70.0.1:5000";
  // First session from this address and port; an observer keeps its
  // ClientHello with the cookie. The client ends the session (close_notify);
  // the shell forgets the entry, and with it the list of cookies this
  // address used.
  const seen = observedSession(endpoint, "round3/f1/first", peer, T0, T0 + 1_000);
  // The client comes back from the same port a few seconds later.
  const second = testClient("round3/f1/second", T0 + 5_000);
  converse(endpoint, second, peer, T0 + 5_000);
  const live = endpoint.get(peer)!;
  assert.equal(second.isEstablished, true);
  assert.equal(live.isEstablished, true);
  drain(live);
  // The observer replays the first session's ClientHello: its cookie is
  // still valid (2 min) and the new entry's list starts empty.
  const out = endpoint.handleDatagram(seen[1]!, peer, T0 + 20_000);
  assert.equal(live.isClosed, false, "the live association was aborted by a replay");
  assert.equal(out.kind, "hello_verify_request");
});

// ---- F2: the ninth-oldest cookie is forgotten within its lifetime ---------------------------

Deno.test("review round 3 F2: a cookie replayed after eight restarts within its lifetime does not replace the association", () => {
  const endpoint = testEndpoint({}, "round3/f2");
  const peer = "10.70.1.1:5000";
  const seen: Uint8Array[] = [];
  const first = testClient("round3/f2/0", T0);
  converse(endpoint, first, peer, T0, (d) => {
    seen.push(d.slice());
    return true;
  });
  assert.equal(first.isEstablished, true);
  // A client in a crash loop: eight restarts 5 s apart (40 s, well inside
  // the cookie's 120 s life).
  for (let i = 1; i <= 8; i++) {
    const now = T0 + i * 5_000;
    const client = testClient(`round3/f2/${i}`, now);
    converse(endpoint, client, peer, now);
    assert.equal(client.isEstablished, true);
  }
  const live = endpoint.get(peer)!;
  drain(live);
  const out = endpoint.handleDatagram(seen[1]!, peer, T0 + 50_000);
  assert.equal(live.isClosed, false, "the live association was aborted by a replay");
  assert.equal(out.kind, "hello_verify_request");
});

// ---- F3: noise that is "used" shadows the peer's own epoch-0 records -----------------------

Deno.test("review round 3 F3: spoofed epoch-0 warning alerts at the client's next sequence numbers do not make the server drop its records", () => {
  const endpoint = testEndpoint({}, "round3/f3");
  const peer = "10.70.2.1:5000";
  const client = testClient("round3/f3", T0);
  const { finalFlight } = upToFinalFlight(endpoint, client, peer, T0);
  const server = endpoint.get(peer)!;
  drain(server);
  // The client's records so far: ClientHellos at 0 and 1; its final flight
  // uses 2 and 3 (and 4, 5, ... when resent). One spoofed 480-byte datagram:
  // 32 warning alerts (user_canceled) at 2..33. A warning alert is handled
  // without a drop, so each counts as "used" and its number is remembered.
  const noise = [];
  for (let seq = 2; seq < 34; seq++) {
    noise.push(encodeRecord(ContentType.Alert, DTLS_1_2, 0, seq, new Uint8Array([1, 90])));
  }
  endpoint.handleDatagram(concat(noise), peer, T0 + 1);
  assert.equal(server.isClosed, false);
  drain(server);
  // The client's real ClientKeyExchange and ChangeCipherSpec are now
  // "replays"; the handshake stalls until its deadline (every resend of the
  // flight lands on a remembered number too).
  const drops = watchDrops(server);
  endpoint.handleDatagram(finalFlight, peer, T0 + 2);
  drain(server);
  assert.equal(drops.replay, undefined, `${drops.replay} of the client's records dropped`);
  assert.equal(server.isEstablished, true);
});

// ---- F4: a spoofed ClientHello on a half-open association reflects an HVR that kills the client

function spoofedClientHello(messageSeq: number, recordSeq: number): Uint8Array {
  const body = encodeClientHello({
    clientVersion: DTLS_1_2,
    random: new Uint8Array(32).fill(0xaa),
    sessionId: new Uint8Array(0),
    cookie: new Uint8Array(0),
    cipherSuites: [0x00a8],
    compressionMethods: new Uint8Array([0]),
    extensions: [],
  });
  return encodeRecord(
    ContentType.Handshake,
    DTLS_1_2,
    0,
    recordSeq,
    encodeHandshakeMessage(HandshakeType.ClientHello, messageSeq, body),
  );
}

Deno.test("review round 3 F4: a spoofed ClientHello on a half-open association does not end the real client's handshake", () => {
  const endpoint = testEndpoint({}, "round3/f4");
  const peer = "10.70.3.1:5000";
  const client = testClient("round3/f4", T0);
  // The client has sent its final flight (in transit); the server is half-open.
  const { finalFlight, received } = upToFinalFlight(endpoint, client, peer, T0);
  const server = endpoint.get(peer)!;
  drain(server);
  // A blind spoofer sends a 67-byte ClientHello "from" the client, with a new
  // random and the message_seq the client expects next (small: a handful of
  // guesses cover it). It now takes the stateless path: the server answers it
  // with a HelloVerifyRequest to the real client, echoing that message_seq.
  const out = endpoint.handleDatagram(
    spoofedClientHello(nextMessageSeq(received), 1_000),
    peer,
    T0 + 1,
  );
  if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, T0 + 1);
  const events = drain(client).events;
  // The client takes it as the next handshake message, unexpected in
  // await_change_cipher_spec: unexpected_message, closed. The server then
  // completes with a client that is gone.
  endpoint.handleDatagram(finalFlight, peer, T0 + 2);
  for (const d of drain(server).sent) client.handleDatagram(d, T0 + 3);
  assert.equal(
    client.isClosed,
    false,
    `client: ${
      events.map((e) => e.type === "closed" ? `closed (${e.reason})` : e.type).join(", ")
    }`,
  );
  assert.equal(client.isEstablished, true);
});

// ---- F5: a late copy of the first ClientHello still makes both sides resend -----------------

Deno.test("review round 3 F5: a late network copy of the first ClientHello does not make either side resend its flight", () => {
  const endpoint = testEndpoint({}, "round3/f5");
  const peer = "10.70.4.1:5000";
  const client = testClient("round3/f5", T0);
  const { finalFlight, sent } = upToFinalFlight(endpoint, client, peer, T0);
  const server = endpoint.get(peer)!;
  drain(server);
  // The network duplicated the first ClientHello (no cookie, record 0); the
  // copy arrives late, while the client's final flight is in transit. Its
  // random is the association's, so it reaches the connection; record 0 was
  // never marked used (only the verified ClientHello's record 1 was), and
  // message_seq 0 is "old": the server resends flight 4 ...
  const resends: string[] = [];
  endpoint.handleDatagram(sent[0]!, peer, T0 + 50);
  const s = drain(server);
  for (const e of s.events) if (e.type === "retransmit") resends.push("server");
  // ... and the client, having sent its final flight, takes the repeated
  // ServerHello as a repeat and resends that.
  for (const d of s.sent) client.handleDatagram(d, T0 + 60);
  for (const e of drain(client).events) if (e.type === "retransmit") resends.push("client");
  endpoint.handleDatagram(finalFlight, peer, T0 + 70);
  assert.deepEqual(resends, [], `flights resent by ${resends.join(", ")}`);
});
