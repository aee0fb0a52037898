/**
 * Findings of the adversarial review of the DTLS 1.3 server (see
 * docs/security.md, "DTLS 1.3"): each test failed on the code as reviewed
 * and guards its fix.
 */

import assert from "node:assert/strict";
import type { Connection13 } from "../../src/connection/connection13.ts";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import { connectionConfig, ServerEndpoint } from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { Writer } from "../../src/codec/writer.ts";
import { messageHash } from "../../src/handshake/client_hello13.ts";
import {
  encodeSupportedGroups,
  ExtensionType,
  NamedGroup,
} from "../../src/handshake/extensions.ts";
import { encodeHandshakeMessage, parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import { encodeClientHello, type Extension, HandshakeType } from "../../src/handshake/messages.ts";
import {
  decodeServerHello13,
  encodeKeyUpdate,
  ExtensionType13,
  HandshakeType13,
  PskMode,
  transcriptMessage,
} from "../../src/handshake/messages13.ts";
import {
  deriveSecret,
  emptyHash,
  finishedKey,
  finishedMac,
  hashLength,
  hkdfExtract,
} from "../../src/handshake/tls13_keys.ts";
import { ContentType, DTLS_1_2, encodeRecord } from "../../src/record/header.ts";
import { SUITES_13 } from "../../src/record/suites13.ts";
import { IDENTITY, KEY, Pair, PEER, serverPsk } from "../helpers/sim.ts";
import { seededRandom } from "../helpers/random.ts";

const AES128 = SUITES_13.find((s) => s.name === "TLS_AES_128_GCM_SHA256")!;

// ---- a hostile client: ClientHellos built by hand -------------------------------------

interface HelloOptions {
  random?: Uint8Array;
  suites?: number[];
  versions?: number[];
  groups?: number[] | undefined;
  shares?: { group: number; keyExchange: Uint8Array }[] | undefined;
  modes?: number[];
  /** PSK identities; undefined: no pre_shared_key at all. */
  identities?: Uint8Array[] | undefined;
  psk?: Uint8Array;
  hash?: "sha256" | "sha384";
  cookie?: Uint8Array;
  cid?: Uint8Array;
  extra?: Extension[];
  /** Transcript before this ClientHello (message_hash, HelloRetryRequest). */
  before?: Uint8Array[];
}

const RANDOM = new Uint8Array(32).fill(0x42);

function clientHello(o: HelloOptions = {}): Uint8Array {
  const p = nobleProvider;
  const hash = o.hash ?? "sha256";
  const size = hashLength(hash);
  const extensions: Extension[] = [
    {
      type: ExtensionType13.SupportedVersions,
      data: new Writer(16).vec8((l) => {
        for (const v of o.versions ?? [0xfefc]) l.u16(v);
      }).finish(),
    },
  ];
  if (o.groups !== undefined || !("groups" in o)) {
    extensions.push({
      type: ExtensionType.SupportedGroups,
      data: encodeSupportedGroups(o.groups ?? [NamedGroup.x25519]),
    });
  }
  if (o.shares !== undefined || !("shares" in o)) {
    const shares = o.shares ??
      [{
        group: NamedGroup.x25519,
        keyExchange: p.keyShare("x25519", seededRandom("ks")).publicKey,
      }];
    extensions.push({
      type: ExtensionType13.KeyShare,
      data: new Writer(256).vec16((l) => {
        for (const s of shares) l.u16(s.group).opaque16(s.keyExchange);
      }).finish(),
    });
  }
  extensions.push({
    type: ExtensionType13.PskKeyExchangeModes,
    data: new Writer(8).vec8((l) => {
      for (const m of o.modes ?? [PskMode.PskDheKe]) l.u8(m);
    }).finish(),
  });
  if (o.cid !== undefined) {
    extensions.push({
      type: ExtensionType.ConnectionId,
      data: new Writer(40).opaque8(o.cid).finish(),
    });
  }
  if (o.cookie !== undefined) {
    extensions.push({
      type: ExtensionType13.Cookie,
      data: new Writer(o.cookie.length + 2).opaque16(o.cookie).finish(),
    });
  }
  extensions.push(...(o.extra ?? []));
  const identities = "identities" in o ? o.identities : [IDENTITY];
  if (identities !== undefined) {
    extensions.push({
      type: ExtensionType13.PreSharedKey,
      data: new Writer(256)
        .vec16((ids) => {
          for (const id of identities) ids.opaque16(id).u16(0).u16(0);
        })
        .vec16((bs) => {
          for (const _ of identities) bs.opaque8(new Uint8Array(size));
        })
        .finish(),
    });
  }
  const body = encodeClientHello({
    clientVersion: 0xfefd,
    random: o.random ?? RANDOM,
    sessionId: new Uint8Array(0),
    cookie: new Uint8Array(0),
    cipherSuites: o.suites ?? [AES128.id],
    compressionMethods: new Uint8Array([0]),
    extensions,
  });
  if (identities !== undefined) {
    // Binder of the first identity with `psk` (the rest keep zeros).
    const bindersLength = 2 + identities.length * (1 + size);
    const framed = transcriptMessage(HandshakeType.ClientHello, body);
    const transcript = p.runningHash(hash);
    for (const b of o.before ?? []) transcript.update(b);
    transcript.update(framed.subarray(0, framed.length - bindersLength));
    const early = hkdfExtract(p, hash, new Uint8Array(0), o.psk ?? KEY);
    const binderKey = deriveSecret(p, hash, early, "ext binder", emptyHash(p, hash));
    const binder = finishedMac(p, hash, finishedKey(p, hash, binderKey), transcript.digest());
    body.set(binder, body.length - bindersLength + 2 + 1);
  }
  return body;
}

function helloRecord(body: Uint8Array, seq: number, messageSeq: number): Uint8Array {
  return encodeRecord(
    ContentType.Handshake,
    DTLS_1_2,
    0,
    seq,
    encodeHandshakeMessage(HandshakeType.ClientHello, messageSeq, body),
  );
}

function newEndpoint(overrides: { cidLength?: number; mtu?: number } = {}): ServerEndpoint {
  return new ServerEndpoint({
    connection: connectionConfig(
      nobleProvider,
      seededRandom("review13/server"),
      overrides.mtu === undefined ? {} : { mtu: overrides.mtu },
    ),
    psk: serverPsk(),
    maxConnections: 100,
    idleTimeoutMs: 600_000,
    cidLength: overrides.cidLength ?? 0,
  });
}

/** The body of the first handshake message of an epoch-0 datagram. */
function firstMessage(datagram: Uint8Array) {
  const length = (datagram[11]! << 8) | datagram[12]!;
  return parseHandshakeFragments(datagram.subarray(13, 13 + length))[0]!;
}

/** CH1 -> HRR -> CH2 against `endpoint` from `peer`; `second` tweaks the second ClientHello. */
function retried(
  endpoint: ServerEndpoint,
  first: HelloOptions,
  second: (cookie: Uint8Array, before: Uint8Array[]) => HelloOptions,
  peer = PEER,
  now = 1_000_000,
) {
  const ch1 = clientHello(first);
  const hrr = endpoint.handleDatagram(helloRecord(ch1, 0, 0), peer, now);
  assert.equal(hrr.kind, "hello_retry_request");
  const hrrBody = firstMessage((hrr as { datagram: Uint8Array }).datagram).body;
  const retry = decodeServerHello13(hrrBody);
  const hash = first.hash ?? "sha256";
  const before = [
    messageHash(hash, nobleProvider.hash(hash, transcriptMessage(HandshakeType.ClientHello, ch1))),
    transcriptMessage(HandshakeType.ServerHello, hrrBody),
  ];
  const o = second(retry.cookie!, before);
  const ch2 = clientHello({ ...first, ...o, cookie: o.cookie ?? retry.cookie!, before });
  return { outcome: endpoint.handleDatagram(helloRecord(ch2, 1, 1), peer, now), ch2, retry };
}

function drain<T>(poll: () => T | undefined): T[] {
  const out: T[] = [];
  for (let x = poll(); x !== undefined; x = poll()) out.push(x);
  return out;
}

function closed(events: readonly ConnectionEvent[]) {
  const e = events.find((e) => e.type === "closed");
  return e?.type === "closed" ? e : undefined;
}

// ---- sanity: the hand-made client completes the stateless step -------------------------

Deno.test("dtls13 review: the harness: a hand-built ClientHello pair makes a connection", () => {
  const endpoint = newEndpoint();
  const { outcome } = retried(endpoint, {}, () => ({}));
  assert.equal(outcome.kind, "connection");
  const c = (outcome as unknown as { connection: Connection13 }).connection;
  const events = drain(() => c.pollEvent());
  assert.equal(closed(events), undefined, JSON.stringify(events));
  assert.ok(drain(() => c.pollTransmit()).length > 0);
});

// ---- findings ---------------------------------------------------------------------------

Deno.test("dtls13 review: an unauthenticated epoch-0 repeat never makes the server answer with more than 3x its bytes (32-byte client CID)", () => {
  // The server's flight is lost on its way: it stays unacknowledged.
  const pair = new Pair({
    dtls13: { connectionId: new Uint8Array(32).fill(0xcc) },
    cidLength: 6,
    script: (d, i) => d === "s2c" && i >= 1 ? "drop" : "deliver",
  });
  pair.pump();
  const server = pair.server!;
  drain(() => server.pollTransmit());
  // Anyone who can put the client's address on a datagram: a ClientHello
  // fragment header (message_seq 1, offset 0, no bytes) in a fresh record, padded.
  for (let n = 25; n < 400; n++) {
    pair.now += 10_000; // past the resend rate limit; no timer is fired
    const datagram = new Uint8Array(n);
    datagram.set(
      encodeRecord(
        22,
        DTLS_1_2,
        0,
        5000 + n,
        new Uint8Array([1, 0, 0, 200, 0, 1, 0, 0, 0, 0, 0, 0]),
      ),
    );
    pair.endpoint.handleDatagram(datagram, PEER, pair.now);
    const sent = drain(() => server.pollTransmit()).reduce((a, d) => a + d.length, 0);
    assert.ok(sent <= 3 * n, `${n} bytes in, ${sent} bytes out (${(sent / n).toFixed(2)}x)`);
  }
});

Deno.test("dtls13 review: a KeyUpdate asking for ours is answered even when a NewConnectionId of ours is in flight", () => {
  let dropS2c = false;
  const pair = new Pair({
    dtls13: { connectionId: new Uint8Array([1, 2]) },
    cidLength: 6,
    script: (d) => dropS2c && d === "s2c" ? "drop" : "deliver",
  });
  pair.run();
  pair.pump();
  const client = pair.client as Connection13;
  pair.serverEvents.length = 0;
  // The server's NewConnectionId (answer to this) is lost: it stays in flight.
  dropS2c = true;
  assert.ok(client.requestConnectionIds(1));
  pair.pump();
  // message_seq: CH 0, CH 1, Finished 2, RequestConnectionId 3.
  client.injectRecord(
    ContentType.Handshake,
    encodeHandshakeMessage(HandshakeType13.KeyUpdate, 4, encodeKeyUpdate(true)),
  );
  pair.pump();
  dropS2c = false;
  for (let i = 0; i < 10 && pair.advance(); i++) pair.pump();
  pair.server!.send(new TextEncoder().encode("application data"));
  pair.pump();
  for (let i = 0; i < 10 && pair.advance(); i++) pair.pump();
  const updates = pair.serverEvents.flatMap((e) =>
    e.type === "key_update" ? [`${e.direction}:${e.epoch}`] : []
  );
  assert.ok(updates.includes("received:4"), updates.join());
  // RFC 8446 §4.6.3: update_requested MUST be answered with a KeyUpdate before our next data.
  assert.ok(updates.some((u) => u.startsWith("sent:")), `no KeyUpdate of ours: ${updates.join()}`);
});

Deno.test("dtls13 review: a second ClientHello replayed after its connection is gone makes no new connection (and no retransmitting flight)", () => {
  const pair = new Pair({ dtls13: {} });
  pair.run();
  pair.pump();
  const ch2 = pair.wire.filter((w) => w.direction === "c2s" && w.datagram[0] === 22)[1]!.datagram;
  pair.client.close();
  pair.pump();
  assert.ok(pair.server!.isClosed);
  pair.endpoint.remove(PEER);
  // An observer replays the captured datagram, spoofing the client's address,
  // well within the cookie's lifetime.
  pair.now += 5_000;
  const outcome = pair.endpoint.handleDatagram(ch2, PEER, pair.now);
  let sent = 0;
  if (outcome.kind === "connection") {
    const c = outcome.connection;
    for (let i = 0; i < 50; i++) {
      for (const d of drain(() => c.pollTransmit())) sent += d.length;
      const t = pair.endpoint.pollTimeout();
      if (t === undefined) break;
      pair.now = Math.max(pair.now, t);
      pair.endpoint.handleTimeouts(pair.now);
    }
  }
  assert.notEqual(
    outcome.kind,
    "connection",
    `a replayed ${ch2.length}-byte datagram made a connection that sent ${sent} bytes`,
  );
});

Deno.test("dtls13 review: a peer's 255-byte Connection ID at the smallest MTU (256) is no internal error", () => {
  const pair = new Pair({
    dtls13: { connectionId: new Uint8Array([1, 2]) },
    cidLength: 6,
    serverMtu: 256,
  });
  pair.run();
  pair.pump();
  const client = pair.client as Connection13;
  pair.serverEvents.length = 0;
  const cid = new Uint8Array(255).fill(0xab);
  client.injectRecord(
    ContentType.Handshake,
    encodeHandshakeMessage(
      HandshakeType13.NewConnectionId,
      3,
      new Writer(300).vec16((l) => l.opaque8(cid)).u8(0).finish(),
    ),
  );
  pair.pump();
  client.injectRecord(
    ContentType.Handshake,
    encodeHandshakeMessage(HandshakeType13.RequestConnectionId, 4, new Uint8Array([1])),
  );
  pair.pump();
  const end = closed(pair.serverEvents);
  assert.equal(end?.internal, undefined, `closed as an internal error: ${end?.reason}`);
  assert.equal(pair.endpoint.internalErrors, 0);
});

Deno.test("dtls13 review: a ClientHello with key_share but no supported_groups is missing_extension (RFC 8446 §9.2)", () => {
  const endpoint = newEndpoint();
  const outcome = endpoint.handleDatagram(
    helloRecord(clientHello({ groups: undefined }), 0, 0),
    PEER,
    1_000_000,
  );
  assert.equal(outcome.kind, "alert");
  assert.equal(outcome.kind === "alert" && outcome.description, "missing_extension");
});
