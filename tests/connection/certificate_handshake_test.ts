/**
 * Certificate handshakes between our client and server engines on virtual
 * time: every certificate suite with each key type, the flight fragmented
 * to a small MTU and through loss, and the client's refusals (an untrusted
 * CA, another server's name, a forged ServerKeyExchange) with the RFC's
 * alerts.
 */
import assert from "node:assert/strict";
import { CIPHER_SUITES, suiteByName } from "../../src/record/suites.ts";
import { ContentType, parseRecords } from "../../src/record/header.ts";
import { parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import { HandshakeType } from "../../src/handshake/messages.ts";
import { type NetworkScript, Pair, PEER, sentAlert, serverPsk } from "../helpers/sim.ts";
import { connectionConfig, ServerEndpoint } from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { seededRandom } from "../helpers/random.ts";
import type { ClientHandshakeOptions } from "../../src/handshake/client.ts";
import {
  CERT_TIME,
  clientAuthServer,
  clientCertificate,
  flightEditingClient,
  serverCertificate,
  trustingClient,
} from "../helpers/certificates.ts";
import { testPki } from "../helpers/pki.ts";
import { skipUnless } from "../helpers/server_process.ts";
import { carriesHandshake } from "../helpers/hostile_peer.ts";

const openssl = skipUnless("openssl");
const text = new TextEncoder();

function certificatePair(
  cert: "ec" | "p384" | "rsa",
  suites: string[],
  extra: { mtu?: number; script?: NetworkScript; client?: Partial<ClientHandshakeOptions> } = {},
): Pair {
  const pki = testPki();
  const files = {
    ec: [pki.ecCert, pki.ecKey],
    p384: [pki.p384Cert, pki.p384Key],
    rsa: [pki.rsaCert, pki.rsaKey],
  }[cert];
  return new Pair({
    start: CERT_TIME,
    seed: `cert/${cert}/${suites.join()}`,
    server: {
      ...serverCertificate(files[0]!, files[1]!),
      suites: CIPHER_SUITES,
      groups: ["x25519", "secp256r1", "secp384r1"],
    },
    client: {
      ...trustingClient(),
      suites: suites.map((s) => suiteByName(s)),
      groups: ["x25519", "secp256r1", "secp384r1"],
      ...extra.client,
    },
    ...(extra.mtu === undefined ? {} : { mtu: extra.mtu }),
    ...(extra.script === undefined ? {} : { script: extra.script }),
  });
}

/** The handshake completed on both sides with `suite`, and data flows both ways. */
function assertSession(pair: Pair, suite: string): void {
  assert.equal(
    pair.client.isEstablished,
    true,
    JSON.stringify(pair.clientEvents.filter((e) => e.type === "closed")),
  );
  const done = pair.clientEvents.find((e) => e.type === "handshake_complete");
  assert.equal(done?.type === "handshake_complete" && done.suite, suite);
  // Application data is not retransmitted: a lossy script may take a try or two.
  for (let tries = 0; tries < 3 && !pair.serverEvents.some((e) => e.type === "data"); tries++) {
    pair.client.send(text.encode("ping"));
    pair.pump();
  }
  const got = pair.serverEvents.find((e) => e.type === "data");
  assert.equal(got?.type === "data" && new TextDecoder().decode(got.data), "ping");
}

const BY_KEY: Record<"ec" | "rsa", string[]> = {
  ec: CIPHER_SUITES.filter((s) => s.kx === "ecdhe_ecdsa").map((s) => s.name),
  rsa: CIPHER_SUITES.filter((s) => s.kx === "ecdhe_rsa").map((s) => s.name),
};

for (const key of ["ec", "rsa"] as const) {
  for (const suite of BY_KEY[key]) {
    Deno.test({
      name: `certificate handshake: ${suite}`,
      ignore: openssl.ignore,
      fn() {
        const pair = certificatePair(key, [suite]);
        pair.run();
        assertSession(pair, suite);
      },
    });
  }
}

Deno.test({
  name:
    "certificate handshake: a P-384 key, its certificate flight fragmented to a 256-byte MTU through loss",
  ignore: openssl.ignore,
  fn() {
    // Every third datagram either way is lost the first time it is sent.
    const lost = new Set<string>();
    const pair = certificatePair("p384", ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"], {
      mtu: 256,
      script: (direction, index) => {
        const key = `${direction}${index}`;
        if (index % 3 === 1 && !lost.has(key)) {
          lost.add(key);
          return "drop";
        }
        return "deliver";
      },
    });
    pair.run();
    assertSession(pair, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    const certificateFragments = pair.wire
      .filter((w) => w.direction === "s2c")
      .flatMap((w) => parseRecords(w.datagram).records)
      .filter((r) => r.type === ContentType.Handshake && r.epoch === 0)
      .flatMap((r) => parseHandshakeFragments(r.fragment))
      .filter((f) => f.msgType === HandshakeType.Certificate);
    assert.ok(certificateFragments.length >= 3, `${certificateFragments.length} fragments`);
    assert.ok(pair.wire.every((w) => w.datagram.length <= 256));
  },
});

Deno.test({
  name: "certificate handshake: a chain from a CA the client does not trust ends with unknown_ca",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const pair = new Pair({
      start: CERT_TIME,
      server: { ...serverCertificate(pki.untrustedCert, pki.untrustedKey), suites: CIPHER_SUITES },
      client: {
        ...trustingClient(),
        suites: [suiteByName("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")],
      },
    });
    pair.run();
    assert.equal(pair.client.isClosed, true);
    assert.equal(sentAlert(pair.clientEvents), "unknown_ca");
    assert.equal(pair.server?.isEstablished ?? false, false);
  },
});

