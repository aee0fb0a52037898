/**
 * The DTLS 1.3 codecs: each message and extension round trips, every cut
 * of a well-formed encoding is a DecodeError, and the fields a peer could
 * set out of range are refused; the stateless retry's choice and cookie.
 */

import assert from "node:assert/strict";
import { DecodeError } from "../../src/codec/reader.ts";
import { Writer } from "../../src/codec/writer.ts";
import { CookieAuthority } from "../../src/cookie/cookie.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import {
  chooseRetry,
  decodeRetryState,
  DEFAULT_HELLO13_POLICY,
  encodeRetryState,
  helloRetryRequestBody,
  messageHash,
  readClientHello13,
} from "../../src/handshake/client_hello13.ts";
import { ProtocolError } from "../../src/handshake/errors.ts";
import { encodeClientHello, type Extension } from "../../src/handshake/messages.ts";
import {
  decodeAck,
  decodeCertificate13,
  decodeClientKeyShares,
  decodeClientSupportedVersions,
  decodeCookieExtension,
  decodeEncryptedExtensions,
  decodeKeyUpdate,
  decodeNewSessionTicket13,
  decodeOfferedPsks,
  decodePskModes,
  decodeServerHello13,
  encodeAck,
  encodeCertificate13,
  encodeEncryptedExtensions,
  encodeKeyUpdate,
  encodeNewSessionTicket13,
  encodeServerHello13,
  HELLO_RETRY_REQUEST_RANDOM,
  signatureContent,
  transcriptMessage,
} from "../../src/handshake/messages13.ts";
import { SUITES_13 } from "../../src/record/suites13.ts";
import { seededRandom } from "../helpers/random.ts";

/** Every strict prefix of `bytes` fails to decode with a DecodeError. */
function everyCutFails(bytes: Uint8Array, decode: (b: Uint8Array) => unknown): void {
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decode(bytes.subarray(0, n)), DecodeError, `cut at ${n}`);
  }
}

const ack = encodeAck([{ epoch: 2, seq: 0 }, { epoch: 3, seq: 2 ** 48 - 1 }]);
const ticket = encodeNewSessionTicket13({
  lifetime: 604_800,
  ageAdd: 0xdeadbeef,
  nonce: new Uint8Array([1, 2]),
  ticket: new Uint8Array(40).fill(7),
});
const psks = new Writer()
  .vec16((ids) => ids.opaque16(new Uint8Array([65, 66])).u16(0x1234).u16(0x5678))
  .vec16((binders) => binders.opaque8(new Uint8Array(32).fill(9)))
  .finish();

Deno.test("messages13: every encoding round trips and every cut of it is a DecodeError", () => {
  assert.deepEqual(decodeAck(ack), [{ epoch: 2, seq: 0 }, { epoch: 3, seq: 2 ** 48 - 1 }]);
  everyCutFails(ack, decodeAck);
  assert.deepEqual(decodeNewSessionTicket13(ticket), {
    lifetime: 604_800,
    ageAdd: 0xdeadbeef,
    nonce: new Uint8Array([1, 2]),
    ticket: new Uint8Array(40).fill(7),
  });
  everyCutFails(ticket, decodeNewSessionTicket13);
  const offered = decodeOfferedPsks(psks);
  assert.deepEqual(offered.identities, [{
    identity: new Uint8Array([65, 66]),
    obfuscatedTicketAge: 0x12345678,
  }]);
  assert.equal(offered.bindersLength, 2 + 1 + 32);
  everyCutFails(psks, decodeOfferedPsks);
  const ee: Extension[] = [{ type: 54, data: new Uint8Array([2, 1, 2]) }];
  assert.deepEqual(decodeEncryptedExtensions(encodeEncryptedExtensions(ee)), ee);
  everyCutFails(encodeEncryptedExtensions(ee), decodeEncryptedExtensions);
  for (const request of [false, true]) {
    assert.equal(decodeKeyUpdate(encodeKeyUpdate(request)), request ? 1 : 0);
  }
  everyCutFails(encodeKeyUpdate(true), decodeKeyUpdate);
  const hello = encodeServerHello13({
    random: new Uint8Array(32).fill(3),
    sessionId: new Uint8Array([1]),
    cipherSuite: 0x1301,
    keyShare: { group: 29, keyExchange: new Uint8Array(32).fill(4) },
    selectedIdentity: 0,
  });
  const decoded = decodeServerHello13(hello);
  assert.deepEqual(decoded.keyShare, { group: 29, keyExchange: new Uint8Array(32).fill(4) });
  assert.equal(decoded.selectedIdentity, 0);
  everyCutFails(hello, decodeServerHello13);
});

