import assert from "node:assert/strict";
import { PSK_SUITES, suiteByName } from "../../src/record/suites.ts";
import { Pair, PEER } from "../helpers/sim.ts";
import { watchDrops } from "../helpers/drive.ts";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import { ContentType, DTLS_1_2, encodeRecord } from "../../src/record/header.ts";

const text = new TextEncoder();

function completed(events: ConnectionEvent[]) {
  return events.find((e) => e.type === "handshake_complete") as
    | Extract<ConnectionEvent, { type: "handshake_complete" }>
    | undefined;
}

function exchange(pair: Pair, message: string): string {
  pair.client.send(text.encode(message));
  pair.pump();
  const got = pair.serverEvents.filter((e) => e.type === "data").at(-1);
  assert.ok(got && got.type === "data", "server received data");
  pair.server!.send(text.encode(`echo ${new TextDecoder().decode(got.data)}`));
  pair.pump();
  const back = pair.clientEvents.filter((e) => e.type === "data").at(-1);
  assert.ok(back && back.type === "data", "client received data");
  return new TextDecoder().decode(back.data);
}

for (const suite of PSK_SUITES) {
  Deno.test(`handshake and data with ${suite.name}`, () => {
    const pair = new Pair({ seed: suite.name, client: { suites: [suite] } });
    pair.run();
    assert.equal(pair.client.isEstablished, true);
    assert.equal(pair.server?.isEstablished, true);
    assert.equal(completed(pair.clientEvents)?.suite, suite.name);
    assert.equal(completed(pair.serverEvents)?.suite, suite.name);
    assert.equal(completed(pair.serverEvents)?.identity, "Qt DTLS example client");
    assert.equal(completed(pair.serverEvents)?.extendedMasterSecret, true);
    assert.equal(exchange(pair, "Message #1"), "echo Message #1");
    assert.equal(exchange(pair, "Message #2"), "echo Message #2");
    pair.client.close();
    pair.pump();
    assert.equal(pair.server?.isClosed ?? true, true);
    const closed = pair.serverEvents.find((e) => e.type === "closed");
    assert.ok(closed && closed.type === "closed" && !closed.error);
  });
}

Deno.test("the first ClientHello gets a HelloVerifyRequest and creates no state", () => {
  const pair = new Pair({ script: (dir, i) => (dir === "s2c" && i === 0 ? "drop" : "deliver") });
  pair.pump();
  assert.deepEqual(pair.outcomes, ["hello_verify_request"]);
  assert.equal(pair.endpoint.size, 0);
  const ch = pair.wire.find((w) => w.direction === "c2s")!.datagram;
  assert.ok(pair.wire.length === 1 && ch.length > 0);
});

Deno.test("HelloVerifyRequest is never larger than the ClientHello", () => {
  const pair = new Pair();
  pair.run();
  const [ch, hvr] = pair.wire;
  assert.equal(ch!.direction, "c2s");
  assert.equal(hvr!.direction, "s2c");
  assert.ok(hvr!.datagram.length <= ch!.datagram.length);
});

Deno.test("server prefers AEAD with forward secrecy", () => {
  const pair = new Pair();
  pair.run();
  assert.equal(completed(pair.serverEvents)?.suite, "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256");
  assert.equal(completed(pair.serverEvents)?.group, "x25519");
});

Deno.test("server prefers ChaCha20-Poly1305 among plain-PSK AEADs, whatever the client's order", () => {
  const pair = new Pair({
    client: {
      suites: [
        "TLS_PSK_WITH_AES_128_GCM_SHA256",
        "TLS_PSK_WITH_AES_128_CCM",
        "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
      ].map(suiteByName),
    },
  });
  pair.run();
  assert.equal(completed(pair.serverEvents)?.suite, "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256");
  assert.equal(exchange(pair, "order"), "echo order");
});

Deno.test("ECDHE-PSK over P-256", () => {
  const pair = new Pair({
    client: {
      suites: [suiteByName("TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256")],
      groups: ["secp256r1"],
    },
  });
  pair.run();
  assert.equal(completed(pair.serverEvents)?.group, "secp256r1");
  assert.equal(completed(pair.serverEvents)?.encryptThenMac, true);
  assert.equal(exchange(pair, "p256"), "echo p256");
});

Deno.test("CBC with MAC-then-encrypt when the client does not offer encrypt_then_mac", () => {
  const pair = new Pair({
    client: { suites: [suiteByName("TLS_PSK_WITH_AES_128_CBC_SHA256")], encryptThenMac: false },
  });
  pair.run();
  assert.equal(completed(pair.serverEvents)?.encryptThenMac, false);
  assert.equal(exchange(pair, "mte"), "echo mte");
});

Deno.test("without extended_master_secret the classic master secret is used", () => {
  const pair = new Pair({ client: { extendedMasterSecret: false } });
  pair.run();
  assert.equal(completed(pair.serverEvents)?.extendedMasterSecret, false);
  assert.equal(exchange(pair, "classic"), "echo classic");
});

