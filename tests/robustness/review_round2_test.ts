/**
 * Findings of the adversarial review of the second round of hardening
 * (epoch-tagged reassembly, running-hash transcript, no epoch-0 replay
 * window, the cookie replay rule, peer-triggered resends). Each test FAILS on
 * the code as reviewed (586477f). Sans-I/O engine on virtual time.
 */
import assert from "node:assert/strict";
import type { Association } from "../../src/connection/association.ts";
import { ContentType, DTLS_1_2, encodeRecord, parseRecords } from "../../src/record/header.ts";
import { converse, testClient, testEndpoint, upToFinalFlight } from "../helpers/drive.ts";
import { Pair } from "../helpers/sim.ts";

const T0 = 1_000_000;

function drain(connection: Association): { events: string[]; sent: Uint8Array[] } {
  const events: string[] = [];
  const sent: Uint8Array[] = [];
  for (let e = connection.pollEvent(); e; e = connection.pollEvent()) events.push(e.type);
  for (let d = connection.pollTransmit(); d; d = connection.pollTransmit()) sent.push(d);
  return { events, sent };
}

// ---- F1: records of epoch 2 held after ChangeCipherSpec stay charged for good --------------

Deno.test("review round 2 F1: nothing stays buffered or charged once the handshake is established (records of epoch 2 held after ChangeCipherSpec)", () => {
  const endpoint = testEndpoint({}, "round2/f1");
  const peer = "10.50.0.1:5000";
  const client = testClient("round2/f1", T0);
  const [cke, ccs, finished] = parseRecords(upToFinalFlight(endpoint, client, peer, T0).finalFlight)
    .records.map((r) => r.raw.slice());
  const server = endpoint.get(peer)!;
  // ClientKeyExchange and ChangeCipherSpec: the server reads epoch 1 now.
  endpoint.handleDatagram(cke!, peer, T0 + 1);
  endpoint.handleDatagram(ccs!, peer, T0 + 1);
  drain(server);
  // Four unauthenticated records of epoch 2 (readEpoch + 1): kept as "early"
  // records of the next epoch, copied and charged, though no ChangeCipherSpec
  // can ever activate epoch 2.
  for (let seq = 0; seq < 4; seq++) {
    endpoint.handleDatagram(
      encodeRecord(ContentType.Handshake, DTLS_1_2, 2, seq, new Uint8Array(15_000)),
      peer,
      T0 + 2,
    );
  }
  endpoint.handleDatagram(finished!, peer, T0 + 3);
  for (const d of drain(server).sent) client.handleDatagram(d, T0 + 3);
  assert.equal(server.isEstablished, true);
  assert.equal(client.isEstablished, true);
  // "Nothing is buffered once established": the early records are neither
  // dropped nor released by established(), so ~60 KB of this peer's bytes
  // stay charged to its source share and the endpoint's total for the whole
  // life of the association (a client keeps it alive with data).
  endpoint.handleTimeouts(T0 + 60_000);
  assert.equal(server.isClosed, false);
  assert.equal(
    server.bufferedBytes,
    0,
    `${server.bufferedBytes} bytes held by an established connection`,
  );
  assert.equal(
    endpoint.reassemblyBytes,
    0,
    `${endpoint.reassemblyBytes} bytes of the shared budget pinned`,
  );
});

// ---- F2: the replay rule is blind within the second the association began ------------------

Deno.test("review round 2 F2: a replayed ClientHello whose cookie was minted in the same second as the live association does not replace it", () => {
  const endpoint = testEndpoint({}, "round2/f2");
  const peer = "10.50.1.1:5000";
  // A first handshake from this address; an on-path observer keeps its
  // ClientHello with the cookie (minted at T0 + 100 ms).
  const seen: Uint8Array[] = [];
  const first = testClient("round2/f2/first", T0 + 100);
  converse(endpoint, first, peer, T0 + 100, (d) => {
    seen.push(d.slice());
    return true;
  });
  assert.equal(first.isEstablished, true);
  // The client restarts from the same port once the association has been
  // quiet for the 2 s a restart waits (a ClientHello before is dropped).
  const client = testClient("round2/f2/second", T0 + 2_600);
  converse(endpoint, client, peer, T0 + 2_600);
  const current = endpoint.get(peer)!;
  assert.equal(client.isEstablished, true);
  assert.equal(current.isEstablished, true);
  drain(current);
  // 30 s later the observer replays the old ClientHello. Its cookie was
  // minted 500 ms before the live association began, but in the same whole
  // second, so `issuedAt < floor(createdAt / 1000) * 1000` is false.
  const out = endpoint.handleDatagram(seen[1]!, peer, T0 + 30_000);
  assert.equal(current.isClosed, false, "the live association was aborted by a replay");
  assert.equal(out.kind, "hello_verify_request");
});