Deno.test("messages13: fields out of range are refused", () => {
  // An ACK's record number past 2^48, an ACK list not a whole number of entries.
  const high = new Writer().vec16((l) => l.u16(1).u48(0).u16(0).u48(0)).finish();
  assert.throws(() => decodeAck(high), DecodeError);
  assert.throws(() => decodeAck(new Uint8Array([0, 3, 1, 2, 3])), DecodeError);
  // Binders and identities that do not pair up; a binder shorter than any hash.
  const unpaired = new Writer()
    .vec16((ids) => ids.opaque16(new Uint8Array([1])).u16(0).u16(0))
    .vec16(() => {})
    .finish();
  assert.throws(() => decodeOfferedPsks(unpaired), DecodeError);
  const shortBinder = new Writer()
    .vec16((ids) => ids.opaque16(new Uint8Array([1])).u16(0).u16(0))
    .vec16((b) => b.opaque8(new Uint8Array(31)))
    .finish();
  assert.throws(() => decodeOfferedPsks(shortBinder), DecodeError);
  // Empty key shares, empty or odd version lists, empty mode lists, an empty cookie.
  assert.throws(() => decodeClientKeyShares(new Uint8Array([0, 4, 0, 29, 0, 0])), DecodeError);
  assert.throws(() => decodeClientSupportedVersions(new Uint8Array([0])), DecodeError);
  assert.throws(
    () => decodeClientSupportedVersions(new Uint8Array([3, 0xfe, 0xfc, 0])),
    DecodeError,
  );
  assert.throws(() => decodePskModes(new Uint8Array([0])), DecodeError);
  assert.throws(() => decodeCookieExtension(new Uint8Array([0, 0])), DecodeError);
  // Trailing bytes.
  assert.throws(() => decodeKeyUpdate(new Uint8Array([0, 0])), DecodeError);
});

/** A ClientHello body offering DTLS 1.3 with the given extensions after the usual ones. */
function clientHello(extra: Extension[] = [], psk = psks): Uint8Array {
  return encodeClientHello({
    clientVersion: 0xfefd,
    random: new Uint8Array(32).fill(1),
    sessionId: new Uint8Array(0),
    cookie: new Uint8Array(0),
    cipherSuites: [0x1302, 0x1301],
    compressionMethods: new Uint8Array([0]),
    extensions: [
      { type: 43, data: new Uint8Array([2, 0xfe, 0xfc]) },
      { type: 10, data: new Uint8Array([0, 4, 0, 23, 0, 29]) },
      { type: 51, data: new Uint8Array([0, 0]) },
      { type: 45, data: new Uint8Array([1, 1]) },
      ...extra,
      { type: 41, data: psk },
    ],
  });
}

Deno.test("client_hello13: the retry's choice: the suite the binder's hash allows, our group among the client's", () => {
  const hello = readClientHello13(clientHello());
  // The binder is 32 bytes: SHA-256, so AES-256-GCM-SHA384 (offered first) is passed over.
  const choice = chooseRetry(hello, DEFAULT_HELLO13_POLICY);
  assert.equal(choice.suite.name, "TLS_AES_128_GCM_SHA256");
  // No key share sent: X25519 (ours first, and supported) is asked for.
  assert.deepEqual([choice.group, choice.requestShare], ["x25519", true]);
});

