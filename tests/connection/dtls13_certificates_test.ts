/**
 * DTLS 1.3 authenticated by the server's certificate (RFC 8446 §4.4): our
 * client without a PSK against our endpoint with `--cert/--key`, on virtual
 * time, with each key type, a flight cut to a small MTU, and the refusals;
 * and client authentication (CertificateRequest), resumed with its ticket.
 */

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import type { ConnectionEvent } from "../../src/connection/events.ts";
import { parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import { decodeServerHello13 } from "../../src/handshake/messages13.ts";
import type { ServerCertificate } from "../../src/handshake/server.ts";
import { schemes13, verifySignature13 } from "../../src/crypto/signatures.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import { loadServerCertificate } from "../../src/pki/server_certificate.ts";
import {
  CERT_TIME,
  clientAuthServer,
  clientCertificate,
  serverCertificate,
  testCaClientCheck,
  trustingClient,
} from "../helpers/certificates.ts";
import { saved, testResumption } from "../helpers/resumption.ts";
import { testPki } from "../helpers/pki.ts";
import { Pair, sentAlert } from "../helpers/sim.ts";

const text = new TextEncoder();

function completed(events: readonly ConnectionEvent[]) {
  const e = events.find((e) => e.type === "handshake_complete");
  return e?.type === "handshake_complete" ? e : undefined;
}

/** A 1.3 client with no PSK that trusts the test CA for `localhost`. */
function certificateClient(caFile?: string) {
  return {
    identity: undefined,
    psk: undefined,
    verifyServer: trustingClient(caFile).verifyServer!,
  };
}

/** The handshake message types the server sent in epoch 0 (in the clear). */
function serverHelloOf(pair: Pair) {
  for (const { direction, datagram } of pair.wire) {
    if (direction !== "s2c" || datagram[0] !== 22) continue;
    const length = (datagram[11]! << 8) | datagram[12]!;
    for (const f of parseHandshakeFragments(datagram.subarray(13, 13 + length))) {
      const hello = decodeServerHello13(f.body);
      if (hello.cookie === undefined) return hello;
    }
  }
  return undefined;
}

const pki = testPki();

for (
  const [name, cert, key, scheme] of [
    ["EC P-256", pki.ecCert, pki.ecKey, "ecdsa_secp256r1_sha256"],
    ["EC P-384", pki.p384Cert, pki.p384Key, "ecdsa_secp384r1_sha384"],
    ["RSA", pki.rsaCert, pki.rsaKey, "rsa_pss_rsae_sha256"],
  ] as const
) {
  Deno.test(`dtls13 certificates: ${name} authenticates the server, its flight cut to a 200-byte MTU`, () => {
    const pair = new Pair({
      start: CERT_TIME,
      server: serverCertificate(cert, key),
      dtls13: certificateClient(),
      serverMtu: 200,
    });
    pair.run(60_000, true);
    assert.ok(pair.client.isEstablished, "client established");
    assert.ok(pair.server?.isEstablished, "server established");
    const done = completed(pair.serverEvents);
    assert.equal(done?.version, "DTLS 1.3");
    assert.equal(done?.identity, "");
    assert.equal(completed(pair.clientEvents)?.version, "DTLS 1.3");
    // No PSK was chosen: the ServerHello has no pre_shared_key, and (EC)DHE was done.
    assert.equal(serverHelloOf(pair)?.selectedIdentity, undefined);
    assert.equal(done?.group, "x25519");
    // The chain did not fit one datagram: it went in several.
    const s2c = pair.wire.filter((w) => w.direction === "s2c");
    assert.ok(s2c.length >= 4, `${s2c.length} datagrams`);
    assert.ok(s2c.every((w) => w.datagram.length <= 200));
    pair.client.send(text.encode("hello"));
    pair.pump();
    assert.ok(pair.serverEvents.some((e) => e.type === "data"));
    // The scheme the key signs with in 1.3.
    const { certificate } = loadServerCertificate(
      Deno.readTextFileSync(cert),
      Deno.readTextFileSync(key),
      nodeProvider,
      CERT_TIME,
    );
    assert.equal(schemes13(certificate.key)[0], scheme);
  });
}

Deno.test("dtls13 certificates: a client that does not trust the issuer refuses with unknown_ca", () => {
  const pair = new Pair({
    start: CERT_TIME,
    server: serverCertificate(pki.untrustedCert, pki.untrustedKey),
    dtls13: certificateClient(),
  });
  pair.run(60_000, true);
  assert.ok(!pair.client.isEstablished);
  assert.equal(sentAlert(pair.clientEvents), "unknown_ca");
  assert.ok(pair.server === undefined || !pair.server.isEstablished);
});

Deno.test("dtls13 certificates: a client offering a PSK is served with the PSK, not the certificate", () => {
  const pair = new Pair({
    start: CERT_TIME,
    server: serverCertificate(pki.ecCert, pki.ecKey),
    dtls13: {},
  });
  pair.run();
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  assert.equal(completed(pair.serverEvents)?.identity, "Qt DTLS example client");
  assert.equal(serverHelloOf(pair)?.selectedIdentity, 0);
});

Deno.test("dtls13 certificates: without a certificate, a 1.3-only certificate client gets handshake_failure and no state is kept", () => {
  const pair = new Pair({ dtls13: certificateClient(), versions: ["1.3"] });
  pair.run(60_000, true);
  assert.ok(!pair.client.isEstablished);
  assert.equal(pair.server, undefined, "no state kept");
  assert.ok(received(pair, "handshake_failure"));
});

/** Whether the client received the alert `description`. */
function received(pair: Pair, description: string): boolean {
  return pair.clientEvents.some((e) =>
    e.type === "alert" && e.direction === "received" && e.description === description
  );
}

Deno.test("dtls13 certificates: client authentication: a client certificate from the CA is asked for, checked and reported", () => {
  const pair = new Pair({
    start: CERT_TIME,
    server: clientAuthServer(),
    dtls13: {
      ...certificateClient(),
      certificate: clientCertificate(pki.clientCert, pki.clientKey).certificate!,
    },
  });
  pair.run(60_000, true);
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  const done = completed(pair.serverEvents);
  assert.equal(done?.version, "DTLS 1.3");
  assert.match(done?.peerCertificate?.subject ?? "", /device-1/);
  assert.match(done?.peerCertificate?.spkiSha256 ?? "", /^[0-9a-f]{64}$/);
});

Deno.test("dtls13 certificates: client authentication required: no certificate is certificate_required; optional: the handshake completes without one", () => {
  for (const required of [true, false]) {
    const pair = new Pair({
      start: CERT_TIME,
      server: clientAuthServer(required),
      dtls13: certificateClient(),
    });
    pair.run(60_000, true);
    if (required) {
      assert.ok(!pair.client.isEstablished);
      assert.equal(sentAlert(pair.serverEvents), "certificate_required");
      assert.ok(pair.server?.isClosed);
    } else {
      assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
      assert.equal(completed(pair.serverEvents)?.peerCertificate, undefined);
    }
  }
});

Deno.test("dtls13 certificates: client authentication: a certificate from another CA is refused; a PSK handshake is never asked for one", () => {
  const stranger = new Pair({
    start: CERT_TIME,
    server: clientAuthServer(),
    dtls13: {
      ...certificateClient(),
      certificate: clientCertificate(pki.untrustedCert, pki.untrustedKey).certificate!,
    },
  });
  stranger.run(60_000, true);
  assert.ok(!stranger.client.isEstablished);
  assert.equal(sentAlert(stranger.serverEvents), "unknown_ca");
  // RFC 8446 §4.3.2: no CertificateRequest on a PSK's handshake.
  const psk = new Pair({ start: CERT_TIME, server: clientAuthServer(), dtls13: {} });
  psk.run(60_000, true);
  assert.ok(psk.client.isEstablished && psk.server?.isEstablished);
  assert.equal(completed(psk.serverEvents)?.peerCertificate, undefined);
});

Deno.test("dtls13 certificates: a client-authenticated session resumes with its certificate reported, and not once the policy changes", () => {
  const resumption = testResumption();
  const certificate = clientCertificate(pki.clientCert, pki.clientKey).certificate!;
  const server = { ...clientAuthServer(), resumption };
  const policy = { check: testCaClientCheck(), required: true, id: new Uint8Array([1]) };
  const first = new Pair({
    start: CERT_TIME,
    server: { ...server, clientAuth: policy },
    dtls13: { ...certificateClient(), certificate },
  });
  first.run();
  first.pump();
  const session = saved(first);
  const again = new Pair({
    start: CERT_TIME + 1000,
    server: { ...server, clientAuth: policy },
    dtls13: { ...certificateClient(), certificate, resume: session },
  });
  again.run();
  const resumed = completed(again.serverEvents);
  assert.equal(resumed?.resumed, "ticket");
  assert.equal(
    resumed?.peerCertificate?.spkiSha256,
    completed(first.serverEvents)?.peerCertificate?.spkiSha256,
  );
  // A new policy (another id): the ticket is refused, the certificate shown again.
  const changed = new Pair({
    start: CERT_TIME + 2000,
    server: { ...server, clientAuth: { ...policy, id: new Uint8Array([2]) } },
    dtls13: { ...certificateClient(), certificate, resume: session },
  });
  changed.run();
  assert.ok(changed.client.isEstablished);
  assert.equal(completed(changed.serverEvents)?.resumed, undefined);
  assert.ok(completed(changed.serverEvents)?.peerCertificate !== undefined);
  assert.deepEqual(
    changed.serverEvents.flatMap((e) => e.type === "ticket_refused" ? [e.reason] : []),
    ["mismatch"],
  );
});

Deno.test("dtls13 certificates: a certificate removed between the HelloRetryRequest and the second ClientHello fails the handshake cleanly", () => {
  let current: ServerCertificate | undefined = serverCertificate(pki.ecCert, pki.ecKey)
    .certificate!();
  // The first ClientHello gets its HelloRetryRequest; then the certificate goes.
  const pair = new Pair({
    start: CERT_TIME,
    server: { certificate: () => current },
    dtls13: certificateClient(),
    script: (direction, index) => {
      if (direction === "c2s" && index === 1) current = undefined;
      return "deliver";
    },
  });
  pair.run(60_000, true);
  assert.ok(!pair.client.isEstablished);
  assert.ok(
    pair.clientEvents.some((e) =>
      e.type === "alert" && e.direction === "received" && e.description === "handshake_failure"
    ),
  );
});

Deno.test("dtls13 certificates: TLS 1.3 signatures bind ECDSA to its curve and refuse PKCS#1 v1.5", () => {
  const load = (cert: string, key: string) =>
    loadServerCertificate(
      Deno.readTextFileSync(cert),
      Deno.readTextFileSync(key),
      nodeProvider,
      CERT_TIME,
    ).certificate;
  const p384 = load(pki.p384Cert, pki.p384Key);
  const rsa = load(pki.rsaCert, pki.rsaKey);
  const data = text.encode("transcript");
  const spki = (c: ServerCertificate) =>
    new Uint8Array(
      new X509Certificate(c.chain[0]!).publicKey.export({ type: "spki", format: "der" }),
    );
  // A P-384 key signing with SHA-256 is valid in TLS 1.2, not in 1.3.
  const sig384 = p384.key.sign("ecdsa_secp256r1_sha256", data);
  assert.equal(verifySignature13(spki(p384), "ecdsa_secp256r1_sha256", data, sig384), false);
  const right = p384.key.sign("ecdsa_secp384r1_sha384", data);
  assert.equal(verifySignature13(spki(p384), "ecdsa_secp384r1_sha384", data, right), true);
  const pkcs1 = rsa.key.sign("rsa_pkcs1_sha256", data);
  assert.equal(verifySignature13(spki(rsa), "rsa_pkcs1_sha256", data, pkcs1), false);
  assert.deepEqual(schemes13(rsa.key), ["rsa_pss_rsae_sha256", "rsa_pss_rsae_sha384"]);
});
