/**
 * Property tests over the decoders and the endpoint fed random datagrams:
 * only the documented outcomes may result, never an uncaught exception or an
 * internal_error, and no connection without a valid cookie.
 *
 * The number of generated inputs scales with FUZZ_SCALE (default 1):
 * `deno task fuzz:long` runs the same properties twenty times longer. Each
 * suite counts what it generated; the last test checks the total.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DecodeError } from "../../src/codec/reader.ts";
import { pemBlocks } from "../../src/pki/server_certificate.ts";
import { CERT_TIME, clientAuthServer, trustingClient } from "../helpers/certificates.ts";
import { testPki } from "../helpers/pki.ts";
import { skipUnless } from "../helpers/server_process.ts";
import { clientHelloParams } from "../../src/cookie/cookie.ts";
import type { EndpointOutcome } from "../../src/connection/endpoint.ts";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import {
  decodeEcPointFormats,
  decodeRenegotiationInfo,
  decodeSignatureAlgorithms,
  decodeSupportedGroups,
} from "../../src/handshake/extensions.ts";
import { encodeHandshakeMessage, parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import {
  decodeAlert,
  decodeCertificate,
  decodeCertificateRequest,
  decodeCertificateVerify,
  decodeClientHello,
  decodeEcdheClientKeyExchange,
  decodeEcdhePskClientKeyExchange,
  decodeEcdhePskServerKeyExchange,
  decodeFinished,
  decodeHelloVerifyRequest,
  decodePskClientKeyExchange,
  decodePskServerKeyExchange,
  decodeServerHello,
  decodeServerHelloDone,
  decodeSignedEcdheServerKeyExchange,
  encodeCertificate,
  encodeEcdheClientKeyExchange,
  HandshakeType,
} from "../../src/handshake/messages.ts";
import {
  ContentType,
  DTLS_1_0,
  DTLS_1_2,
  encodeRecord,
  parseRecords,
} from "../../src/record/header.ts";
import { converse, testClient, testEndpoint } from "../helpers/drive.ts";
import { connectionConfig, ServerEndpoint } from "../../src/connection/endpoint.ts";
import { suiteByName } from "../../src/record/suites.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { seededRandom } from "../helpers/random.ts";
import { Pair, sentAlert, serverPsk } from "../helpers/sim.ts";

const SCALE = Number(Deno.env.get("FUZZ_SCALE") ?? "1") || 1;
let generated = 0;

/** Runs a property `runs × SCALE` times and counts the inputs. */
function check<T>(arb: fc.Arbitrary<T>, runs: number, predicate: (value: T) => void): void {
  const numRuns = Math.round(runs * SCALE);
  fc.assert(fc.property(arb, predicate), { numRuns });
  generated += numRuns;
}

const T0 = 1_000_000;
const OUTCOMES: EndpointOutcome["kind"][] = [
  "dropped",
  "hello_verify_request",
  "alert",
  "connection",
];

function onlyDecodeError(f: () => unknown): void {
  try {
    f();
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
  }
}

// ---- decoders ----------------------------------------------------------------------

const DECODERS: [string, (b: Uint8Array) => unknown][] = [
  ["ClientHello", decodeClientHello],
  ["HelloVerifyRequest", decodeHelloVerifyRequest],
  ["ServerHello", decodeServerHello],
  ["PSK ServerKeyExchange", decodePskServerKeyExchange],
  ["ECDHE-PSK ServerKeyExchange", decodeEcdhePskServerKeyExchange],
  ["PSK ClientKeyExchange", decodePskClientKeyExchange],
  ["ECDHE-PSK ClientKeyExchange", decodeEcdhePskClientKeyExchange],
  ["Finished", decodeFinished],
  ["ServerHelloDone", decodeServerHelloDone],
  ["Alert", decodeAlert],
  ["supported_groups", decodeSupportedGroups],
  ["ec_point_formats", decodeEcPointFormats],
  ["renegotiation_info", decodeRenegotiationInfo],
  ["handshake fragments", parseHandshakeFragments],
  ["cookie fields of ClientHello", clientHelloParams],
  ["Certificate", decodeCertificate],
  ["CertificateRequest", decodeCertificateRequest],
  ["CertificateVerify", decodeCertificateVerify],
  ["signed ECDHE ServerKeyExchange", decodeSignedEcdheServerKeyExchange],
  ["ECDHE ClientKeyExchange", decodeEcdheClientKeyExchange],
  ["signature_algorithms", decodeSignatureAlgorithms],
];

