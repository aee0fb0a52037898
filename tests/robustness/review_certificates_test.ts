/**
 * Findings of the adversarial review of 4740f59 (server certificates:
 * ECDHE_ECDSA / ECDHE_RSA, src/pki/, signed ServerKeyExchange). Each test
 * FAILS on the code as reviewed. Sans-I/O engine driven with hand-made
 * ClientHellos (our client has no certificate suites yet), plus the PEM
 * loader; deterministic. Needs `openssl` for the test PKI.
 */
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { connectionConfig, ServerEndpoint } from "../../src/connection/endpoint.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { encodeHandshakeMessage, parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import {
  encodeSignatureAlgorithms,
  encodeSupportedGroups,
  ExtensionType,
} from "../../src/handshake/extensions.ts";
import {
  decodeHelloVerifyRequest,
  decodeServerHello,
  decodeSignedEcdheServerKeyExchange,
  encodeClientHello,
  type Extension,
  HandshakeType,
} from "../../src/handshake/messages.ts";
import type { ServerCertificate } from "../../src/handshake/server.ts";
import {
  CertificateError,
  loadServerCertificate,
  pemBlocks,
} from "../../src/pki/server_certificate.ts";
import { ContentType, DTLS_1_2, encodeRecord, parseRecords } from "../../src/record/header.ts";
import { CIPHER_SUITES, suiteByName } from "../../src/record/suites.ts";
import { testPki } from "../helpers/pki.ts";
import { seededRandom } from "../helpers/random.ts";
import { skipUnless } from "../helpers/server_process.ts";
import { serverPsk } from "../helpers/sim.ts";

const openssl = skipUnless("openssl");
const T0 = 1_000_000;

// ---- a hand-made certificate client, up to the server's flight 4 ------------------------------

function certificateOf(cert: string, key: string): ServerCertificate {
  const chain = pemBlocks(Deno.readTextFileSync(cert), "CERTIFICATE");
  const pkcs8 = createPrivateKey(Deno.readTextFileSync(key)).export({
    type: "pkcs8",
    format: "der",
  });
  const spki = createPublicKey(createPrivateKey(Deno.readTextFileSync(key))).export({
    type: "spki",
    format: "der",
  });
  return {
    chain,
    key: nodeProvider.signingKey(new Uint8Array(pkcs8)),
    spki: new Uint8Array(spki),
  };
}

function certEndpoint(certificate: ServerCertificate, seed: string): ServerEndpoint {
  return new ServerEndpoint({
    connection: connectionConfig(nodeProvider, seededRandom(seed)),
    psk: serverPsk({
      suites: CIPHER_SUITES,
      groups: ["x25519", "secp256r1", "secp384r1"],
      certificate: () => certificate,
    }),
    maxConnections: 10_000,
    idleTimeoutMs: 600_000,
  });
}

function clientHello(
  suites: number[],
  extensions: Extension[],
  cookie: Uint8Array,
  seq: number,
): Uint8Array {
  const body = encodeClientHello({
    clientVersion: DTLS_1_2,
    random: new Uint8Array(32).fill(7),
    sessionId: new Uint8Array(0),
    cookie,
    cipherSuites: suites,
    compressionMethods: new Uint8Array([0]),
    extensions,
  });
  return encodeRecord(
    ContentType.Handshake,
    DTLS_1_2,
    0,
    seq,
    encodeHandshakeMessage(HandshakeType.ClientHello, seq, body),
  );
}

/** ClientHello, HelloVerifyRequest, ClientHello with the cookie: the server's messages and alerts. */
function flight4(endpoint: ServerEndpoint, peer: string, suites: number[], exts: Extension[]) {
  const first = endpoint.handleDatagram(clientHello(suites, exts, new Uint8Array(0), 0), peer, T0);
  assert.equal(first.kind, "hello_verify_request");
  const hvr = parseHandshakeFragments(parseRecords(first.datagram).records[0]!.fragment)[0]!;
  const { cookie } = decodeHelloVerifyRequest(hvr.body);
  endpoint.handleDatagram(clientHello(suites, exts, cookie, 1), peer, T0);
  const conn = endpoint.get(peer)!;
  while (conn.pollEvent());
  const messages = new Map<number, Uint8Array>();
  const alerts: number[] = [];
  for (let d = conn.pollTransmit(); d; d = conn.pollTransmit()) {
    for (const r of parseRecords(d).records) {
      if (r.type === ContentType.Alert) alerts.push(r.fragment[1]!);
      if (r.type !== ContentType.Handshake) continue;
      for (const f of parseHandshakeFragments(r.fragment)) {
        const body = messages.get(f.msgType) ?? new Uint8Array(f.length);
        body.set(f.body, f.fragmentOffset);
        messages.set(f.msgType, body);
      }
    }
  }
  return { messages, alerts };
}

