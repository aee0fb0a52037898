/**
 * Findings of the adversarial review of the round-4 fixes (a4f4ad8) and the
 * endpoint's one timer (68ea0a6). Each test FAILS on the code as reviewed
 * (F2 and F3 then watched the private heap; they now read deadlineCount).
 * Sans-I/O engine on virtual time; deterministic.
 */
import assert from "node:assert/strict";
import type { Connection } from "../../src/connection/connection.ts";
import { ContentType, DTLS_1_2, encodeRecord } from "../../src/record/header.ts";
import { HandshakeType } from "../../src/handshake/messages.ts";
import {
  converse,
  deliver,
  drain,
  testClient,
  testEndpoint,
  upToLostFlight4,
} from "../helpers/drive.ts";

const T0 = 1_000_000;

/**
 * A 26-byte epoch-0 handshake record: a middle fragment (offset 1) of an old
 * message (message_seq 0), of type ClientKeyExchange so the endpoint does not
 * take it for a ClientHello. The connection files it as "old" and drops it,
 * after it has raised the epoch-0 mark to `seq`.
 */
function handshakeNoise(seq: number): Uint8Array {
  const fragment = new Uint8Array(12 + 1);
  fragment[0] = HandshakeType.ClientKeyExchange;
  fragment[3] = 2; // length 2
  // message_seq 0, fragment_offset 1, fragment_length 1
  fragment[8] = 1;
  fragment[11] = 1;
  return encodeRecord(ContentType.Handshake, DTLS_1_2, 0, seq, fragment);
}

// ---- F1: the round-4 F5 fix is bypassed by a handshake-typed record --------------------------

Deno.test("review round 5 F1: a spoofed epoch-0 handshake fragment numbered 2^48-1 does not stop the server answering the client's repeated ClientHello", () => {
  const endpoint = testEndpoint({}, "round5/f1");
  const peer = "10.90.0.1:5000";
  const client = testClient("round5/f1", T0);
  const server = upToLostFlight4(endpoint, client, peer, T0);
  // Round 4 made the mark move only with handshake records: so the blind
  // spoofer sends a handshake record, a middle fragment of an old message,
  // numbered 2^48-1. It is dropped ("old", not a first fragment), but first
  // raises #epoch0Top for good.
  endpoint.handleDatagram(handshakeNoise(2 ** 48 - 1), peer, T0 + 10);
  assert.equal(server.isClosed, false);
  // As in round 4's F5: the server's timer resends flight 4 (lost again),
  // setting the floor to the mark; the client's repeated ClientHello
  // (record 2) arrives after the once-a-second limit has passed.
  const serverTimer = server.pollTimeout()!;
  endpoint.handleTimeouts(serverTimer);
  assert.ok(drain(server).events.some((e) => e.type === "retransmit"));
  const clientTimer = client.pollTimeout()!;
  client.handleTimeout(clientTimer);
  const repeat = drain(client).sent;
  assert.equal(repeat.length, 1);
  endpoint.handleDatagram(repeat[0]!, peer, Math.max(clientTimer, serverTimer + 1_000));
  const answered = drain(server).events.filter((e) => e.type === "retransmit");
  assert.equal(
    answered.length,
    1,
    "the client's repeated ClientHello (record 2) was not taken for a repeat: the spoofed handshake fragment at 2^48-1 turned repeats off",
  );
});

// ---- F2: stale heap entries pile up for every chatty connection -----------------------------

Deno.test("review round 5 F2: a connection sending a record every 1.5 s does not pile up deadline entries", () => {
  const K = 4;
  const { endpoint } = (() => {
    const endpoint = testEndpoint({ idleTimeoutMs: 600_000 }, "round5/f2");
    const clients: [string, Connection][] = [];
    let now = T0;
    for (let k = 0; k < K; k++) {
      const peer = `10.90.1.${k}:5000`;
      const client = testClient(`round5/f2/${k}`, now);
      converse(endpoint, client, peer, now);
      assert.equal(endpoint.get(peer)!.isEstablished, true);
      drain(endpoint.get(peer)!);
      clients.push([peer, client]);
    }
    // Each client sends one small record every 1.5 s (telemetry), the four
    // spread over the period; the shell's loop: timers due, then pollTimeout.
    // Each record makes the connection hold a receive chunk, whose release
    // (1 s later) is pushed as an earlier deadline; the idle-timeout entry
    // it supersedes stays in the heap until its time, 10 min on. The next
    // idle entry, pushed after the release, is superseded again 0.5 s later.
    for (let step = 0; step < 200 * K; step++) {
      now += 1_500 / K;
      for (const { connection: c } of endpoint.handleTimeouts(now)) drain(c);
      endpoint.pollTimeout();
      const [peer, client] = clients[step % K]!;
      assert.ok(deliver(endpoint, client, peer, new Uint8Array([1, 2, 3]), now));
      drain(client);
    }
    return { endpoint };
  })();
  assert.equal(endpoint.size, K);
  assert.ok(
    endpoint.deadlineCount <= 4 * K,
    `${endpoint.deadlineCount} deadline entries for ${K} connections after 300 s (about one per connection per record; bounded only by the idle timeout / 1 s, ~600 each by default)`,
  );
});