/** Bytes that look like a length-prefixed structure more often than uniform noise would. */
const structured = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.array(fc.constantFrom(0, 1, 2, 0x20, 0xfe, 0xfd, 0xff), { maxLength: 120 }).map((a) =>
    Uint8Array.from(a)
  ),
);

for (const [name, decode] of DECODERS) {
  Deno.test(`fuzz: ${name} decoder throws only DecodeError on arbitrary bytes`, () => {
    check(structured, 3_000, (b) => onlyDecodeError(() => decode(b)));
  });
}

Deno.test("fuzz: a real ClientHello, mutated, decodes or throws DecodeError", () => {
  const record = parseRecords(testClient("decoders", T0).pollTransmit()!).records[0]!;
  const body = parseHandshakeFragments(record.fragment)[0]!.body;
  check(mutation(body), 5_000, (b) => {
    onlyDecodeError(() => decodeClientHello(b));
    onlyDecodeError(() => clientHelloParams(b));
  });
});

Deno.test("fuzz: record headers: parseRecords never throws and accounts for every byte", () => {
  check(fc.uint8Array({ maxLength: 400 }), 10_000, (d) => {
    const { records, malformed } = parseRecords(d);
    let total = 0;
    for (const r of records) {
      assert.equal(r.raw.length, 13 + r.fragment.length);
      total += r.raw.length;
    }
    assert.ok(total <= d.length);
    // Bytes are only ever skipped with a malformed record counted.
    if (malformed === 0) assert.equal(total, d.length);
  });
});

// ---- the endpoint ------------------------------------------------------------------

/** Flips, truncates, extends or overwrites bytes of `base`. */
function mutation(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  const edit = fc.oneof(
    fc.record({
      kind: fc.constant("flip" as const),
      at: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    }),
    fc.record({
      kind: fc.constant("set" as const),
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
    fc.record({ kind: fc.constant("append" as const), bytes: fc.uint8Array({ maxLength: 40 }) }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 4 }).map((edits) => {
    let out = base.slice();
    for (const e of edits) {
      if (out.length === 0) break;
      switch (e.kind) {
        case "flip":
          out[e.at % out.length]! ^= 1 << e.bit;
          break;
        case "set":
          out[e.at % out.length] = e.value;
          break;
        case "cut":
          out = out.slice(0, e.at % out.length);
          break;
        case "append": {
          const longer = new Uint8Array(out.length + e.bytes.length);
          longer.set(out);
          longer.set(e.bytes, out.length);
          out = longer;
          break;
        }
      }
    }
    return out;
  });
}

/** A record of plausible header and arbitrary body: reaches past the header checks. */
const plausibleRecord = fc.record({
  type: fc.constantFrom(20, 21, 22, 23, 0, 99, 255),
  version: fc.constantFrom(DTLS_1_2, DTLS_1_0, 0x0303, 0xfefc),
  epoch: fc.constantFrom(0, 1, 2, 0xffff),
  seq: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
  body: fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    // A handshake header in front of random bytes.
    fc.record({
      msgType: fc.constantFrom(1, 2, 3, 11, 12, 14, 16, 20, 99),
      length: fc.integer({ min: 0, max: 0xffffff }),
      seq: fc.integer({ min: 0, max: 10 }),
      offset: fc.integer({ min: 0, max: 300 }),
      rest: fc.uint8Array({ maxLength: 150 }),
    }).map((h) => {
      const out = new Uint8Array(12 + h.rest.length);
      out[0] = h.msgType;
      out[1] = h.length >> 16;
      out[2] = h.length >> 8;
      out[3] = h.length;
      out[4] = h.seq >> 8;
      out[5] = h.seq;
      out[6] = h.offset >> 16;
      out[7] = h.offset >> 8;
      out[8] = h.offset;
      out[9] = 0;
      out[10] = h.rest.length >> 8;
      out[11] = h.rest.length;
      out.set(h.rest, 12);
      return out;
    }),
  ),
}).map((r) => encodeRecord(r.type, r.version, r.epoch, r.seq, r.body));

const datagram = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.array(plausibleRecord, { minLength: 1, maxLength: 3 }).map((rs) => {
    const out = new Uint8Array(rs.reduce((n, r) => n + r.length, 0));
    let at = 0;
    for (const r of rs) {
      out.set(r, at);
      at += r.length;
    }
    return out;
  }),
);

