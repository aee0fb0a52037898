/**
 * Findings of the third adversarial review of DTLS 1.3 (client
 * authentication: CertificateRequest, the client's Certificate and
 * CertificateVerify, certificate_required, resumption of client-authenticated
 * sessions): each test fails on the code as reviewed and guards its fix.
 */

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { Writer } from "../../src/codec/writer.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import {
  CertificateType,
  encodeCertificateTypes,
  encodeSignatureAlgorithms,
  encodeSupportedGroups,
  ExtensionType,
  NamedGroup,
  SignatureSchemeCode,
} from "../../src/handshake/extensions.ts";
import { encodeHandshakeMessage } from "../../src/handshake/fragments.ts";
import { encodeClientHello, type Extension, HandshakeType } from "../../src/handshake/messages.ts";
import { ExtensionType13 } from "../../src/handshake/messages13.ts";
import type { ClientAuthPolicy } from "../../src/handshake/server.ts";
import { ServerHandshake13 } from "../../src/handshake/server13.ts";
import { ContentType, DTLS_1_2, encodeRecord } from "../../src/record/header.ts";
import {
  CERT_TIME,
  clientAuthServer,
  clientCertificate,
  serverCertificate,
  testCaClientCheck,
  trustingClient,
} from "../helpers/certificates.ts";
import { testPki } from "../helpers/pki.ts";
import { seededRandom } from "../helpers/random.ts";
import { completed } from "../helpers/resumption.ts";
import { Pair, PEER, sentAlert } from "../helpers/sim.ts";

const pki = testPki();

/** A 1.3 client with no PSK that trusts the test CA for `localhost`. */
function certificateClient() {
  return { identity: undefined, psk: undefined, verifyServer: trustingClient().verifyServer! };
}

/** The test client certificate (CN=device-1, clientAuth, from the test CA) and its key. */
function device() {
  return clientCertificate(pki.clientCert, pki.clientKey).certificate!;
}

// ---- Finding 1 ---------------------------------------------------------------------------

Deno.test("dtls13 review 3: a client-auth reload (SIGHUP) applies to the next client certificate, handshakes under way included, as in 1.2", () => {
  // DtlsServer.setClientAuth: "it applies from the next client certificate
  // checked, handshakes under way included". 1.2 re-reads the policy when the
  // Certificate comes; 1.3 captured it at the second ClientHello, so a CA taken
  // out (compromised) still admits a client whose flight arrives after the reload.
  const trusting: ClientAuthPolicy = {
    check: testCaClientCheck(),
    required: true,
    id: new Uint8Array([1]),
  };
  const revoked: ClientAuthPolicy = {
    check: () => ({ ok: false, alert: "unknown_ca", reason: "the CA was taken out" }),
    required: true,
    id: new Uint8Array([2]),
  };
  let current = trusting;
  const pair = new Pair({
    start: CERT_TIME,
    server: { ...clientAuthServer(), clientAuth: () => current },
    dtls13: { ...certificateClient(), certificate: device() },
    // c2s: 0 the first ClientHello, 1 the second, 2 the client's Certificate
    // flight: the reload lands between our CertificateRequest and it.
    script: (direction, index) => {
      if (direction === "c2s" && index === 2) current = revoked;
      return "deliver";
    },
  });
  pair.run(60_000, true);
  // Today: established, with CN=device-1 reported as authenticated.
  assert.equal(completed(pair.serverEvents)?.peerCertificate, undefined);
  assert.ok(!pair.server?.isEstablished, "the certificate was checked under the old policy");
  assert.equal(sentAlert(pair.serverEvents), "unknown_ca");
});

// ---- Finding 2 ---------------------------------------------------------------------------

/**
 * The first ClientHello of a client that offers DTLS 1.3 and 1.2, no PSK,
 * and authenticates with a raw public key only (client_certificate_type
 * [RawPublicKey], RFC 7250).
 */
