/**
 * Findings of the adversarial review of the round-3 fixes (68958dd): epoch 0's
 * repeat floor, the endpoint's table of used cookies, the "live half-open"
 * rule. Each test FAILS on the code as reviewed (68958dd).
 * Sans-I/O engine on virtual time; deterministic.
 */
import assert from "node:assert/strict";
import type { Association } from "../../src/connection/association.ts";
import type { ServerEndpoint } from "../../src/connection/endpoint.ts";
import { ContentType, DTLS_1_2, encodeRecord, parseRecords } from "../../src/record/header.ts";
import {
  AlertDescription,
  AlertLevel,
  decodeHelloVerifyRequest,
  encodeAlert,
  encodeClientHello,
  HandshakeType,
} from "../../src/handshake/messages.ts";
import { encodeHandshakeMessage, parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import {
  converse,
  drain,
  nextMessageSeq,
  observedSession,
  testClient,
  testEndpoint,
  upToFinalFlight,
  upToLostFlight4,
} from "../helpers/drive.ts";

const T0 = 1_000_000;

/** A ClientHello a blind spoofer makes: its own random, no cookie. */
function spoofedClientHello(
  messageSeq: number,
  recordSeq: number,
  cookie: Uint8Array = new Uint8Array(0),
  fill = 0xaa,
): Uint8Array {
  const body = encodeClientHello({
    clientVersion: DTLS_1_2,
    random: new Uint8Array(32).fill(fill),
    sessionId: new Uint8Array(0),
    cookie,
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

/** 13 bytes of epoch-0 noise: a record of an unknown content type, no body. */
function noise(seq: number): Uint8Array {
  return encodeRecord(99, DTLS_1_2, 0, seq, new Uint8Array(0));
}

function closedReasons(events: { type: string; reason?: string }[]): string {
  return events.map((e) => e.type === "closed" ? `closed (${e.reason})` : e.type).join(", ");
}

// ---- F1: the round-3 F4 window is still open once the server is established -------------

Deno.test("review round 4 F1: a spoofed ClientHello after the server completed does not end the client still waiting for the server's Finished", () => {
  const endpoint = testEndpoint({}, "round4/f1");
  const peer = "10.80.0.1:5000";
  const client = testClient("round4/f1", T0);
  const { finalFlight, received } = upToFinalFlight(endpoint, client, peer, T0);
  const server = endpoint.get(peer)!;
  drain(server);
  // The client's final flight arrives: the server is established and sends
  // its ChangeCipherSpec and Finished, which are lost (or merely in transit).
  endpoint.handleDatagram(finalFlight, peer, T0 + 10);
  assert.equal(server.isEstablished, true);
  drain(server);
  assert.equal(client.isEstablished, false);
  // A blind spoofer's 67-byte ClientHello "from" the client, new random,
  // message_seq the client expects next. The association is established, so
  // "handshake_in_progress" does not apply: the server answers with a
  // HelloVerifyRequest to the real client, which still reads epoch 0.
  const out = endpoint.handleDatagram(
    spoofedClientHello(nextMessageSeq(received), 1_000),
    peer,
    T0 + 20,
  );
  if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, T0 + 30);
  const events = drain(client).events;
  // The client's timer resends its final flight; the server answers with its own.
  if (!client.isClosed) {
    const at = client.pollTimeout()!;
    client.handleTimeout(at);
    for (const d of drain(client).sent) endpoint.handleDatagram(d, peer, at);
    for (const d of drain(server).sent) client.handleDatagram(d, at + 10);
  }
  assert.equal(client.isClosed, false, `client: ${closedReasons(events)}`);
  assert.equal(client.isEstablished, true);
});

// ---- F2: ... and while the server has not heard from the client for a second -------------

Deno.test("review round 4 F2: a spoofed ClientHello while the client's final flight is being retransmitted does not end its handshake", () => {
  const endpoint = testEndpoint({}, "round4/f2");
  const peer = "10.80.1.1:5000";
  const client = testClient("round4/f2", T0);
  const { finalFlight, received } = upToFinalFlight(endpoint, client, peer, T0);
  const server = endpoint.get(peer)!;
  drain(server);
  // The client's final flight is lost; its timer fires (0.75-1 s) and the
  // retransmission is lost too; the next one is due 1.5-2 s later. The
  // server last heard from the client at T0 (its ClientHello).
  void finalFlight;
  let now = client.pollTimeout()!;
  client.handleTimeout(now);
  drain(client);
  const spoofAt = Math.max(now, T0 + 1_000);
  assert.ok(
    spoofAt < client.pollTimeout()!,
    "the spoof comes before the client's next retransmission",
  );
  const out = endpoint.handleDatagram(
    spoofedClientHello(nextMessageSeq(received), 1_000),
    peer,
    spoofAt,
  );
  if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, spoofAt + 10);
  const events = drain(client).events;
  now = client.pollTimeout() ?? spoofAt + 2_000;
  client.handleTimeout(now);
  for (const d of drain(client).sent) endpoint.handleDatagram(d, peer, now);
  for (const d of drain(server).sent) client.handleDatagram(d, now + 10);
  assert.equal(client.isClosed, false, `client: ${closedReasons(events)} (server: ${out.kind})`);
  assert.equal(client.isEstablished, true);
});

// ---- F3: anyone's epoch-0 noise keeps a dead half-open association "live" ----------------

/**
 * Runs a restarted client at `peer` on virtual time until it is established
 * or gives up, or `until`: its datagrams to the endpoint and back, the
 * endpoint's timers, and what the endpoint sends to `peer` (the old
 * association's retransmissions too, unless `deliverOld` is false). With
 * `noiseEveryMs`, a spoofer sends one epoch-0 noise record "from" `peer`
 * that often. Returns what became of the client's datagrams.
 */
function runRestart(
  endpoint: ServerEndpoint,
  peer: string,
  restarted: Association,
  start: number,
  until: number,
  options: { noiseEveryMs?: number; deliverOld?: boolean } = {},
): { now: number; log: string[] } {
  const first = endpoint.get(peer);
  let now = start;
  let nextNoise = options.noiseEveryMs === undefined ? Infinity : start;
  const log: string[] = [];
  while (!restarted.isEstablished && !restarted.isClosed && now < until) {
    for (; nextNoise <= now; nextNoise += options.noiseEveryMs!) {
      endpoint.handleDatagram(noise(nextNoise - start), peer, nextNoise);
    }
    for (let d = restarted.pollTransmit(); d; d = restarted.pollTransmit()) {
      const out = endpoint.handleDatagram(d, peer, now);
      log.push(`+${now - start} ${out.kind === "dropped" ? out.reason : out.kind}`);
      if (out.kind === "hello_verify_request") restarted.handleDatagram(out.datagram, now);
    }
    const server = endpoint.get(peer);
    if (server !== undefined) {
      const old = server === first;
      for (let d = server.pollTransmit(); d; d = server.pollTransmit()) {
        if (old && options.deliverOld === false) continue;
        if (old) log.push(`+${now - start} old association's flight`);
        restarted.handleDatagram(d, now);
      }
      while (server.pollEvent());
    }
    for (let e = restarted.pollEvent(); e; e = restarted.pollEvent()) {
      if (e.type === "closed") log.push(`+${now - start} client closed: ${e.reason}`);
    }
    if (restarted.isEstablished || restarted.isClosed) break;
    const timers = [restarted.pollTimeout(), nextNoise];
    for (const { connection: c } of endpoint.entries()) timers.push(c.pollTimeout());
    now = Math.max(now, Math.min(...timers.filter((t): t is number => t !== undefined)));
    restarted.handleTimeout(now);
    endpoint.handleTimeouts(now);
  }
  return { now, log };
}

Deno.test("review round 4 F3: spoofed epoch-0 noise does not lock a restarted client out of a dead half-open association", () => {
  const endpoint = testEndpoint({}, "round4/f3");
  const peer = "10.80.2.1:5000";
  // A client gets as far as its ClientHello with the cookie, then crashes:
  // the server holds a half-open association until its 30 s deadline.
  const dead = testClient("round4/f3/dead", T0);
  upToFinalFlight(endpoint, dead, peer, T0);
  drain(endpoint.get(peer)!);
  // It restarts on the same port five seconds later (new random). Alone it
  // is in at its first ClientHello: the old association is quiet.
  // But a blind spoofer who knows the address and port sends one 13-byte
  // epoch-0 record of an unknown type every 900 ms: it is dropped as noise,
  // but first counts as hearing from the peer (lastReceive), so the dead
  // association stays "live" and every ClientHello of the restarted client
  // is dropped (handshake_in_progress) until the old one's deadline.
  // (The old association's retransmissions are kept from the client here:
  // F4 is about those.)
  const restarted = testClient("round4/f3/restarted", T0 + 5_000);
  const { now, log } = runRestart(endpoint, peer, restarted, T0 + 5_000, T0 + 15_000, {
    noiseEveryMs: 900,
    deliverOld: false,
  });
  assert.equal(
    restarted.isEstablished,
    true,
    `restarted client ${restarted.isClosed ? "gave up" : "not in"} ${
      now - T0 - 5_000
    } ms after it started: ${log.join(", ")}`,
  );
});

// ---- F4: a client restarted within a second takes the dead association's ServerHello -------

Deno.test("review round 4 F4: a client restarted within a second of its ClientHello completes its new handshake", () => {
  const endpoint = testEndpoint({}, "round4/f4");
  const peer = "10.80.3.1:5000";
  // A client sends its ClientHello with the cookie and crashes; the server's
  // answer (flight 4) is lost with it. No attacker anywhere.
  const dead = testClient("round4/f4/dead", T0);
  upToFinalFlight(endpoint, dead, peer, T0);
  drain(endpoint.get(peer)!);
  // It restarts on the same port 300 ms later. Its first ClientHello is
  // dropped (the old association is "live"), so it waits for its timer in
  // await_server_hello; meanwhile the old association's timer resends its
  // flight 4 to the port, which the restarted client buffers (message_seq 1
  // onwards is "future" before a HelloVerifyRequest). Its next ClientHello
  // gets a HelloVerifyRequest (message_seq 0), the client moves to
  // message_seq 1 and takes the OLD association's buffered ServerHello:
  // keys that do not match the new association's, bad_record_mac.
  const restarted = testClient("round4/f4/restarted", T0 + 300);
  const { now, log } = runRestart(endpoint, peer, restarted, T0 + 300, T0 + 60_000);
  assert.equal(
    restarted.isEstablished,
    true,
    `restarted client ${restarted.isClosed ? "failed" : "not in"} at +${now - T0 - 300} ms: ${
      log.join(", ")
    }`,
  );
});

// ---- F5: one spoofed record numbered 2^48-1 turns epoch-0 repeats off for good -----------

Deno.test("review round 4 F5: a spoofed epoch-0 record numbered 2^48-1 does not stop the server answering the client's repeated ClientHello", () => {
  const endpoint = testEndpoint({}, "round4/f5");
  const peer = "10.80.4.1:5000";
  const client = testClient("round4/f5", T0);
  const server = upToLostFlight4(endpoint, client, peer, T0);
  // A blind spoofer sends one 13-byte epoch-0 record, unknown type, numbered
  // 2^48-1. It is dropped as noise, but first raises #epoch0Top.
  endpoint.handleDatagram(noise(2 ** 48 - 1), peer, T0 + 10);
  // The server's timer resends flight 4 (lost again): the repeat floor is
  // now 2^48-1, and no epoch-0 record can ever be numbered above it.
  const serverTimer = server.pollTimeout()!;
  endpoint.handleTimeouts(serverTimer);
  assert.ok(drain(server).events.some((e) => e.type === "retransmit"));
  // The client's timer resends its ClientHello in a new record (seq 2); it
  // arrives after the server's once-a-second limit has passed.
  const clientTimer = client.pollTimeout()!;
  client.handleTimeout(clientTimer);
  const repeat = drain(client).sent;
  assert.equal(repeat.length, 1);
  const at = Math.max(clientTimer, serverTimer + 1_000);
  endpoint.handleDatagram(repeat[0]!, peer, at);
  const answered = drain(server).events.filter((e) => e.type === "retransmit");
  assert.equal(
    answered.length,
    1,
    "the client's repeated ClientHello (record 2) was not taken for a repeat: its flight 4 waits for the server's timer",
  );
});

// ---- F6: the used-cookie table forgets a live association's cookie under a handshake flood --

/** The cookie of a HelloVerifyRequest datagram. */
function cookieOf(hvr: Uint8Array): Uint8Array {
  const record = parseRecords(hvr).records[0]!;
  return decodeHelloVerifyRequest(parseHandshakeFragments(record.fragment)[0]!.body).cookie.slice();
}

Deno.test("review round 4 F6: a handshake flood from other ports does not make a replayed cookie replace a live association", () => {
  const endpoint = testEndpoint({}, "round4/f6");
  const peer = "10.80.5.1:5000";
  // The victim's first session; an observer keeps its ClientHello with the
  // cookie. The session ends and the client comes back from the same port
  // (round 3's F1): the endpoint remembers the old cookie for this port.
  const seen = observedSession(endpoint, "round4/f6/first", peer, T0, T0 + 500);
  const second = testClient("round4/f6/second", T0 + 1_000);
  converse(endpoint, second, peer, T0 + 1_000);
  assert.equal(second.isEstablished, true);
  const live = endpoint.get(peer)!;
  drain(live);
  // Within the cookie's two minutes, the attacker completes the cookie
  // exchange from 16,384 other address:port pairs (200 addresses, 82 ports
  // each: under each address's burst of 100), ending each association at
  // once with a fatal alert so that it holds no half-open slot. Each makes
  // a new entry in the used-cookie table; the victim's, the oldest, goes.
  let now = T0 + 2_000;
  const alert = encodeRecord(
    ContentType.Alert,
    DTLS_1_2,
    0,
    2,
    encodeAlert(AlertLevel.Fatal, AlertDescription.HandshakeFailure),
  );
  let made = 0;
  for (let a = 0; a < 200 && made < 16_384; a++) {
    for (let p = 0; p < 82 && made < 16_384; p++) {
      const attacker = `10.81.${a >> 8}.${a & 0xff}:${10_000 + p}`;
      const hvr = endpoint.handleDatagram(spoofedClientHello(0, 0), attacker, now);
      assert.equal(hvr.kind, "hello_verify_request");
      if (hvr.kind !== "hello_verify_request") return;
      const out = endpoint.handleDatagram(
        spoofedClientHello(1, 1, cookieOf(hvr.datagram)),
        attacker,
        now,
      );
      assert.equal(
        out.kind,
        "connection",
        `${attacker}: ${out.kind === "dropped" ? out.reason : out.kind}`,
      );
      if (out.kind !== "connection") return;
      endpoint.handleDatagram(alert, attacker, now);
      assert.equal(out.connection.isClosed, true);
      drain(out.connection);
      endpoint.remove(attacker, out.connection);
      made++;
    }
    now += 250;
  }
  assert.equal(made, 16_384);
  assert.ok(now < T0 + 120_000, "all within the cookie's lifetime");
  // Without the flood this replay gets a HelloVerifyRequest (round 3's F1
  // test). Now the observer replays the first session's ClientHello.
  const out = endpoint.handleDatagram(seen[1]!, peer, now);
  assert.equal(live.isClosed, false, "the live association was replaced by a replayed ClientHello");
  assert.equal(out.kind, "hello_verify_request");
});

// ---- F7: a network copy of a repeat that was rate-limited still makes the server resend ----

Deno.test("review round 4 F7: a late network copy of the client's repeated ClientHello does not make the server resend flight 4", () => {
  const endpoint = testEndpoint({}, "round4/f7");
  const peer = "10.80.6.1:5000";
  const client = testClient("round4/f7", T0);
  const server = upToLostFlight4(endpoint, client, peer, T0);
  // Flight 4 is lost. Both timers fire at about the same time: the server's
  // resend (which gets through) is sent just before the client's repeated
  // ClientHello (record 2) arrives, so that repeat is answered by nothing
  // (the once-a-second limit): the floor stays below record 2.
  const serverTimer = server.pollTimeout()!;
  endpoint.handleTimeouts(serverTimer);
  const resent = drain(server).sent;
  const clientTimer = client.pollTimeout()!;
  client.handleTimeout(clientTimer);
  const [repeat] = drain(client).sent;
  const at = Math.max(serverTimer, clientTimer) + 10;
  endpoint.handleDatagram(repeat!, peer, at);
  assert.ok(
    drain(server).events.some((e) => e.type === "dropped" && e.reason === "resend_limited"),
  );
  // The client gets the server's resend and sends its final flight (lost);
  // the network duplicated the repeat, and its copy arrives 1.1 s later:
  // record 2 was handled, but never counted below the floor.
  for (const d of resent) client.handleDatagram(d, at + 5);
  drain(client);
  endpoint.handleDatagram(repeat!, peer, at + 1_100);
  const resends = drain(server).events.filter((e) => e.type === "retransmit");
  assert.deepEqual(
    resends,
    [],
    "a copy of record 2, already handled, made the server resend flight 4",
  );
});