Deno.test("fuzz: the endpoint answers random datagrams only with drop, HelloVerifyRequest or a stateless alert, never more bytes", () => {
  const endpoint = testEndpoint({}, "fuzz/random");
  check(fc.tuple(datagram, fc.integer({ min: 1, max: 65535 })), 20_000, ([d, port]) => {
    const out = endpoint.handleDatagram(d, `10.9.0.1:${port}`, T0);
    assert.ok(out.kind !== "connection", out.kind);
    if (out.kind !== "dropped") assert.ok(out.datagram.length <= d.length);
    assert.equal(endpoint.size, 0);
  });
});

Deno.test("fuzz: mutated ClientHellos without a valid cookie never create a connection", () => {
  const endpoint = testEndpoint({}, "fuzz/hello");
  const hello = testClient("fuzz/hello", T0, {}).pollTransmit()!;
  check(mutation(hello), 20_000, (d) => {
    const out = endpoint.handleDatagram(d, "10.9.0.2:5000", T0);
    assert.ok(out.kind !== "connection", out.kind);
    if (out.kind !== "dropped") assert.ok(out.datagram.length <= d.length);
    assert.equal(endpoint.size, 0);
  });
});

Deno.test("fuzz: a mutated ClientHello with a cookie creates a connection only if what the cookie covers is intact", () => {
  const peer = "10.9.0.3:5000";
  // No per-address rate limit, so that every intact mutation gets as far as a connection.
  const minted = testEndpoint({ handshakeRate: 0 }, "fuzz/cookie");
  const client = testClient("fuzz/cookie", T0);
  const hvr = minted.handleDatagram(client.pollTransmit()!, peer, T0);
  assert.equal(hvr.kind, "hello_verify_request");
  client.handleDatagram(hvr.datagram, T0);
  const withCookie = client.pollTransmit()!;
  const covered = (d: Uint8Array) => {
    const record = parseRecords(d).records[0]!;
    const p = clientHelloParams(parseHandshakeFragments(record.fragment)[0]!.body);
    return [p.head, p.suites, p.compression, p.cookie].map((b) => Array.from(b).join(","));
  };
  const original = covered(withCookie);
  check(mutation(withCookie), 5_000, (d) => {
    const out = minted.handleDatagram(d, peer, T0);
    assert.ok(OUTCOMES.includes(out.kind));
    if (out.kind === "connection" && out.created) {
      assert.deepEqual(covered(d), original, "a connection from a verified cookie only");
      out.connection.abort("fuzz");
      minted.remove(peer);
    }
    if (out.kind === "connection" && !out.created) {
      // An existing connection (none is kept): cannot happen here.
      assert.fail("routed to a connection that should not exist");
    }
  });
});

