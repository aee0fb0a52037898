/**
 * A remote crash, replayed against the real server process (`main.ts`). An
 * attacker does the cookie exchange honestly (RFC 6347 §4.2.1), then sends
 * the ClientHello that carries the cookie in a record whose 48-bit sequence
 * number is at or near 2^48 - 1. The server continues its epoch-0 records
 * from the ClientHello's number, so it cannot seal its flight ("sequence
 * exhausted"), nor the alert that would report it; the half-made connection
 * keeps its retransmit timer armed, and when that fires the exception
 * escapes the timer callback: the process exits and every peer is cut off.
 *
 * Each test lets 5 s of real time pass after the attack (the retransmit
 * timer starts at 1 s and doubles, so it fires more than once), failing at
 * once if the process exits meanwhile. Then an honest client must complete a
 * handshake and get its reply, the log must hold no error, the attacker must
 * have got nothing but alerts, and the server must still stop cleanly on
 * SIGTERM. Apart from those 5 s, which are the point, every wait is for an
 * observable condition, bounded by a timeout.
 */
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { encodeHandshakeMessage, parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import {
  AlertLevel,
  alertName,
  decodeAlert,
  decodeClientHello,
  HandshakeType,
} from "../../src/handshake/messages.ts";
import type { SocketIo } from "../../src/net/datagram_socket.ts";
import {
  ContentType,
  encodeRecord,
  parseRecords,
  type RecordView,
} from "../../src/record/header.ts";
import { parseHexKey } from "../../src/server/psk_store.ts";
import { HostilePeer } from "../helpers/hostile_peer.ts";
import { socketBackends } from "../helpers/libc.ts";
import { DEMO, type ServerProcess, startServer } from "../helpers/server_process.ts";

/** The largest record sequence number a uint48 holds (RFC 6347 §4.1). */
const LAST_SEQ = 2 ** 48 - 1;

/** Real time the server is given after the attack, for its retransmit timer to fire. */
const AFTERMATH_MS = 5_000;

/** How the attacker rewrites its ClientHello with the cookie. */
interface Rewrite {
  /** Names the attack in messages. */
  readonly name: string;
  /** The record sequence number. */
  readonly seq: number;
  /** The handshake message_seq, when not the client's own. */
  readonly messageSeq?: number;
}

/** An attacker past an honest cookie exchange, holding the ClientHello that carries the cookie. */
interface Primed {
  readonly rewrite: Rewrite;
  readonly peer: HostilePeer;
  readonly hello: Uint8Array;
}

/** Opens an attacker on `port` and runs its cookie exchange, stopping before the second ClientHello. */
async function prime(port: number, rewrite: Rewrite): Promise<Primed> {
  const peer = HostilePeer.open(port);
  try {
    // The first ClientHello (and any retransmission of it) leaves as it is
    // until the HelloVerifyRequest arrives; from then on everything is held,
    // so the first datagram held is the ClientHello with the cookie.
    peer.filter = () => (peer.received.length === 0 ? "send" : "hold");
    peer.connect();
    await peer.until(
      () => peer.held.length > 0,
      `the ClientHello with the cookie (${rewrite.name})`,
    );
    return { rewrite, peer, hello: peer.held[0]! };
  } catch (error) {
    await peer.close();
    throw error;
  }
}

/** The ClientHello of `datagram`, re-encoded in one record with the rewrite's numbers. */
function forge(datagram: Uint8Array, rewrite: Rewrite): Uint8Array {
  const { records } = parseRecords(datagram);
  assert.equal(records.length, 1, "the ClientHello with the cookie is one record");
  const record = records[0]!;
  const fragments = parseHandshakeFragments(record.fragment);
  assert.equal(fragments.length, 1, "one handshake message in the record");
  const hello = fragments[0]!;
  assert.equal(hello.msgType, HandshakeType.ClientHello);
  assert.equal(hello.fragmentLength, hello.length, "the ClientHello is not fragmented");
  assert.ok(decodeClientHello(hello.body).cookie.length > 0, "it carries the server's cookie");
  const message = encodeHandshakeMessage(
    HandshakeType.ClientHello,
    rewrite.messageSeq ?? hello.messageSeq,
    hello.body,
  );
  return encodeRecord(record.type, record.version, record.epoch, rewrite.seq, message);
}

/** Whether a record holds only HelloVerifyRequests: the honest part of the exchange. */
function isHelloVerifyRequest(record: RecordView): boolean {
  if (record.type !== ContentType.Handshake || record.epoch !== 0) return false;
  try {
    return parseHandshakeFragments(record.fragment)
      .every((f) => f.msgType === HandshakeType.HelloVerifyRequest);
  } catch {
    return false;
  }
}

/** A record the attacker received, in words: plaintext alerts and handshake messages by name. */
function describeRecord(record: RecordView): string {
  const where = `epoch ${record.epoch}, seq ${record.seq}`;
  if (record.epoch === 0) {
    try {
      if (record.type === ContentType.Alert) {
        const alert = decodeAlert(record.fragment);
        const level = alert.level === AlertLevel.Fatal ? "fatal" : "warning";
        return `${level} alert ${alertName(alert.description)} (${where})`;
      }
      if (record.type === ContentType.Handshake) {
        const names = parseHandshakeFragments(record.fragment).map((f) =>
          Object.entries(HandshakeType).find(([, type]) => type === f.msgType)?.[0] ??
            `handshake type ${f.msgType}`
        );
        return `${names.join(" + ")} (${where})`;
      }
    } catch {
      // Not well-formed: described as a bare record below.
    }
  }
  return `record of type ${record.type} (${where})`;
}

/**
 * Lets `ms` of real time pass with the server running; fails at once, with
 * the server's log and stderr, if the process exits meanwhile.
 */
async function survive(server: ServerProcess, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const elapsed = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    const exit = await Promise.race([server.exited, elapsed]);
    if (exit !== undefined) {
      // Drains the pipes, so that the log below ends with the crash.
      await server.stop();
      const signal = exit.signal === null ? "" : `, ${exit.signal}`;
      assert.fail(
        `The server exited (code ${exit.code}${signal}) after the attack\n${server.describe()}`,
      );
    }
  } finally {
    clearTimeout(timer);
  }
}