// ---- F3: the replay rule compares wall-clock times across associations ---------------------

Deno.test("review round 2 F3: a restarted client is not locked out when the clock steps back", () => {
  // The shell's clock is Date.now (wall time): NTP or an operator can step it back.
  const endpoint = testEndpoint({}, "round2/f3");
  const peer = "10.50.2.1:5000";
  const first = testClient("round2/f3/first", T0);
  converse(endpoint, first, peer, T0);
  assert.equal(first.isEstablished, true);
  drain(endpoint.get(peer)!);
  // The wall clock steps back 5 s; the client restarts from the same port and
  // does a correct cookie exchange. Its fresh cookie is "minted before" the
  // association it replaces, so it only ever gets another HelloVerifyRequest
  // ("replayed"), until the clock has caught up (the old association cannot
  // idle out meanwhile either: its quiet time is negative).
  const now = T0 - 5_000;
  const client = testClient("round2/f3/second", now);
  const outcomes = converse(endpoint, client, peer, now).map((o) =>
    o.kind === "hello_verify_request" ? `hvr:${o.cookie}` : o.kind
  );
  assert.ok(!outcomes.includes("hvr:replayed"), `outcomes: ${outcomes.join(", ")}`);
  assert.equal(client.isEstablished, true);
});

// ---- F4: a duplicated datagram now makes the peer send its flight twice at once ------------

Deno.test("review round 2 F4: a network-duplicated epoch-0 datagram does not make either side send its flight again at once", () => {
  // Before the round, the epoch-0 replay window (and markSeen for the
  // ClientHello that created the connection) dropped an exact copy. Now a copy
  // is an "old" message, i.e. a peer repeat, and the first transmission of a
  // flight does not hold peer-triggered resends back as a timer resend does.
  for (const direction of ["c2s", "s2c"] as const) {
    const pair = new Pair({
      seed: `round2/f4/${direction}`,
      // Datagram 1 each way: the ClientHello with the cookie / flight 4.
      script: (d, i) => d === direction && i === 1 ? "duplicate" : "deliver",
    });
    pair.run();
    assert.equal(pair.client.isEstablished, true);
    const resends = [
      ...pair.clientEvents.filter((e) => e.type === "retransmit").map(() => "client"),
      ...pair.serverEvents.filter((e) => e.type === "retransmit").map(() => "server"),
    ];
    assert.deepEqual(
      resends,
      [],
      `${direction} duplicate: flights resent by ${resends.join(", ")}`,
    );
  }
});

Deno.test("review round 2: a client that restarts while its old handshake is half-open is served at once, not after the deadline", () => {
  const endpoint = testEndpoint({}, "round2/halfopen-restart");
  const peer = "10.40.9.1:5000";
  // The first attempt stops after its ClientHello with the cookie (the client died).
  converse(endpoint, testClient("round2/restart/1", T0), peer, T0, (_d, i) => i < 2);
  const stale = endpoint.get(peer)!;
  assert.equal(stale.isEstablished, false);
  // The restarted client, same address and port: dropped while the old
  // handshake may still be live, served after 2 s of quiet, long before
  // the old handshake's 30 s deadline.
  const early = testClient("round2/restart/early", T0 + 1_000);
  const refused = converse(endpoint, early, peer, T0 + 1_000);
  assert.deepEqual(refused, [{ kind: "dropped", reason: "handshake_in_progress" }]);
  const client = testClient("round2/restart/2", T0 + 2_000);
  converse(endpoint, client, peer, T0 + 2_000);
  assert.equal(client.isEstablished, true);
  assert.equal(stale.isClosed, true);
  assert.notEqual(endpoint.get(peer), stale);
});
