/**
 * RFC 9146 Connection IDs on virtual time, our client against our server
 * endpoint: the records carry them both ways, routing is by CID first, and
 * a peer moves to a new address only by a record that authenticates and is
 * the newest it sent (§6) — never by a replay, a forgery or an older record.
 */
import assert from "node:assert/strict";
import type { Connection } from "../../src/connection/connection.ts";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import { ContentType } from "../../src/record/header.ts";
import { suiteByName } from "../../src/record/suites.ts";
import { Pair, PEER } from "../helpers/sim.ts";
import { drain, testClient, testEndpoint } from "../helpers/drive.ts";
import { testResumption } from "../helpers/resumption.ts";

const CLIENT_CID = new Uint8Array([0xc1, 0xd2, 0xe3]);
const MOVED = "10.9.9.9:4000";
const text = new TextEncoder();

function cidPair(seed: string, options: ConstructorParameters<typeof Pair>[0] = {}): Pair {
  const pair = new Pair({
    seed,
    cidLength: 6,
    ...options,
    client: { connectionId: CLIENT_CID, ...options.client },
  });
  pair.run(120_000, true);
  assert.equal(pair.server?.isEstablished, true, "established");
  return pair;
}

/** The client's next datagrams carrying `payload`, not delivered. */
function clientDatagrams(pair: Pair, payload: string): Uint8Array[] {
  pair.client.send(text.encode(payload));
  const out: Uint8Array[] = [];
  for (let d = pair.client.pollTransmit(); d; d = pair.client.pollTransmit()) out.push(d);
  return out;
}

/** Delivers `datagram` to the endpoint as from `from`; the server's data events after it. */
function arrive(pair: Pair, datagram: Uint8Array, from: string) {
  const outcome = pair.endpoint.handleDatagram(datagram, from, pair.now);
  const events: ConnectionEvent[] = [];
  const server = outcome.kind === "connection" ? outcome.connection : undefined;
  for (let e = server?.pollEvent(); e; e = server?.pollEvent()) events.push(e);
  return { outcome, data: events.filter((e) => e.type === "data").length, events };
}

Deno.test("records carry the Connection IDs both ways once keys are in use", () => {
  const pair = cidPair("both ways");
  const serverCid = pair.server!.connectionId!;
  assert.equal(serverCid.length, 6);
  // The handshake's epoch-0 records have none; from the Finished on, every record does.
  const [toServer] = clientDatagrams(pair, "ping");
  assert.equal(toServer![0], ContentType.Tls12Cid);
  assert.deepEqual(toServer!.subarray(11, 17), serverCid);
  pair.server!.send(text.encode("pong"));
  const { sent } = drain(pair.server!);
  assert.equal(sent[0]![0], ContentType.Tls12Cid);
  assert.deepEqual(sent[0]!.subarray(11, 14), CLIENT_CID);
  pair.client.handleDatagram(sent[0]!, pair.now);
  assert.ok(drain(pair.client).events.some((e) => e.type === "data"));
  assert.equal(arrive(pair, toServer!, PEER).data, 1);
});

Deno.test("a client that gives an empty CID receives plain records and sends ours", () => {
  const pair = cidPair("empty", { client: { connectionId: new Uint8Array(0) } });
  const [toServer] = clientDatagrams(pair, "ping");
  assert.equal(toServer![0], ContentType.Tls12Cid);
  pair.server!.send(text.encode("pong"));
  assert.equal(drain(pair.server!).sent[0]![0], ContentType.ApplicationData);
  assert.equal(arrive(pair, toServer!, PEER).data, 1);
});

Deno.test("a client that offers no CID gets none, and a server with --cid-length 0 gives none", () => {
  for (const [cidLength, connectionId] of [[6, undefined], [0, CLIENT_CID]] as const) {
    const pair = new Pair({
      seed: `none ${cidLength}`,
      cidLength,
      client: connectionId === undefined ? {} : { connectionId },
    });
    pair.run(120_000, true);
    assert.equal(pair.server?.isEstablished, true);
    assert.equal(pair.server!.connectionId, undefined);
    assert.equal(pair.endpoint.connectionIdCount, 0);
    assert.equal(clientDatagrams(pair, "ping")[0]![0], ContentType.ApplicationData);
  }
});