const groups = (...g: number[]): Extension => ({
  type: ExtensionType.SupportedGroups,
  data: encodeSupportedGroups(g),
});
const sigalgs = (...s: number[]): Extension => ({
  type: ExtensionType.SignatureAlgorithms,
  data: encodeSignatureAlgorithms(s),
});
const ECDHE_ECDSA_AES128_GCM = suiteByName("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256").id;

// ---- F-a: a P-384 certificate is refused to a TLS 1.2 client offering ECDSA+SHA256 ------------

Deno.test({
  name:
    "review certificates: a P-384 key signs for a client whose signature_algorithms lists only ECDSA+SHA256 (0x0403: in TLS 1.2 a hash/signature pair, not bound to a curve)",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const endpoint = certEndpoint(certificateOf(pki.p384Cert, pki.p384Key), "review-cert/a");
    // RFC 5246 §7.4.1.4.1: SignatureAndHashAlgorithm {sha256(4), ecdsa(3)}.
    // The curve-bound reading of 0x0403 is TLS 1.3's (RFC 8446 §4.2.3);
    // OpenSSL's and GnuTLS's own TLS 1.2 servers sign with it on P-384.
    const { messages, alerts } = flight4(endpoint, "10.77.0.1:5000", [ECDHE_ECDSA_AES128_GCM], [
      groups(23, 24),
      sigalgs(0x0403),
    ]);
    assert.deepEqual(alerts, [], "the handshake was refused (handshake_failure)");
    const ske = decodeSignedEcdheServerKeyExchange(messages.get(HandshakeType.ServerKeyExchange)!);
    assert.equal(ske.scheme, 0x0403);
  },
});

// ---- F-b: ec_point_formats sent to a client that did not send it ------------------------------

Deno.test({
  name:
    "review certificates: a ServerHello for a certificate suite carries no ec_point_formats the client did not send (RFC 5246 §7.4.1.4, RFC 8422 §5.2)",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const endpoint = certEndpoint(certificateOf(pki.ecCert, pki.ecKey), "review-cert/b");
    // RFC 8422 §4 lets a client leave the extension out; RFC 5246 §7.4.1.4:
    // "An extension type MUST NOT appear in the ServerHello unless the same
    // extension type appeared in the corresponding ClientHello", and the
    // client MUST abort with unsupported_extension if it does.
    const { messages, alerts } = flight4(endpoint, "10.77.0.2:5000", [ECDHE_ECDSA_AES128_GCM], [
      groups(23),
      sigalgs(0x0403),
    ]);
    assert.deepEqual(alerts, []);
    const hello = decodeServerHello(messages.get(HandshakeType.ServerHello)!);
    assert.deepEqual(
      hello.extensions.map((e) => e.type).filter((t) => t === ExtensionType.EcPointFormats),
      [],
      "unsolicited ec_point_formats in the ServerHello",
    );
  },
});

// ---- F-c: a certificate with bytes after its DER is loaded and sent as is ---------------------

Deno.test({
  name:
    "review certificates: a certificate with bytes after its DER is refused at load, or sent without them (clients reject it: OpenSSL 'cert length mismatch', GnuTLS 'Error in the certificate')",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const der = pemBlocks(Deno.readTextFileSync(pki.ecCert), "CERTIFICATE")[0]!;
    const padded = new Uint8Array([...der, 0]);
    const pem = `-----BEGIN CERTIFICATE-----\n${
      btoa(String.fromCharCode(...padded)).replace(/.{64}/g, "$&\n")
    }\n-----END CERTIFICATE-----\n`;
    let loaded;
    try {
      loaded = loadServerCertificate(
        pem,
        Deno.readTextFileSync(pki.ecKey),
        nodeProvider,
        Date.now(),
      );
    } catch (error) {
      assert.ok(error instanceof CertificateError, String(error));
      return;
    }
    const sent = loaded.certificate.chain[0]!;
    assert.equal(
      sent.length,
      derLength(sent),
      "the chain sent on the wire has a trailing byte after the certificate's DER",
    );
  },
});

/** The length of the DER element at the start of `der`: its header and its contents. */
function derLength(der: Uint8Array): number {
  const first = der[1]!;
  if (first < 0x80) return 2 + first;
  let n = 0;
  for (let i = 0; i < (first & 0x7f); i++) n = n * 256 + der[2 + i]!;
  return 2 + (first & 0x7f) + n;
}

// ---- F-d: malformed base64 in --cert throws past CertificateError -----------------------------

Deno.test({
  name:
    "review certificates: a --cert whose base64 is broken is a CertificateError (not an InvalidCharacterError that kills the start with a stack trace)",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const lines = Deno.readTextFileSync(pki.ecCert).split("\n");
    // Padding in the middle: still matched by pemBlocks' character class, but not base64.
    lines[1] = `${lines[1]!.slice(0, 10)}=${lines[1]!.slice(11)}`;
    assert.throws(
      () =>
        loadServerCertificate(
          lines.join("\n"),
          Deno.readTextFileSync(pki.ecKey),
          nodeProvider,
          Date.now(),
        ),
      CertificateError,
    );
  },
});