Deno.test("client_hello13: what RFC 8446 names an alert for is refused with it", () => {
  const cases: [Uint8Array, number][] = [
    // A repeated extension.
    [clientHello([{ type: 43, data: new Uint8Array([2, 0xfe, 0xfc]) }]), 47],
    // pre_shared_key not last.
    [
      encodeClientHello({
        clientVersion: 0xfefd,
        random: new Uint8Array(32),
        sessionId: new Uint8Array(0),
        cookie: new Uint8Array(0),
        cipherSuites: [0x1301],
        compressionMethods: new Uint8Array([0]),
        extensions: [{ type: 41, data: psks }, { type: 45, data: new Uint8Array([1, 1]) }],
      }),
      47,
    ],
    // pre_shared_key without psk_key_exchange_modes.
    [
      encodeClientHello({
        clientVersion: 0xfefd,
        random: new Uint8Array(32),
        sessionId: new Uint8Array(0),
        cookie: new Uint8Array(0),
        cipherSuites: [0x1301],
        compressionMethods: new Uint8Array([0]),
        extensions: [{ type: 41, data: psks }],
      }),
      109,
    ],
    // An empty cookie extension.
    [clientHello([{ type: 44, data: new Uint8Array([0, 0]) }]), 50],
  ];
  for (const [body, alert] of cases) {
    assert.throws(
      () => readClientHello13(body),
      (e) => e instanceof ProtocolError && e.alert === alert,
    );
  }
  // No suite whose hash the binders allow: a SHA-384-only offer with a 32-byte binder.
  const only384 = readClientHello13(clientHello());
  assert.throws(
    () => chooseRetry(only384, { ...DEFAULT_HELLO13_POLICY, suites: [SUITES_13[2]!] }),
    (e) => e instanceof ProtocolError && e.alert === 40,
  );
});

Deno.test("client_hello13: the retry state round trips; the HelloRetryRequest is rebuilt byte for byte", () => {
  const suite = SUITES_13[0]!;
  const helloHash = nobleProvider.hash("sha256", transcriptMessage(1, clientHello()));
  const state = {
    suite,
    auth: "psk" as const,
    group: "secp256r1" as const,
    requestShare: true,
    helloHash,
  };
  const decoded = decodeRetryState(encodeRetryState(state));
  assert.deepEqual(decoded, state);
  const certificate = { ...state, auth: "certificate" as const, requestShare: false };
  assert.deepEqual(decodeRetryState(encodeRetryState(certificate)), certificate);
  // A certificate handshake always has a group; flags beyond the two are not ours.
  const bytes = encodeRetryState(certificate);
  assert.equal(decodeRetryState(bytes.map((b, i) => i === 2 || i === 3 ? 0 : b)), undefined);
  assert.equal(decodeRetryState(bytes.map((b, i) => i === 4 ? 6 : b)), undefined);
  for (const cut of [0, 5, 10, encodeRetryState(state).length - 1]) {
    assert.equal(decodeRetryState(encodeRetryState(state).subarray(0, cut)), undefined);
  }
  const cookie = new Uint8Array(50).fill(5);
  const a = helloRetryRequestBody(new Uint8Array(0), state, cookie);
  const b = helloRetryRequestBody(new Uint8Array(0), decoded!, cookie);
  assert.deepEqual(a, b);
  const hrr = decodeServerHello13(a);
  assert.deepEqual(hrr.random, HELLO_RETRY_REQUEST_RANDOM);
  assert.deepEqual(hrr.keyShare, { group: 23 });
  assert.deepEqual(hrr.cookie, cookie);
  // message_hash: type 254, a 3-byte length, the hash.
  assert.deepEqual(
    messageHash("sha256", helloHash).subarray(0, 4),
    new Uint8Array([254, 0, 0, 32]),
  );
});