// ---- F3: closed and removed connections stay referenced by the heap --------------------------

Deno.test("review round 5 F3: a closed and removed connection leaves no deadline entry behind", () => {
  const { endpoint, closed } = (() => {
    const endpoint = testEndpoint({ idleTimeoutMs: 600_000 }, "round5/f3");
    let now = T0;
    // One long-lived peer whose deadline comes first.
    converse(endpoint, testClient("round5/f3/live", now), "10.90.2.0:5000", now);
    drain(endpoint.get("10.90.2.0:5000")!);
    // 100 short sessions (say at 50 handshakes/s from one address: the
    // default rate limit): each completes, its retransmission entry fires
    // (the next is its idle timeout, 10 min on), then it ends with
    // close_notify and the shell removes it.
    const sessions: [string, Connection][] = [];
    for (let i = 1; i <= 100; i++) {
      now += 20;
      const peer = `10.90.2.${i}:5000`;
      const client = testClient(`round5/f3/${i}`, now);
      converse(endpoint, client, peer, now);
      assert.equal(endpoint.get(peer)!.isEstablished, true);
      drain(endpoint.get(peer)!);
      sessions.push([peer, client]);
    }
    now += 1_500;
    for (const { connection: c } of endpoint.handleTimeouts(now)) drain(c);
    let closed = 0;
    for (const [peer, client] of sessions) {
      const server = endpoint.get(peer)!;
      client.close();
      for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
        endpoint.handleDatagram(d, peer, now);
      }
      if (server.isClosed) closed++;
      drain(server);
      endpoint.remove(peer, server);
    }
    endpoint.pollTimeout();
    return { endpoint, closed };
  })();
  assert.equal(closed, 100);
  assert.equal(endpoint.size, 1);
  // Each entry holds its Connection (keys, pools, handshake state: ~4 KB
  // measured) until the old idle deadline, 10 min on: outside
  // maxConnections, at the handshake rate times the idle timeout.
  assert.ok(
    endpoint.deadlineCount <= 2,
    `${endpoint.deadlineCount} deadline entries (each holding its Connection) for 1 connection in the table`,
  );
});

// ---- F4: after the HelloVerifyRequest, the dead association's retransmission is taken --------

Deno.test("review round 5 F4: a restarted client whose cookie ClientHello is lost does not take the old association's retransmitted ServerHello", () => {
  const endpoint = testEndpoint({}, "round5/f4");
  const peer = "10.90.3.1:5000";
  // A client sends its ClientHello with the cookie and crashes; the server's
  // flight 4 is lost with it. The half-open association retransmits it on
  // its timer (about 1 s, 3 s, 7 s...).
  const dead = testClient("round5/f4/dead", T0);
  converse(endpoint, dead, peer, T0, (_d, i) => i < 2);
  const old = endpoint.get(peer)!;
  drain(old);
  // The client restarts on the same port some seconds later, 400 ms before
  // the old association's next resend (its resends before went nowhere):
  // its ClientHello gets a HelloVerifyRequest (the old one made no progress
  // for 2 s; round 4 cleared what the client had buffered), and its
  // ClientHello with the cookie is lost on the way.
  while (old.pollTimeout()! < T0 + 2_500) {
    endpoint.handleTimeouts(old.pollTimeout()!);
    drain(old);
  }
  let now = old.pollTimeout()! - 400;
  const restarted = testClient("round5/f4/restarted", now);
  const [hello] = drain(restarted).sent;
  const hvr = endpoint.handleDatagram(hello!, peer, now);
  assert.equal(hvr.kind, "hello_verify_request");
  if (hvr.kind !== "hello_verify_request") return;
  restarted.handleDatagram(hvr.datagram, now);
  drain(restarted); // the ClientHello with the cookie: lost
  // As reviewed, the old association's timer resent flight 4 to the port
  // before the client's timer fired, and the client, expecting message_seq
  // 1, took the OLD association's ServerHello. Now the old association
  // stops resending once its address has started over: up to the client's
  // own retransmission, nothing of its flight reaches the client.
  now = restarted.pollTimeout()!;
  for (const { connection: c } of endpoint.handleTimeouts(now)) void c;
  for (const d of drain(old).sent) restarted.handleDatagram(d, now);
  assert.ok(old.pollTimeout()! > now, "no retransmission due from the old association");
  // From here on everything gets through.
  for (let round = 0; round < 20 && !restarted.isEstablished && !restarted.isClosed; round++) {
    for (const d of drain(restarted).sent) {
      const out = endpoint.handleDatagram(d, peer, now);
      if (out.kind === "hello_verify_request") restarted.handleDatagram(out.datagram, now);
    }
    const server = endpoint.get(peer);
    if (server !== undefined) {
      for (const d of drain(server).sent) restarted.handleDatagram(d, now);
    }
    now = Math.max(now + 1, restarted.pollTimeout() ?? now + 1);
    restarted.handleTimeout(now);
    for (const { connection: c } of endpoint.handleTimeouts(now)) void c;
  }
  const closed = drain(restarted).events.find((e) => e.type === "closed");
  assert.equal(
    restarted.isEstablished,
    true,
    `restarted client: ${closed?.type === "closed" ? closed.reason : "not in"}`,
  );
});