Deno.test("a wrong key fails the handshake cleanly with bad_record_mac", () => {
  const pair = new Pair({ client: { psk: new Uint8Array([1, 2, 3, 4, 5, 6]) } });
  pair.run();
  assert.equal(pair.client.isEstablished, false);
  assert.equal(pair.client.isClosed, true);
  const sent = pair.serverEvents.find((e) => e.type === "alert" && e.direction === "sent");
  assert.ok(sent && sent.type === "alert");
  assert.equal(sent.description, "bad_record_mac");
  const got = pair.clientEvents.find((e) => e.type === "alert" && e.direction === "received");
  assert.ok(got && got.type === "alert" && got.description === "bad_record_mac");
});

Deno.test("an unknown identity fails exactly as a wrong key does: bad_record_mac at Finished, same bytes on the wire", () => {
  // RFC 4279 §5 allows either answer; only this one does not tell an
  // attacker which identities exist.
  const unknown = new Pair({ seed: "uniform", client: { identity: text.encode("mallory") } });
  const wrongKey = new Pair({ seed: "uniform", client: { psk: new Uint8Array(6).fill(0x42) } });
  for (const pair of [unknown, wrongKey]) {
    pair.run();
    assert.equal(pair.client.isClosed, true);
    const got = pair.clientEvents.find((e) => e.type === "alert" && e.direction === "received");
    assert.ok(got && got.type === "alert");
    assert.equal(got.description, "bad_record_mac");
  }
  const shape = (pair: Pair) =>
    pair.wire.filter((w) => w.direction === "s2c").map((w) => w.datagram.length);
  assert.deepEqual(shape(unknown), shape(wrongKey));
  const identity = unknown.serverEvents.find((e) => e.type === "psk_identity");
  assert.ok(
    identity && identity.type === "psk_identity" && identity.identity === "mallory" &&
      !identity.known,
  );
});

Deno.test("no common suite gets handshake_failure", () => {
  const pair = new Pair({
    server: { suites: [suiteByName("TLS_PSK_WITH_AES_128_GCM_SHA256")] },
    client: { suites: [suiteByName("TLS_PSK_WITH_AES_256_CCM_8")] },
  });
  pair.run();
  const got = pair.clientEvents.find((e) => e.type === "alert" && e.direction === "received");
  assert.ok(got && got.type === "alert" && got.description === "handshake_failure");
});

Deno.test("a small MTU fragments the server's flight and the handshake still completes", () => {
  // A 300-byte identity hint makes ServerKeyExchange longer than one datagram.
  const pair = new Pair({
    mtu: 120,
    server: { identityHint: new Uint8Array(300).fill(0x41) },
    client: {
      suites: [suiteByName("TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256")],
      groups: ["secp256r1"],
    },
  });
  pair.run();
  assert.equal(pair.client.isEstablished, true);
  const fromServer = pair.wire.filter((w) => w.direction === "s2c");
  assert.ok(fromServer.length >= 5, `server flight split into ${fromServer.length} datagrams`);
  assert.ok(pair.wire.every((w) => w.datagram.length <= 120));
});

Deno.test("the endpoint keeps one connection per peer", () => {
  const pair = new Pair();
  pair.run();
  assert.equal(pair.endpoint.size, 1);
  assert.ok(pair.endpoint.get(PEER));
});

Deno.test("a stray epoch-1 alert from an old association on a reused port does not fail the handshake", () => {
  const stray = encodeRecord(ContentType.Alert, DTLS_1_2, 1, 3, new Uint8Array(26).fill(0x5a));
  const pair: Pair = new Pair({
    script: (direction, index) => {
      // Just before the server's flight 6 arrives, a stale record lands on the client.
      if (direction === "s2c" && index === 2) pair.client.handleDatagram(stray, pair.now);
      return "deliver";
    },
  });
  const drops = watchDrops(pair.client);
  pair.run();
  assert.equal(pair.client.isEstablished, true);
  assert.ok((drops.bad_mac ?? 0) >= 1, "the stray record was dropped");
});

Deno.test("closed events say why as a value: a wrong key is the server's protocol_error (bad_record_mac sent) and the client's peer_alert", () => {
  const pair = new Pair({ client: { psk: new Uint8Array(6).fill(0x42) } });
  pair.run();
  const closed = (events: typeof pair.serverEvents) =>
    events.find((e): e is Extract<typeof e, { type: "closed" }> => e.type === "closed");
  const server = closed(pair.serverEvents);
  assert.equal(server?.cause, "protocol_error");
  assert.deepEqual(server?.alert, { direction: "sent", description: "bad_record_mac" });
  const client = closed(pair.clientEvents);
  assert.equal(client?.cause, "peer_alert");
  assert.deepEqual(client?.alert, { direction: "received", description: "bad_record_mac" });
});

Deno.test("closed events say why as a value: a handshake that never finishes is handshake_timeout", () => {
  // Everything from the server after its HelloVerifyRequest is lost.
  const pair = new Pair({
    script: (direction, i) => direction === "s2c" && i > 0 ? "drop" : "deliver",
  });
  pair.run();
  const closed = pair.serverEvents.find((e) => e.type === "closed");
  assert.ok(closed?.type === "closed");
  assert.equal(closed.cause, "handshake_timeout");
  assert.equal(closed.alert, undefined);
});