/** An honest client's handshake and exchange, with the reply the Qt example server gives. */
async function honestExchange(server: ServerProcess): Promise<void> {
  const client = new DtlsClient({
    hostname: "127.0.0.1",
    port: server.port,
    identity: DEMO.identity,
    psk: parseHexKey(DEMO.keyHex, "the demo key"),
  });
  try {
    await client.connect(10_000);
    client.send("after the attack");
    const reply = new TextDecoder().decode(await client.receive(10_000));
    assert.equal(reply, `to (127.0.0.1:${client.localPort}): ACK`);
  } catch (error) {
    throw new Error(
      `Cannot serve an honest client after the attack: ${(error as Error).message}\n` +
        server.describe(),
      { cause: error },
    );
  } finally {
    await client.close();
  }
}

/** Runs the attacks against a fresh server on the `io` socket backend, then checks it still serves. */
async function attackThenServe(io: SocketIo, rewrites: readonly Rewrite[]): Promise<void> {
  await using server = await startServer(["--io", io]);
  const primed: Primed[] = [];
  try {
    // Every cookie exchange first, then every attack: all of them land
    // before the first retransmit timer can fire.
    for (const rewrite of rewrites) primed.push(await prime(server.port, rewrite));
    for (const { peer, hello, rewrite } of primed) await peer.sendRaw(forge(hello, rewrite));

    await survive(server, AFTERMATH_MS);
    await honestExchange(server);

    // None is expected: a socket error, an internal error (a bug caught at
    // the receive boundary) or a failed application handler is a finding.
    const errors = server.logs.filter((e) => e.level === "error");
    assert.deepEqual(errors, [], `errors in the log\n${server.describe()}`);

    for (const { peer, rewrite } of primed) {
      const answers = peer.receivedRecords().filter((r) => !isHelloVerifyRequest(r));
      const seen = answers.map(describeRecord);
      console.log(
        `${rewrite.name}: the attacker got ${seen.length > 0 ? seen.join(", ") : "nothing"}`,
      );
      assert.deepEqual(
        answers.filter((r) => r.type !== ContentType.Alert).map(describeRecord),
        [],
        `${rewrite.name}: the attacker gets nothing or an alert (got ${seen.join(", ")})`,
      );
    }

    assert.equal(await server.stop(), 0, `a clean exit on SIGTERM\n${server.describe()}`);
  } finally {
    await Promise.all(primed.map(({ peer }) => peer.close()));
  }
}

/** Both socket backends where FFI works here; Deno's alone otherwise (the reason is printed). */
const IOS = socketBackends("live crash");

for (const io of IOS) {
  Deno.test(`live crash (${io} socket): the ClientHello with the cookie in record 2^48-1`, () =>
    attackThenServe(io, [{ name: "seq 2^48-1", seq: LAST_SEQ }]));

  Deno.test(
    `live crash (${io} socket): the ClientHello with the cookie in records 2^48-2 and 2^48-3, ` +
      "and in 2^48-1 with message_seq 0xffff",
    () =>
      attackThenServe(io, [
        { name: "seq 2^48-2", seq: LAST_SEQ - 1 },
        { name: "seq 2^48-3", seq: LAST_SEQ - 2 },
        { name: "seq 2^48-1, message_seq 0xffff", seq: LAST_SEQ, messageSeq: 0xffff },
      ]),
  );
}