Deno.test("fuzz: a half-open connection fed random handshake input fails only with a protocol alert", () => {
  // No per-address rate limit: virtual time stands still, so 256 addresses
  // would run out of handshake tokens after 25,600 runs (as `fuzz:long` does).
  const endpoint = testEndpoint({ handshakeRate: 0 }, "fuzz/halfopen");
  let n = 0;
  const message = fc.record({
    msgType: fc.constantFrom(
      HandshakeType.ClientHello,
      HandshakeType.ClientKeyExchange,
      HandshakeType.Finished,
      HandshakeType.ServerHello,
      77,
    ),
    seq: fc.integer({ min: 0, max: 4 }),
    body: fc.uint8Array({ maxLength: 120 }),
    type: fc.constantFrom(
      ContentType.Handshake,
      ContentType.ChangeCipherSpec,
      ContentType.Alert,
      23,
      99,
    ),
  });
  check(fc.array(message, { minLength: 1, maxLength: 4 }), 3_000, (messages) => {
    const peer = `10.9.1.${n & 0xff}:${1000 + (n++ >> 8)}`;
    const client = testClient(`halfopen${n}`, T0);
    converse(endpoint, client, peer, T0, (_d, index) => index < 2);
    const server = endpoint.get(peer)!;
    assert.ok(server !== undefined && !server.isClosed);
    let seq = 10;
    for (const m of messages) {
      const fragment = m.type === ContentType.Handshake
        ? encodeHandshakeMessage(m.msgType, m.seq, m.body)
        : m.body;
      endpoint.handleDatagram(encodeRecord(m.type, DTLS_1_2, 0, seq++, fragment), peer, T0);
    }
    for (let e = server.pollEvent(); e; e = server.pollEvent()) {
      if (e.type === "closed") assert.ok(!e.reason.startsWith("internal error"), e.reason);
      if (e.type === "alert" && e.direction === "sent") {
        assert.notEqual(e.description, "internal_error");
      }
      if (e.type === "handshake_complete") assert.fail("no handshake completes on random input");
    }
    server.abort("fuzz done");
    endpoint.remove(peer);
  });
});

Deno.test({
  name:
    "fuzz: a certificate handshake waiting for the client's certificate, fed random messages and timers, fails only with a protocol alert",
  ignore: skipUnless("openssl").ignore,
  fn() {
    const pki = testPki();
    const endpoint = new ServerEndpoint({
      connection: connectionConfig(nobleProvider, seededRandom("fuzz/cert")),
      psk: serverPsk(clientAuthServer()),
      handshakeRate: 0,
    });
    const clientChain = pemBlocks(Deno.readTextFileSync(pki.clientCert), "CERTIFICATE");
    let n = 0;
    const message = fc.record({
      msgType: fc.constantFrom(
        HandshakeType.Certificate,
        HandshakeType.ClientKeyExchange,
        HandshakeType.CertificateVerify,
        HandshakeType.Finished,
        HandshakeType.CertificateRequest,
      ),
      seq: fc.integer({ min: 1, max: 5 }),
      body: fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc.constant(encodeCertificate(clientChain)),
        fc.constant(encodeCertificate([])),
        fc.constant(
          encodeEcdheClientKeyExchange(
            nobleProvider.keyShare("x25519", seededRandom("k")).publicKey,
          ),
        ),
      ),
      type: fc.constantFrom(
        ContentType.Handshake,
        ContentType.Handshake,
        ContentType.ChangeCipherSpec,
      ),
    });
    check(fc.array(message, { minLength: 1, maxLength: 5 }), 600, (messages) => {
      const peer = `10.9.7.${n & 0xff}:${1000 + (n++ >> 8)}`;
      const client = testClient(`cert${n}`, CERT_TIME, {
        ...trustingClient(),
        suites: [suiteByName("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")],
      });
      converse(endpoint, client, peer, CERT_TIME, (_d, index) => index < 2);
      const server = endpoint.get(peer);
      assert.ok(server !== undefined && !server.isClosed);
      let seq = 10;
      for (const m of messages) {
        const fragment = m.type === ContentType.Handshake
          ? encodeHandshakeMessage(m.msgType, m.seq, m.body)
          : new Uint8Array([1]);
        endpoint.handleDatagram(
          encodeRecord(m.type, DTLS_1_2, 0, seq++, fragment),
          peer,
          CERT_TIME,
        );
      }
      // Time goes on: every timer of the half-open handshake fires.
      for (let t = CERT_TIME; t < CERT_TIME + 40_000; t += 5_000) endpoint.handleTimeouts(t);
      for (let e = server.pollEvent(); e; e = server.pollEvent()) {
        noInternalError(e);
        if (e.type === "handshake_complete") assert.fail("no handshake completes on random input");
      }
      server.abort("fuzz done");
      endpoint.remove(peer);
    });
  },
});