Deno.test("a CBC suite takes no Connection ID", () => {
  const pair = new Pair({
    seed: "cbc",
    cidLength: 6,
    client: {
      connectionId: CLIENT_CID,
      suites: [suiteByName("TLS_PSK_WITH_AES_128_CBC_SHA256")],
    },
  });
  pair.run(120_000, true);
  assert.equal(pair.server?.isEstablished, true);
  assert.equal(pair.server!.connectionId, undefined);
});

Deno.test("an authenticated, newest record from a new address moves the peer there", () => {
  const pair = cidPair("move");
  const connection = pair.server!;
  const [datagram] = clientDatagrams(pair, "from the new port");
  const { outcome, data } = arrive(pair, datagram!, MOVED);
  assert.equal(data, 1);
  assert.ok(outcome.kind === "connection" && outcome.movedFrom === PEER);
  assert.equal(outcome.entry.peer, MOVED);
  assert.equal(pair.endpoint.get(MOVED), connection);
  assert.equal(pair.endpoint.get(PEER), undefined, "the old address is free");
  // And it keeps working from there.
  const [next] = clientDatagrams(pair, "again");
  const again = arrive(pair, next!, MOVED);
  assert.equal(again.data, 1);
  assert.ok(again.outcome.kind === "connection" && again.outcome.movedFrom === undefined);
});

Deno.test("a replay of the peer's record from another address moves nothing and delivers nothing", () => {
  const pair = cidPair("replay");
  const [datagram] = clientDatagrams(pair, "once");
  assert.equal(arrive(pair, datagram!, PEER).data, 1);
  const replay = arrive(pair, datagram!, MOVED);
  assert.equal(replay.data, 0);
  assert.ok(replay.outcome.kind === "connection" && replay.outcome.movedFrom === undefined);
  assert.ok(replay.events.some((e) => e.type === "dropped" && e.reason === "replay"));
  assert.equal(pair.endpoint.get(PEER), pair.server);
  assert.equal(pair.endpoint.get(MOVED), undefined);
});

Deno.test("a forged record with the peer's CID from another address moves nothing", () => {
  const pair = cidPair("forged");
  const [datagram] = clientDatagrams(pair, "real");
  for (let i = 13 + 6; i < datagram!.length; i++) {
    const forged = datagram!.slice();
    forged[i]! ^= 0x40;
    const { outcome, data } = arrive(pair, forged, MOVED);
    assert.equal(data, 0, `byte ${i}`);
    assert.ok(outcome.kind === "connection" && outcome.movedFrom === undefined, `byte ${i}`);
  }
  assert.equal(pair.endpoint.get(MOVED), undefined);
  assert.equal(arrive(pair, datagram!, PEER).data, 1, "the real one still counts");
});

Deno.test("an older record, authentic and unseen, from a new address is read but moves nothing", () => {
  const pair = cidPair("older");
  const [first] = clientDatagrams(pair, "first");
  const [second] = clientDatagrams(pair, "second");
  assert.equal(arrive(pair, second!, PEER).data, 1);
  const late = arrive(pair, first!, MOVED);
  assert.equal(late.data, 1, "within the replay window: delivered");
  assert.ok(late.outcome.kind === "connection" && late.outcome.movedFrom === undefined);
  assert.equal(pair.endpoint.get(PEER), pair.server);
});

Deno.test("a record with a CID no connection has is dropped without an answer", () => {
  const pair = cidPair("unknown");
  const [datagram] = clientDatagrams(pair, "x");
  const stranger = datagram!.slice();
  stranger[11]! ^= 0xff;
  const { outcome } = arrive(pair, stranger, MOVED);
  assert.deepEqual(outcome, { kind: "dropped", reason: "unknown_connection_id" });
  assert.deepEqual(arrive(pair, datagram!.subarray(0, 14), MOVED).outcome, {
    kind: "dropped",
    reason: "malformed",
  });
});