function rawKeyDualVersionHello(): Uint8Array {
  const share = nobleProvider.keyShare("x25519", seededRandom("raw key client")).publicKey;
  const extensions: Extension[] = [
    { type: ExtensionType13.SupportedVersions, data: new Uint8Array([4, 0xfe, 0xfc, 0xfe, 0xfd]) },
    {
      type: ExtensionType.SupportedGroups,
      data: encodeSupportedGroups([NamedGroup.x25519, NamedGroup.secp256r1]),
    },
    {
      type: ExtensionType13.KeyShare,
      data: new Writer(64).vec16((l) => l.u16(NamedGroup.x25519).opaque16(share)).finish(),
    },
    {
      type: ExtensionType.SignatureAlgorithms,
      data: encodeSignatureAlgorithms([SignatureSchemeCode.ecdsa_secp256r1_sha256]),
    },
    { type: ExtensionType.EcPointFormats, data: new Uint8Array([1, 0]) },
    { type: ExtensionType.ExtendedMasterSecret, data: new Uint8Array(0) },
    {
      type: ExtensionType.ClientCertificateType,
      data: encodeCertificateTypes([CertificateType.RawPublicKey]),
    },
  ];
  return encodeRecord(
    ContentType.Handshake,
    DTLS_1_2,
    0,
    0,
    encodeHandshakeMessage(
      HandshakeType.ClientHello,
      0,
      encodeClientHello({
        clientVersion: DTLS_1_2,
        random: new Uint8Array(32).fill(7),
        sessionId: new Uint8Array(0),
        cookie: new Uint8Array(0),
        cipherSuites: [0xc02b, 0x1301],
        compressionMethods: new Uint8Array([0]),
        extensions,
      }),
    ),
  );
}

Deno.test("dtls13 review 3: with --client-ca and --client-keys, a raw-public-key client offering 1.3 and 1.2 is served 1.2, where its key is taken", () => {
  // README: "raw public keys (--client-keys) are 1.2's alone". 1.3 neither
  // negotiates client_certificate_type nor takes a raw key, yet the
  // endpoint now serves this client 1.3 (a HelloRetryRequest) because
  // --client-ca is configured too: its CertificateRequest asks for X.509,
  // the client has none, and under a required policy it is
  // certificate_required forever. Before this change it was served 1.2.
  const spki = new Uint8Array(
    new X509Certificate(Deno.readTextFileSync(pki.clientCert)).publicKey.export({
      type: "spki",
      format: "der",
    }),
  );
  const mixed: ClientAuthPolicy = {
    check: testCaClientCheck(),
    rawKeys: [spki],
    required: true,
    id: new Uint8Array([1]),
  };
  const endpoint = new Pair({
    start: CERT_TIME,
    server: { ...clientAuthServer(), clientAuth: mixed },
  }).endpoint;
  const first = endpoint.handleDatagram(rawKeyDualVersionHello(), PEER, CERT_TIME);
  assert.equal(first.kind, "hello_verify_request");
});

// ---- Finding 3 ---------------------------------------------------------------------------

Deno.test("dtls13 review 3: our client refuses a CertificateRequest without signature_algorithms with missing_extension", () => {
  // RFC 8446 §4.3.2: signature_algorithms MUST be in a CertificateRequest;
  // §6.2: a handshake message without an extension mandatory for it is
  // missing_extension. Today: decode_error (the message decodes fine).
  const proto = ServerHandshake13.prototype as unknown as Record<
    string,
    (...args: unknown[]) => unknown
  >;
  const original = proto.respondWithCertificate!;
  proto.respondWithCertificate = function (this: unknown, ...args: unknown[]) {
    const flight = original.apply(this, args) as Record<string, unknown>;
    // An empty context, an empty extension list.
    return { ...flight, certificateRequest: new Uint8Array([0, 0, 0]) };
  };
  try {
    const pair = new Pair({
      start: CERT_TIME,
      server: serverCertificate(pki.ecCert, pki.ecKey),
      dtls13: { ...certificateClient(), certificate: device() },
    });
    pair.run(60_000, true);
    assert.ok(!pair.client.isEstablished);
    assert.equal(sentAlert(pair.clientEvents), "missing_extension");
  } finally {
    proto.respondWithCertificate = original;
  }
});