Deno.test({
  name: "certificate handshake: a certificate for another name ends with bad_certificate",
  ignore: openssl.ignore,
  fn() {
    const pair = certificatePair("ec", ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], {
      client: trustingClient(undefined, "example.org"),
    });
    pair.run();
    assert.equal(sentAlert(pair.clientEvents), "bad_certificate");
    // The IP address in the certificate's subjectAltName is a name too.
    const byIp = certificatePair("ec", ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], {
      client: trustingClient(undefined, "127.0.0.1"),
    });
    byIp.run();
    assert.equal(byIp.client.isEstablished, true);
  },
});

Deno.test({
  name:
    "certificate handshake: a ServerKeyExchange changed on the way fails the signature with decrypt_error",
  ignore: openssl.ignore,
  fn() {
    // A man in the middle swaps the server's ephemeral key for his own:
    // here, one bit of it, in the datagram that carries it.
    let tampered = false;
    const pair = certificatePair("ec", ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], {
      script: (direction, _index, datagram) => {
        if (direction !== "s2c" || tampered) return "deliver";
        for (const record of parseRecords(datagram).records) {
          for (
            const f of record.type === ContentType.Handshake
              ? parseHandshakeFragments(record.fragment)
              : []
          ) {
            if (f.msgType === HandshakeType.ServerKeyExchange) {
              // The point starts 4 bytes into the body (curve type, group, length).
              const at = f.body.byteOffset - datagram.byteOffset + 6;
              datagram[at]! ^= 1;
              tampered = true;
            }
          }
        }
        return "deliver";
      },
    });
    pair.run();
    assert.ok(tampered);
    assert.equal(sentAlert(pair.clientEvents), "decrypt_error");
  },
});

Deno.test({
  name:
    "a client without a way to check certificates offers none of their suites, and refuses to offer only them",
  ignore: openssl.ignore,
  fn() {
    const pair = new Pair({
      start: CERT_TIME,
      server: { ...serverCertificate(testPki().ecCert, testPki().ecKey), suites: CIPHER_SUITES },
      client: { suites: CIPHER_SUITES },
    });
    pair.run();
    const done = pair.clientEvents.find((e) => e.type === "handshake_complete");
    assert.equal(
      done?.type === "handshake_complete" && done.suite.startsWith("TLS_ECDHE_PSK"),
      true,
    );
    assert.throws(
      () =>
        new Pair({ client: { suites: [suiteByName("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")] } }),
      /certificate suites need a way to verify the server/,
    );
  },
});

