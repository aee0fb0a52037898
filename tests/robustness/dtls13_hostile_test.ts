/**
 * The hostile-input catalogue for DTLS 1.3: what a peer (or anyone on the
 * path) can send that the handshake and the record layer must survive, each
 * with the answer RFC 8446 / RFC 9147 ask for, and a fuzz of the handshake
 * with time advancing so that timers fire after the hostile input.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import type { Connection13 } from "../../src/connection/connection13.ts";
import { CONTENT_TYPE_ACK } from "../../src/connection/connection13.ts";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import { encodeHandshakeMessage } from "../../src/handshake/fragments.ts";
import { encodeAck, encodeKeyUpdate, HandshakeType13 } from "../../src/handshake/messages13.ts";
import { ContentType } from "../../src/record/header.ts";
import { SUITES_13 } from "../../src/record/suites13.ts";
import { Pair, sentAlert } from "../helpers/sim.ts";

const text = new TextEncoder();
const CCM_8 = SUITES_13.find((s) => s.aead === "aes-ccm-8")!;

function established(options: ConstructorParameters<typeof Pair>[0] = {}): Pair {
  const pair = new Pair({ dtls13: {}, ...options });
  pair.run();
  pair.pump();
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  pair.serverEvents.length = 0;
  pair.clientEvents.length = 0;
  return pair;
}

function stillServes(pair: Pair, message = "still there"): void {
  pair.client.send(text.encode(message));
  pair.pump();
  const data = pair.serverEvents.filter((e) => e.type === "data");
  assert.equal(data.length, 1, "the server still reads the client");
  pair.server!.send(text.encode("yes"));
  pair.pump();
  assert.ok(pair.clientEvents.some((e) => e.type === "data"), "and the client reads the server");
  pair.serverEvents.length = 0;
  pair.clientEvents.length = 0;
}

function closedBy(events: readonly ConnectionEvent[]) {
  const e = events.find((e) => e.type === "closed");
  return e?.type === "closed" ? e : undefined;
}

Deno.test("dtls13 hostile: a binder with one bit flipped is decrypt_error, and nothing is kept", () => {
  const pair = new Pair({
    dtls13: {},
    script: (direction, i, datagram) => {
      // The second ClientHello ends with its binder.
      if (direction === "c2s" && i === 1) datagram[datagram.length - 1]! ^= 1;
      return "deliver";
    },
  });
  pair.run(10_000);
  assert.equal(sentAlert(pair.serverEvents), "decrypt_error");
  assert.ok(pair.client.isClosed);
  assert.equal(pair.endpoint.halfOpen, 0);
});

Deno.test("dtls13 hostile: an identity not in the key file is refused as a wrong key is", () => {
  const pair = new Pair({ dtls13: { identity: text.encode("not in the file") } });
  pair.run(10_000);
  assert.equal(sentAlert(pair.serverEvents), "decrypt_error");
  const identity = pair.serverEvents.find((e) => e.type === "psk_identity");
  assert.equal(identity?.type === "psk_identity" && identity.known, false);
});

Deno.test("dtls13 hostile: a cookie changed on the way gets a second HelloRetryRequest and no state; our client then aborts", () => {
  const pair = new Pair({
    dtls13: {},
    script: (direction, i, datagram) => {
      // Flip a byte in the middle of the second ClientHello, inside its cookie extension.
      if (direction === "s2c" && i === 0) datagram[datagram.length - 20]! ^= 0x40;
      return "deliver";
    },
  });
  pair.run(10_000);
  assert.deepEqual(pair.outcomes.slice(0, 2), ["hello_retry_request", "hello_retry_request"]);
  assert.equal(pair.endpoint.size, 0, "no connection without a valid cookie");
  assert.equal(
    sentAlert(pair.clientEvents),
    "unexpected_message",
    "RFC 8446 §4.1.4: no second HRR",
  );
});

Deno.test("dtls13 hostile: ACKs of records never sent are ignored", () => {
  const pair = established();
  const client = pair.client as Connection13;
  client.injectRecord(
    CONTENT_TYPE_ACK,
    encodeAck([
      { epoch: 3, seq: 999 },
      { epoch: 2 ** 47, seq: 2 ** 48 - 1 },
      { epoch: 0, seq: 0 },
      { epoch: 2, seq: 7 },
    ]),
  );
  pair.pump();
  assert.equal(closedBy(pair.serverEvents), undefined);
  stillServes(pair);
});

Deno.test("dtls13 hostile: an ACK that does not decode is decode_error (it authenticated: the peer sent it)", () => {
  for (
    const body of [
      new Uint8Array([0, 17, 1]),
      new Uint8Array([0]),
      new Uint8Array([0, 16, ...new Uint8Array(15)]),
    ]
  ) {
    const pair = established();
    (pair.client as Connection13).injectRecord(CONTENT_TYPE_ACK, body);
    pair.pump();
    assert.equal(sentAlert(pair.serverEvents), "decode_error");
    assert.ok(pair.server!.isClosed);
  }
});

Deno.test("dtls13 hostile: records in an epoch with no keys (early data, a future epoch) are dropped", () => {
  const pair = established();
  const server = pair.server!;
  // Epoch bits 1 (0-RTT, never accepted) and 0 (epoch 4: no KeyUpdate yet).
  for (const first of [0x2d, 0x2c]) {
    const forged = new Uint8Array(40);
    forged[0] = first;
    forged[3] = 0;
    forged[4] = 35;
    server.handleDatagram(forged, pair.now);
  }
  const events = [...drainEvents(server)];
  assert.equal(events.filter((e) => e.type === "dropped" && e.reason === "epoch").length, 2);
  assert.equal(events.length, 2);
  stillServes(pair);
});

function* drainEvents(c: { pollEvent(): ConnectionEvent | undefined }): Generator<ConnectionEvent> {
  for (let e = c.pollEvent(); e; e = c.pollEvent()) yield e;
}

Deno.test("dtls13 hostile: application data before the client's Finished is dropped, not read", () => {
  // The client's Finished is lost: its epoch-3 record comes first.
  let finished = false;
  const pair = new Pair({
    dtls13: {},
    script: (direction, _i, datagram) => {
      if (direction === "c2s" && (datagram[0]! & 0xe3) === 0x22 && !finished) {
        finished = true;
        return "drop";
      }
      return "deliver";
    },
  });
  pair.pump();
  assert.ok(pair.client.isEstablished);
  pair.client.send(text.encode("too early"));
  pair.pump();
  assert.ok(!pair.server!.isEstablished);
  assert.ok(!pair.serverEvents.some((e) => e.type === "data"));
  pair.run(60_000, true);
  assert.ok(pair.server!.isEstablished, "the resent Finished completes it");
});

Deno.test("dtls13 hostile: record numbers near their limits reconstruct or fail to authenticate, never throw", () => {
  const pair = established();
  const server = pair.server!;
  for (const seqBytes of [[0xff, 0xff], [0, 0], [0x80, 0], [0x7f, 0xff]]) {
    const forged = new Uint8Array(60);
    forged[0] = 0x2f; // unified header, 16-bit seq, length, epoch bits 3
    forged[1] = seqBytes[0]!;
    forged[2] = seqBytes[1]!;
    forged[3] = 0;
    forged[4] = 55;
    server.handleDatagram(forged, pair.now);
  }
  const events = [...drainEvents(server)];
  assert.equal(events.filter((e) => e.type === "dropped" && e.reason === "bad_mac").length, 4);
  stillServes(pair);
});

Deno.test("dtls13 hostile: CCM_8's integrity limit: forgeries make the server ask for new keys; at the limit of an old key it is let go; of the current one, the connection ends", () => {
  const pair = established({ dtls13: { suites: [CCM_8] } });
  const server = pair.server!;
  const forge = (n: number) => {
    for (let i = 0; i < n; i++) {
      const forged = new Uint8Array(40);
      forged[0] = 0x2f;
      forged[1] = 0;
      forged[2] = i & 0xff;
      forged[3] = 0;
      forged[4] = 35;
      server.handleDatagram(forged, pair.now);
    }
  };
  forge(64);
  pair.pump();
  // Half the limit (2^7): the server asked for a KeyUpdate, and ours answered.
  assert.ok(pair.serverEvents.some((e) => e.type === "key_update" && e.direction === "received"));
  stillServes(pair, "in the new epoch");
  // The old key's forgeries reach its limit: it is dropped, the connection lives.
  forge(128);
  pair.pump();
  assert.equal(closedBy(pair.serverEvents), undefined);
  stillServes(pair, "still");
  // The current key's: the connection ends.
  const current = new Uint8Array(40);
  for (let i = 0; i < 128; i++) {
    current.fill(0);
    current[0] = 0x2c; // epoch bits 0: epoch 4
    current[2] = i;
    current[4] = 35;
    server.handleDatagram(current, pair.now);
  }
  pair.pump();
  assert.match(closedBy(pair.serverEvents)?.reason ?? "", /integrity limit/);
});

Deno.test("dtls13 hostile: a KeyUpdate flood moves the epochs on, keeps two read epochs at most, and never more than one KeyUpdate of ours in flight", () => {
  const pair = established();
  const client = pair.client as Connection13;
  for (let i = 0; i < 200; i++) {
    assert.ok(client.updateKeys(true), `update ${i}`);
    pair.pump();
  }
  const received = pair.serverEvents.flatMap((e) =>
    e.type === "key_update" && e.direction === "received" ? [e.epoch] : []
  );
  assert.equal(received.length, 200);
  assert.equal(received.at(-1), 203);
  stillServes(pair, "after 200 updates");
  // Several KeyUpdates in one epoch, back to back: the first moves the epoch, the rest are acknowledged only.
  for (let seq = 0; seq < 5; seq++) {
    client.injectRecord(
      ContentType.Handshake,
      encodeHandshakeMessage(HandshakeType13.KeyUpdate, 1000 + seq, encodeKeyUpdate(false)),
    );
  }
  pair.pump();
  assert.equal(closedBy(pair.serverEvents), undefined);
});

Deno.test("dtls13 hostile: a KeyUpdate with request_update 2 is illegal_parameter", () => {
  const pair = established();
  (pair.client as Connection13).injectRecord(
    ContentType.Handshake,
    encodeHandshakeMessage(HandshakeType13.KeyUpdate, 3, new Uint8Array([2])),
  );
  pair.pump();
  assert.equal(sentAlert(pair.serverEvents), "illegal_parameter");
});

Deno.test("dtls13 hostile: an unknown content type in an authenticated record is unexpected_message", () => {
  const pair = established();
  (pair.client as Connection13).injectRecord(99, text.encode("what is this"));
  pair.pump();
  assert.equal(sentAlert(pair.serverEvents), "unexpected_message");
});

Deno.test("dtls13 fuzz: client datagrams mutated during the handshake, then every timer fired: no internal error, no crash", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 5 }),
      fc.integer({ min: 0, max: 400 }),
      fc.integer({ min: 1, max: 255 }),
      fc.constantFrom(...SUITES_13),
      (which, at, xor, suite) => {
        const pair = new Pair({
          dtls13: { suites: [suite] },
          seed: `fuzz13-${which}-${at}-${xor}`,
          script: (direction, i, datagram) => {
            if (direction === "c2s" && i === which && datagram.length > 0) {
              datagram[at % datagram.length]! ^= xor;
            }
            return "deliver";
          },
        });
        pair.run(120_000, true);
        for (let i = 0; i < 20 && pair.advance(); i++) pair.pump();
        assert.equal(pair.endpoint.internalErrors, 0);
        for (const e of [...pair.serverEvents, ...pair.clientEvents]) {
          if (e.type === "closed") assert.equal(e.internal, undefined, e.reason);
        }
      },
    ),
    { numRuns: 300 },
  );
});
