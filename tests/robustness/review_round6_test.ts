/**
 * Findings of the adversarial review of af6e57c (the indexed deadline heap,
 * epoch-0 copies told by the last 32 record numbers, the restarted address
 * stopping the old handshake's timer). Each test FAILS on the code as
 * reviewed. Sans-I/O engine on virtual time; deterministic.
 */
import assert from "node:assert/strict";
import { RecentSequences } from "../../src/record/half_conn.ts";
import { converse, testClient, testEndpoint } from "../helpers/drive.ts";

const T0 = 1_000_000;

// ---- F1: an established connection makes its epoch-0 record memory again --------------------

Deno.test("review round 6 F1: an epoch-0 handshake record reaching an established connection does not make it hold a RecentSequences again", () => {
  const endpoint = testEndpoint({}, "round6/f1");
  const peer = "10.91.0.1:5000";
  const client = testClient("round6/f1", T0);
  // Every datagram the client sends: ClientHello, ClientHello with the
  // cookie, then flight 5 (ClientKeyExchange in epoch 0, ChangeCipherSpec,
  // Finished).
  const sent: Uint8Array[] = [];
  converse(endpoint, client, peer, T0, (d) => (sent.push(d.slice()), true));
  const server = endpoint.get(peer)!;
  assert.equal(server.isEstablished, true);
  assert.equal(sent.length, 3);
  // established() drops the connection's RecentSequences ("made when
  // needed, dropped once established"). Count the ones made from here on:
  // each new instance shows up at its first add().
  const seen = new WeakSet<RecentSequences>();
  let made = 0;
  const add = RecentSequences.prototype.add;
  RecentSequences.prototype.add = function (this: RecentSequences, seq: number) {
    if (!seen.has(this)) {
      seen.add(this);
      made++;
    }
    return add.call(this, seq);
  };
  try {
    // A late network copy of flight 5 (or the client's own repeat of it
    // when our final flight was lost, or one spoofed epoch-0 handshake
    // record of 26 bytes): its epoch-0 ClientKeyExchange record is stale,
    // and is dropped, but #handleRecord first files its number in
    // `this.#recent0 ??= new RecentSequences()`.
    endpoint.handleDatagram(sent[2]!, peer, T0 + 100);
  } finally {
    RecentSequences.prototype.add = add;
  }
  assert.equal(server.isEstablished, true);
  assert.equal(
    made,
    0,
    "an established connection made a new RecentSequences (~350 B, kept for the connection's life) for a stale epoch-0 record",
  );
});