// ---- client authentication -------------------------------------------------------------

/** A pair whose server asks for a client certificate that chains to the test CA. */
function clientAuthPair(
  client: { cert?: string; key?: string },
  options: { required?: boolean; mtu?: number; script?: NetworkScript } = {},
): Pair {
  return new Pair({
    start: CERT_TIME,
    seed: `clientauth/${client.cert ?? "none"}/${options.mtu}`,
    server: clientAuthServer(options.required ?? true),
    client: {
      ...trustingClient(),
      suites: [suiteByName("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")],
      ...(client.cert === undefined ? {} : clientCertificate(client.cert, client.key!)),
    },
    ...(options.mtu === undefined ? {} : { mtu: options.mtu }),
    ...(options.script === undefined ? {} : { script: options.script }),
  });
}

Deno.test({
  name:
    "client authentication: a trusted client certificate and its CertificateVerify identify the client",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const pair = clientAuthPair({ cert: pki.clientCert, key: pki.clientKey });
    pair.run();
    assertSession(pair, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    const done = pair.serverEvents.find((e) => e.type === "handshake_complete");
    assert.equal(
      done?.type === "handshake_complete" && done.peerCertificate?.subject,
      "CN=device-1",
    );
    assert.match(
      done?.type === "handshake_complete" ? done.peerCertificate?.spkiSha256 ?? "" : "",
      /^[0-9a-f]{64}$/,
    );
  },
});

Deno.test({
  name:
    "client authentication: no certificate is handshake_failure when required, served anonymously when optional",
  ignore: openssl.ignore,
  fn() {
    const required = clientAuthPair({});
    required.run();
    assert.equal(required.client.isEstablished, false);
    assert.equal(sentAlert(required.serverEvents), "handshake_failure");
    const optional = clientAuthPair({}, { required: false });
    optional.run();
    assertSession(optional, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    const done = optional.serverEvents.find((e) => e.type === "handshake_complete");
    assert.equal(done?.type === "handshake_complete" && done.peerCertificate, undefined);
  },
});

Deno.test({
  name: "client authentication: a client certificate from an untrusted CA is unknown_ca",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const pair = clientAuthPair({ cert: pki.untrustedCert, key: pki.untrustedKey });
    pair.run();
    assert.equal(sentAlert(pair.serverEvents), "unknown_ca");
  },
});

Deno.test({
  name:
    "client authentication: a CertificateVerify that comes after the ChangeCipherSpec (reordered) still completes",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    let held = false;
    const pair = clientAuthPair({ cert: pki.clientCert, key: pki.clientKey }, {
      mtu: 300,
      script: (direction, _index, datagram) => {
        if (
          direction === "c2s" && !held &&
          carriesHandshake(datagram, HandshakeType.CertificateVerify)
        ) {
          held = true;
          return "delay";
        }
        return "deliver";
      },
    });
    pair.run();
    assert.ok(held, "the CertificateVerify had a datagram of its own to hold back");
    assertSession(pair, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
  },
});

Deno.test({
  name:
    "client authentication: a CertificateVerify lost in every flight is waited for, never taken as skipped",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    let removed = 0;
    const pair: Pair = clientAuthPair({ cert: pki.clientCert, key: pki.clientKey }, {
      script: (direction, _index, datagram) => {
        if (direction !== "c2s" || !carriesHandshake(datagram, HandshakeType.CertificateVerify)) {
          return "deliver";
        }
        // The CertificateVerify record is lost, and only it, every time: the
        // ChangeCipherSpec and the Finished (numbered after it) still come.
        const kept = parseRecords(datagram).records.filter((r) =>
          !(r.type === ContentType.Handshake && r.epoch === 0 &&
            parseHandshakeFragments(r.fragment).some((f) =>
              f.msgType === HandshakeType.CertificateVerify
            ))
        );
        removed++;
        const rest = new Uint8Array(kept.reduce((n, r) => n + r.raw.length, 0));
        let at = 0;
        for (const r of kept) {
          rest.set(r.raw, at);
          at += r.raw.length;
        }
        pair.endpoint.handleDatagram(rest, PEER, pair.now);
        return "drop";
      },
    });
    pair.run();
    assert.ok(removed >= 2, `${removed} flights without their CertificateVerify`);
    assert.equal(pair.client.isEstablished, false);
    assert.equal(
      pair.serverEvents.some((e) => e.type === "handshake_complete"),
      false,
      "the server completed a handshake whose client never proved its key",
    );
    const closed = pair.serverEvents.find((e) => e.type === "closed");
    assert.equal(closed?.type === "closed" && closed.cause, "handshake_timeout");
  },
});