Deno.test("fuzz: an established connection fed random datagrams stays up and delivers nothing", () => {
  const endpoint = testEndpoint({}, "fuzz/established");
  const peer = "10.9.2.1:5000";
  const client = testClient("fuzz/established", T0);
  converse(endpoint, client, peer, T0);
  const server = endpoint.get(peer)!;
  assert.equal(server.isEstablished, true);
  for (let e = server.pollEvent(); e; e = server.pollEvent()) void e;
  check(datagram, 10_000, (d) => {
    const out = endpoint.handleDatagram(d, peer, T0);
    assert.ok(OUTCOMES.includes(out.kind));
    assert.equal(server.isEstablished, true);
    for (let e = server.pollEvent(); e; e = server.pollEvent()) {
      assert.notEqual(e.type, "data");
      assert.notEqual(e.type, "closed");
    }
    while (server.pollTransmit()) { /* warnings or HVR answers are fine */ }
  });
  // Still talking afterwards.
  client.send(new TextEncoder().encode("after the storm"));
  endpoint.handleDatagram(client.pollTransmit()!, peer, T0);
  const data = [];
  for (let e = server.pollEvent(); e; e = server.pollEvent()) if (e.type === "data") data.push(e);
  assert.equal(data.length, 1);
});

// ---- numbers at their limits, with time advancing after each input ---------------------

/** Values at and around `limit` (0, 1, limit-1, limit, ...) as often as anywhere in between. */
function near(limit: number, max = limit): fc.Arbitrary<number> {
  const edges = [0, 1, 2, limit - 2, limit - 1, limit, limit + 1].filter((v) => v >= 0 && v <= max);
  return fc.oneof(fc.constantFrom(...edges), fc.integer({ min: 0, max }));
}

/** A record header written by hand: every field, the length too, may be at or past its limit. */
const edgeRecord = fc.record({
  type: fc.constantFrom(20, 21, 22, 23, 25, 0, 255),
  version: fc.constantFrom(DTLS_1_2, DTLS_1_0, 0xfefc, 0xfeff, 0x0303),
  epoch: near(0x10000, 0xffff),
  seq: near(2 ** 48, 2 ** 48 - 1),
  lengthLie: fc.constantFrom(0, 0, 0, 1, -1, 0x4000, 0x4801),
  handshake: fc.record({
    msgType: fc.constantFrom(1, 11, 12, 14, 16, 20, 255),
    length: near(0x1000000, 0xffffff),
    messageSeq: near(0x10000, 0xffff),
    offset: near(0x1000000, 0xffffff),
    fragmentLength: near(0x4000, 0xffffff),
  }),
  bodyLength: near(0x4000, 0x4801),
  asHandshake: fc.boolean(),
}).map((r) => {
  const body = new Uint8Array(r.asHandshake ? 12 + Math.min(r.bodyLength, 300) : r.bodyLength);
  if (r.asHandshake) {
    const h = r.handshake;
    const u24 = (at: number, v: number) => {
      body[at] = v >>> 16;
      body[at + 1] = v >>> 8;
      body[at + 2] = v;
    };
    body[0] = h.msgType;
    u24(1, h.length);
    body[4] = h.messageSeq >>> 8;
    body[5] = h.messageSeq;
    u24(6, h.offset);
    u24(9, h.fragmentLength);
  }
  const out = new Uint8Array(13 + body.length);
  out[0] = r.type;
  out[1] = r.version >>> 8;
  out[2] = r.version;
  out[3] = r.epoch >>> 8;
  out[4] = r.epoch;
  for (let i = 0; i < 6; i++) out[5 + i] = Math.floor(r.seq / 2 ** (8 * (5 - i))) % 256;
  const length = Math.max(0, Math.min(0xffff, body.length + r.lengthLie));
  out[11] = length >>> 8;
  out[12] = length;
  out.set(body, 13);
  return out;
});

/** Fires every timer of every connection up to `horizon`, draining output; returns the last `now`. */
function advancePastTimers(
  endpoint: ReturnType<typeof testEndpoint>,
  from: number,
  horizon: number,
  check: (e: ConnectionEvent) => void,
): number {
  let now = from;
  for (let step = 0; step < 1_000; step++) {
    let due: number | undefined;
    for (const { connection: c } of endpoint.entries()) {
      const t = c.pollTimeout();
      if (t !== undefined && (due === undefined || t < due)) due = t;
    }
    if (due === undefined || due > horizon) break;
    now = Math.max(now, due);
    for (const { peer, connection: c } of endpoint.handleTimeouts(now)) {
      for (let e = c.pollEvent(); e; e = c.pollEvent()) check(e);
      while (c.pollTransmit());
      if (c.isClosed) endpoint.remove(peer, c);
    }
  }
  return now;
}