Deno.test("cookie: a retry cookie verifies for its peer and time only, and never as a 1.2 cookie", () => {
  const authority = new CookieAuthority({ provider: nobleProvider, random: seededRandom("c13") });
  const peer = new TextEncoder().encode("10.0.0.1:555");
  const state = new Uint8Array([1, 2, 3, 4, 5, 6, 7]);
  const now = 1_000_000;
  const cookie = authority.mintRetry(peer, state, now);
  const ok = authority.verifyRetry(peer, cookie, now + 1000);
  assert.equal(ok.verdict, "ok");
  assert.deepEqual(ok.verdict === "ok" && ok.state, state);
  assert.equal(
    authority.verifyRetry(new TextEncoder().encode("10.0.0.1:55"), cookie, now).verdict,
    "invalid",
  );
  for (let i = 0; i < cookie.length; i++) {
    const bad = cookie.slice();
    bad[i]! ^= 1;
    assert.notEqual(authority.verifyRetry(peer, bad, now).verdict, "ok", `bit in byte ${i}`);
  }
  assert.equal(authority.verifyRetry(peer, cookie, now + 10 * 60_000).verdict, "expired");
  assert.equal(authority.verifyRetry(peer, cookie.subarray(0, 20), now).verdict, "malformed");
  // A 1.2 cookie's bytes are no retry cookie.
  const params = {
    clientVersion: 0xfefd,
    head: new Uint8Array(35),
    suites: new Uint8Array(4),
    compression: new Uint8Array(2),
    cookie: new Uint8Array(0),
  };
  const old = authority.mint(peer, params, now);
  assert.equal(authority.verifyRetry(peer, old, now).verdict, "invalid");
  assert.notEqual(authority.verify(peer, params, cookie, now), "ok");
});

Deno.test("messages13: the 1.3 Certificate round trips; every truncation, a context, too many entries are decode errors", () => {
  const chain = [new Uint8Array(40).fill(1), new Uint8Array(3).fill(2)];
  const body = encodeCertificate13(chain);
  // context<1> + list<3> + each entry: cert<3> + extensions<2>.
  assert.equal(body.length, 1 + 3 + (3 + 40 + 2) + (3 + 3 + 2));
  assert.deepEqual(decodeCertificate13(body, 10), chain);
  for (let cut = 0; cut < body.length; cut++) {
    assert.throws(() => decodeCertificate13(body.subarray(0, cut), 10), DecodeError, `cut ${cut}`);
  }
  assert.throws(() => decodeCertificate13(body, 1), DecodeError);
  const withContext = new Uint8Array([1, 9, ...body.subarray(1)]);
  assert.throws(() => decodeCertificate13(withContext, 10), DecodeError);
  // Entry extensions are skipped, not trusted.
  const extended = new Writer(64).opaque8(new Uint8Array(0)).vec24((l) =>
    l.opaque24(chain[1]!).opaque16(new Uint8Array([0, 5, 0, 0]))
  ).finish();
  assert.deepEqual(decodeCertificate13(extended, 10), [chain[1]]);
  assert.throws(() => encodeCertificate13([new Uint8Array(0)]), RangeError);
});

Deno.test("messages13: a CertificateVerify's content is 64 spaces, its side's context string, a zero, the hash", () => {
  const hash = new Uint8Array(32).fill(0xab);
  for (const side of ["server", "client"] as const) {
    const content = signatureContent(side, hash);
    const label = `TLS 1.3, ${side} CertificateVerify`;
    assert.equal(content.length, 64 + label.length + 1 + 32);
    assert.ok(content.subarray(0, 64).every((b) => b === 0x20));
    assert.equal(new TextDecoder().decode(content.subarray(64, 64 + label.length)), label);
    assert.equal(content[64 + label.length], 0);
    assert.deepEqual(content.subarray(64 + label.length + 1), hash);
  }
});