Deno.test({
  name:
    "client authentication: a client that sends its certificate but skips the CertificateVerify is unexpected_message at once",
  ignore: openssl.ignore,
  fn() {
    const endpoint = new ServerEndpoint({
      connection: connectionConfig(nobleProvider, seededRandom("skipcv/server")),
      psk: serverPsk(clientAuthServer()),
    });
    // Our client, but its flight 5 loses the CertificateVerify before it is
    // sealed, and the Finished takes its message_seq: what a client that
    // skips it sends.
    const client = flightEditingClient("skipcv/client", (items) => {
      const verify = items.findIndex((i) =>
        i.kind === "handshake" && i.msgType === HandshakeType.CertificateVerify
      );
      if (verify < 0) return items;
      const seq = (items[verify] as { messageSeq: number }).messageSeq;
      return items.filter((_, n) => n !== verify).map((i) =>
        i.kind === "handshake" && i.msgType === HandshakeType.Finished
          ? { ...i, messageSeq: seq }
          : i
      );
    });
    client.start();
    const received: string[] = [];
    for (let round = 0; round < 10; round++) {
      for (let d = client.pollTransmit(); d; d = client.pollTransmit()) {
        const out = endpoint.handleDatagram(d, PEER, CERT_TIME);
        if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, CERT_TIME);
      }
      const server = endpoint.get(PEER);
      for (let d = server?.pollTransmit(); d; d = server?.pollTransmit()) {
        client.handleDatagram(d, CERT_TIME);
      }
      for (let e = client.pollEvent(); e; e = client.pollEvent()) {
        if (e.type === "alert" && e.direction === "received") received.push(e.description);
      }
    }
    assert.deepEqual(received, ["unexpected_message"]);
    assert.equal(endpoint.get(PEER)?.isClosed, true);
  },
});

// ---- raw public keys (RFC 7250) ---------------------------------------------------------

Deno.test({
  name:
    "raw public keys: a client that pins the server's key gets it instead of the chain, and refuses another",
  ignore: openssl.ignore,
  fn() {
    const pki = testPki();
    const server = serverCertificate(pki.ecCert, pki.ecKey);
    const pinned = server.certificate!()!.spki;
    const pair = (keys: Uint8Array[]) =>
      new Pair({
        start: CERT_TIME,
        seed: `rpk/${keys.length}/${keys[0]?.length}`,
        server: { ...server, suites: CIPHER_SUITES },
        client: {
          serverKeys: keys,
          suites: [suiteByName("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")],
        },
      });
    const good = pair([pinned]);
    good.run();
    assertSession(good, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    // What went on the wire was the key alone: no certificate in it.
    const certificateBodies = good.wire
      .filter((w) => w.direction === "s2c")
      .flatMap((w) => parseRecords(w.datagram).records)
      .filter((r) => r.type === ContentType.Handshake && r.epoch === 0)
      .flatMap((r) => parseHandshakeFragments(r.fragment))
      .filter((f) => f.msgType === HandshakeType.Certificate);
    assert.equal(certificateBodies[0]?.length, 3 + pinned.length);

    const other = serverCertificate(pki.untrustedCert, pki.untrustedKey).certificate!()!.spki;
    const bad = pair([other]);
    bad.run();
    assert.equal(sentAlert(bad.clientEvents), "bad_certificate");
  },
});