/** No internal error may ever come out of hostile input. */
function noInternalError(e: ConnectionEvent): void {
  if (e.type === "closed") assert.equal(e.internal, undefined, e.reason);
  if (e.type === "alert" && e.direction === "sent") {
    assert.notEqual(e.description, "internal_error");
  }
}

Deno.test("fuzz: hostile records with fields at their limits, then every timer fired: no internal error, no amplification", () => {
  let n = 0;
  check(
    fc.tuple(fc.boolean(), fc.array(edgeRecord, { minLength: 1, maxLength: 4 })),
    1_500,
    ([established, records]) => {
      const endpoint = testEndpoint({ handshakeRate: 0 }, `fuzz/edges${n % 4}`);
      const peer = `10.9.3.${n & 0xff}:${2000 + (n++ >> 8)}`;
      const client = testClient(`edges${n % 16}`, T0);
      converse(endpoint, client, peer, T0, established ? undefined : (_d, i) => i < 2);
      const server = endpoint.get(peer)!;
      assert.equal(server.isEstablished, established);
      for (let e = server.pollEvent(); e; e = server.pollEvent()) noInternalError(e);
      while (server.pollTransmit());
      let now = T0;
      for (const record of records) {
        now += 10;
        const out = endpoint.handleDatagram(record, peer, now);
        if (out.kind !== "connection") {
          if (out.kind !== "dropped") assert.ok(out.datagram.length <= record.length);
        } else {
          let bytesOut = 0;
          for (let e = out.connection.pollEvent(); e; e = out.connection.pollEvent()) {
            noInternalError(e);
          }
          for (let d = out.connection.pollTransmit(); d; d = out.connection.pollTransmit()) {
            bytesOut += d.length;
          }
          // Nothing here authenticates: at most what came in once keys are in
          // use, three times that before (an alert ends it either way).
          assert.ok(bytesOut <= (established ? 1 : 3) * Math.max(record.length, 40), `${bytesOut}`);
        }
        // Time goes on after every input, past the retransmission timers and
        // the handshake deadline, so that a timer cannot hide what input did.
        now = advancePastTimers(endpoint, now, now + 40_000, noInternalError);
      }
      // And on past the idle timeout: everything ends quietly.
      advancePastTimers(endpoint, now, now + 700_000, noInternalError);
      assert.equal(endpoint.internalErrors, 0);
    },
  );
});

Deno.test("fuzz: a ClientHello with a valid cookie at any record sequence or message_seq is served or dropped, and its timers are harmless", () => {
  let n = 0;
  check(fc.tuple(near(2 ** 48, 2 ** 48 - 1), near(0x10000, 0xffff)), 400, ([seq, messageSeq]) => {
    const endpoint = testEndpoint({ handshakeRate: 0 }, "fuzz/hello-edges");
    const peer = `10.9.4.${n & 0xff}:${2000 + (n++ >> 8)}`;
    const client = testClient(`hello-edges${n % 16}`, T0);
    const hvr = endpoint.handleDatagram(client.pollTransmit()!, peer, T0);
    assert.equal(hvr.kind, "hello_verify_request");
    if (hvr.kind !== "hello_verify_request") return;
    client.handleDatagram(hvr.datagram, T0);
    const record = parseRecords(client.pollTransmit()!).records[0]!;
    const fragment = new Uint8Array(record.fragment);
    fragment[4] = messageSeq >>> 8;
    fragment[5] = messageSeq;
    const out = endpoint.handleDatagram(
      encodeRecord(ContentType.Handshake, DTLS_1_2, 0, seq, fragment),
      peer,
      T0,
    );
    assert.ok(out.kind === "connection" || out.kind === "dropped", out.kind);
    if (out.kind === "connection") {
      for (let e = out.connection.pollEvent(); e; e = out.connection.pollEvent()) {
        noInternalError(e);
      }
      while (out.connection.pollTransmit());
    }
    advancePastTimers(endpoint, T0, T0 + 700_000, noInternalError);
    assert.equal(endpoint.size, 0, "every handshake ended by its deadline");
    assert.equal(endpoint.internalErrors, 0);
  });
});