Deno.test("a peer that moves to an address another peer holds: both keep working", () => {
  const endpoint = testEndpoint({ cidLength: 4 }, "occupied");
  const now = 1_000_000;
  const connect = (seed: string, peer: string, cid?: Uint8Array) => {
    const client = testClient(seed, now, cid === undefined ? {} : { connectionId: cid });
    for (let round = 0; round < 20; round++) {
      for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
        const out = endpoint.handleDatagram(d, peer, now);
        if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, now);
      }
      const server = endpoint.get(peer);
      for (let d = server?.pollTransmit(); d; d = server?.pollTransmit()) {
        client.handleDatagram(d, now);
      }
    }
    assert.ok(client.isEstablished, seed);
    return { client, server: endpoint.get(peer)! };
  };
  const mover = connect("mover", PEER, CLIENT_CID);
  const occupant = connect("occupant", MOVED);
  const send = (client: Connection, from: string, payload: string) => {
    client.send(text.encode(payload));
    const outcome = endpoint.handleDatagram(client.pollTransmit()!, from, now);
    assert.equal(outcome.kind, "connection");
    return outcome.kind === "connection" ? outcome : undefined;
  };
  const moved = send(mover.client, MOVED, "moving in");
  assert.equal(moved?.connection, mover.server);
  assert.equal(moved?.movedFrom, PEER);
  assert.equal(send(occupant.client, MOVED, "still here")?.connection, occupant.server);
  assert.equal(send(mover.client, MOVED, "and me")?.connection, mover.server);
  assert.equal(endpoint.size, 2);
  assert.equal([...endpoint.entries()].length, 2, "shutdown reaches both");
  endpoint.forget(moved!.entry);
  assert.equal(endpoint.size, 1);
  assert.equal(endpoint.connectionIdCount, 0);
});

Deno.test("Connection IDs are unique among live connections, and freed with them", () => {
  // One byte of CID: 256 values for 300 connections. None is given twice.
  const endpoint = testEndpoint({ cidLength: 1 }, "unique");
  const now = 1_000_000;
  const seen = new Set<number>();
  for (let i = 0; i < 300; i++) {
    const peer = `10.1.${i >> 8}.${i & 0xff}:5000`;
    const client = testClient(`u${i}`, now, { connectionId: new Uint8Array(0) });
    for (let round = 0; round < 3; round++) {
      for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
        const out = endpoint.handleDatagram(d, peer, now);
        if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, now);
      }
    }
    const cid = endpoint.get(peer)?.connectionId;
    if (cid === undefined) continue;
    assert.ok(!seen.has(cid[0]!), `CID ${cid[0]} given twice`);
    seen.add(cid[0]!);
  }
  assert.ok(seen.size > 200 && seen.size <= 256, `${seen.size} CIDs`);
  assert.equal(endpoint.connectionIdCount, seen.size);
  for (const entry of [...endpoint.entries()]) endpoint.forget(entry);
  assert.equal(endpoint.connectionIdCount, 0);
});

Deno.test("a resumed session takes a Connection ID too", () => {
  const resumption = testResumption({ tickets: false });
  const first = cidPair("resume 1", { server: { resumption }, client: { tickets: false } });
  const saved = first.clientEvents.find((e) => e.type === "resumable_session");
  assert.ok(saved?.type === "resumable_session");
  const second = cidPair("resume 2", {
    server: { resumption },
    client: { tickets: false, resume: saved.session },
  });
  const done = second.serverEvents.find((e) => e.type === "handshake_complete");
  assert.equal(done?.type === "handshake_complete" && done.resumed, "session_id");
  assert.equal(second.server!.connectionId?.length, 6);
  const [datagram] = clientDatagrams(second, "after resumption");
  assert.equal(datagram![0], ContentType.Tls12Cid);
  assert.equal(arrive(second, datagram!, MOVED).data, 1);
});

Deno.test("the handshake completes with Connection IDs through loss, duplication and reordering", () => {
  for (const fate of ["drop", "duplicate", "delay"] as const) {
    for (let index = 0; index < 3; index++) {
      for (const direction of ["c2s", "s2c"] as const) {
        const pair = new Pair({
          seed: `lossy ${fate} ${index} ${direction}`,
          cidLength: 6,
          client: { connectionId: CLIENT_CID },
          script: (d, i) => (d === direction && i === index ? fate : "deliver"),
        });
        pair.run(120_000, true);
        assert.equal(pair.server?.isEstablished, true, `${fate} ${direction} #${index}`);
        assert.equal(pair.client.isEstablished, true);
      }
    }
  }
});