Deno.test("fuzz: handshake buffers from many addresses stay within every budget and are all given back", () => {
  const limits = { perConnection: 8 * 1024, perSource: 20 * 1024, total: 48 * 1024 };
  const input = fc.array(
    fc.record({
      source: fc.integer({ min: 0, max: 3 }),
      port: fc.integer({ min: 0, max: 5 }),
      epoch: fc.constantFrom(0, 1),
      messageSeq: fc.integer({ min: 1, max: 9 }),
      offset: near(4096, 4096),
      length: near(1200, 1200),
      declared: fc.constantFrom(4096, 16_384),
    }),
    { minLength: 1, maxLength: 60 },
  );
  let n = 0;
  check(input, 300, (fragments) => {
    const endpoint = testEndpoint({
      handshakeRate: 0,
      maxReassemblyPerSource: limits.perSource,
      maxReassemblyTotal: limits.total,
      connection: connectionConfig(nobleProvider, seededRandom("budget"), {
        maxReassemblyPerHandshake: limits.perConnection,
      }),
    }, "fuzz/budget");
    const peer = (f: { source: number; port: number }) => `10.9.5.${f.source}:${3000 + f.port}`;
    let seq = 30;
    for (const f of fragments) {
      if (endpoint.get(peer(f)) === undefined) {
        converse(endpoint, testClient(`budget${n++ % 8}`, T0), peer(f), T0, (_d, i) => i < 2);
      }
      const length = Math.min(f.length, f.declared - Math.min(f.offset, f.declared));
      const body = new Uint8Array(12 + length);
      body[0] = HandshakeType.ClientKeyExchange;
      body[1] = f.declared >> 16;
      body[2] = f.declared >> 8;
      body[3] = f.declared;
      body[5] = f.messageSeq;
      const offset = Math.min(f.offset, f.declared);
      body[6] = offset >> 16;
      body[7] = offset >> 8;
      body[8] = offset;
      body[10] = length >> 8;
      body[11] = length;
      endpoint.handleDatagram(
        encodeRecord(ContentType.Handshake, DTLS_1_2, f.epoch, seq++, body),
        peer(f),
        T0,
      );
      for (const { connection: c } of endpoint.entries()) {
        assert.ok(c.bufferedBytes <= limits.perConnection);
        while (c.pollEvent());
        while (c.pollTransmit());
      }
      for (let s = 0; s < 4; s++) {
        assert.ok(endpoint.reassemblyBytesOf(`10.9.5.${s}:1`) <= limits.perSource);
      }
      assert.ok(endpoint.reassemblyBytes <= limits.total);
    }
    // Whatever happened, once every handshake is over nothing stays charged.
    advancePastTimers(endpoint, T0, T0 + 60_000, noInternalError);
    for (const { peer, connection: c } of [...endpoint.entries()]) {
      c.abort("fuzz done");
      endpoint.remove(peer, c);
    }
    assert.equal(endpoint.reassemblyBytes, 0);
  });
});

Deno.test("fuzz: any unknown identity gets the same datagrams from the server as the known identity with a wrong key", () => {
  const serverSide = (pair: Pair) =>
    pair.wire.filter((w) => w.direction === "s2c").map((w) => w.datagram.length);
  const wrongKey = new Pair({ seed: "uniform", client: { psk: new Uint8Array(6).fill(7) } });
  wrongKey.run();
  const expected = serverSide(wrongKey);
  check(fc.uint8Array({ minLength: 0, maxLength: 128 }), 150, (identity) => {
    if (new TextDecoder().decode(identity) === "Qt DTLS example client") return;
    const pair = new Pair({ seed: "uniform", client: { identity } });
    pair.run();
    assert.deepEqual(serverSide(pair), expected);
    assert.equal(sentAlert(pair.serverEvents), "bad_record_mac");
  });
});

Deno.test("fuzz: at least 100,000 inputs were generated across these suites", () => {
  assert.ok(generated >= 100_000 * SCALE * 0.99, `${generated} inputs`);
  console.log(`fuzz: ${generated} generated inputs (FUZZ_SCALE=${SCALE})`);
});
