/**
 * End to end against Mbed TLS 2.28, the embedded world's TLS stack (CoAP's
 * CCM_8 suites among others): a small client of ours on its API
 * (tests/e2e/mbedtls/dtls_client.c), compiled from Debian's
 * libmbedtls-dev, runs the handshake with the cookie exchange, one message
 * and close_notify against our server on every one of our PSK suites, then
 * on certificates: every ECDHE_ECDSA and ECDHE_RSA suite with the server's
 * chain verified (MBEDTLS_SSL_VERIFY_REQUIRED, host name localhost), and
 * client authentication. Without a C compiler or the library, these tests
 * skip, saying why.
 */

import { certificateArgs } from "../helpers/certificates.ts";
import assert from "node:assert/strict";
import { CERTIFICATE_SUITES, PSK_SUITES } from "../../src/record/suites.ts";
import {
  assertReceivedThenClosed,
  DEMO,
  runPeer,
  type ServerProcess,
  startServer,
} from "../helpers/server_process.ts";
import { buildPeer, shellSucceeds } from "../helpers/build_peer.ts";
import { testPki } from "../helpers/pki.ts";

const TIMEOUT_MS = 20_000;
const MESSAGE = "Message from Mbed TLS";

const mbedtls = buildPeer(
  "mbedtls-client",
  () => {
    if (!shellSucceeds("command -v cc")) return "no C compiler (Debian: gcc)";
    if (!shellSucceeds("test -f /usr/include/mbedtls/ssl.h")) {
      return "Mbed TLS not installed (Debian: libmbedtls-dev)";
    }
    return undefined;
  },
  "cc",
  (output) => [
    "-O1",
    "-o",
    output,
    new URL("./mbedtls/dtls_client.c", import.meta.url).pathname,
    "-lmbedtls",
    "-lmbedx509",
    "-lmbedcrypto",
  ],
);

for (const { name: suite } of PSK_SUITES) {
  Deno.test({
    name: `mbedtls client: ${suite}`,
    ignore: mbedtls.ignore,
    async fn() {
      await using server = await startServer();
      const result = await runPeer(
        mbedtls.path(),
        ["127.0.0.1", String(server.port), DEMO.identity, DEMO.keyHex, suite, MESSAGE],
        { timeoutMs: TIMEOUT_MS },
      );
      const context = `exit ${result.code}\n--- client stdout:\n${result.stdout}\n` +
        `--- client stderr:\n${result.stderr}\n${server.describe()}`;
      assert.equal(result.code, 0, context);
      const session = JSON.parse(result.stdout.trim()) as { suite: string; reply: string };
      assert.equal(session.suite, suite.replaceAll("_", "-"), context);

      const complete = await server.waitForEvent("handshake_complete", {}, TIMEOUT_MS);
      assert.equal(complete.suite, suite, context);
      assert.equal(complete.identity, DEMO.identity, context);
      assert.equal(complete.extendedMasterSecret, true, "Mbed TLS offers extended_master_secret");
      // RFC 7366: encrypt_then_mac applies to CBC only; Mbed TLS offers it by default.
      assert.equal(complete.encryptThenMac, suite.includes("CBC"), context);
      assert.equal(session.reply, `to (${complete.peer}): ACK`, context);
      await assertReceivedThenClosed(server, complete.peer, MESSAGE, context, TIMEOUT_MS);
      assert.equal(await server.stop(), 0);
    },
  });
}

/** The client on certificates against `server`, with `options` (--ca, --cert, ...) before the rest. */
function certificateClient(
  server: ServerProcess,
  suite: string,
  options: readonly string[] = [],
) {
  return runPeer(
    mbedtls.path(),
    [...options, "127.0.0.1", String(server.port), suite, MESSAGE],
    { timeoutMs: TIMEOUT_MS },
  );
}

/**
 * Mbed TLS verified our chain and name, completed `suite`, got the ACK and
 * closed; returns the server's handshake_complete entry.
 */
async function assertCertificateSession(
  server: ServerProcess,
  suite: string,
  options: readonly string[],
) {
  const result = await certificateClient(server, suite, options);
  const context = `exit ${result.code}\n--- client stdout:\n${result.stdout}\n` +
    `--- client stderr:\n${result.stderr}\n${server.describe()}`;
  assert.equal(result.code, 0, context);
  const session = JSON.parse(result.stdout.trim()) as {
    suite: string;
    reply: string;
    peer: string;
  };
  assert.equal(session.suite, suite.replaceAll("_", "-"), context);
  assert.equal(session.peer, "CN=localhost", context);
  const complete = await server.waitForEvent("handshake_complete", { suite }, TIMEOUT_MS);
  assert.equal(complete.extendedMasterSecret, true, context);
  assert.equal(complete.encryptThenMac, false, "AEAD suites only");
  assert.equal(session.reply, `to (${complete.peer}): ACK`, context);
  await assertReceivedThenClosed(server, complete.peer, MESSAGE, context, TIMEOUT_MS);
  return complete;
}

const ECDSA_SUITES = CERTIFICATE_SUITES.filter((s) => s.kx === "ecdhe_ecdsa").map((s) => s.name);
const RSA_SUITES = CERTIFICATE_SUITES.filter((s) => s.kx === "ecdhe_rsa").map((s) => s.name);

Deno.test({
  name:
    "mbedtls client on certificates: verifies our P-256 chain on every ECDHE_ECDSA suite, CCM_8 included",
  ignore: mbedtls.ignore,
  async fn(t) {
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--log-plaintext",
    ]);
    // TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 is CoAP's mandatory suite for certificates (RFC 7252 §9.1.3.3).
    assert.ok(ECDSA_SUITES.includes("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"));
    for (const suite of ECDSA_SUITES) {
      await t.step(suite, async () => {
        await assertCertificateSession(server, suite, ["--ca", pki.caCert]);
      });
    }
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name: "mbedtls client on certificates: verifies our RSA chain on every ECDHE_RSA suite",
  ignore: mbedtls.ignore,
  async fn(t) {
    // Mbed TLS 2.28 signs and verifies TLS 1.2 with PKCS#1 v1.5 only (no
    // RSA-PSS): the server must choose rsa_pkcs1_* from its signature_algorithms.
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.rsaCert, pki.rsaKey),
      "--log-plaintext",
    ]);
    for (const suite of RSA_SUITES) {
      await t.step(suite, async () => {
        await assertCertificateSession(server, suite, ["--ca", pki.caCert]);
      });
    }
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name: "mbedtls client on certificates: refuses an untrusted chain and a wrong name",
  ignore: mbedtls.ignore,
  async fn(t) {
    const pki = testPki();
    const suite = "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8";
    await t.step("untrusted CA", async () => {
      await using server = await startServer([
        ...certificateArgs(pki.untrustedCert, pki.untrustedKey),
      ]);
      const result = await certificateClient(server, suite, ["--ca", pki.caCert]);
      assert.equal(result.code, 1, result.stdout + result.stderr + server.describe());
      assert.match(result.stderr, /not correctly signed by the trusted CA/, result.stderr);
      await server.waitFor((e) => e.event === "alert_received", 5_000);
      assert.equal(server.events("handshake_complete").length, 0, server.describe());
    });
    await t.step("wrong server name", async () => {
      await using server = await startServer([...certificateArgs(pki.ecCert, pki.ecKey)]);
      const result = await certificateClient(server, suite, [
        "--ca",
        pki.caCert,
        "--server-name",
        "example.org",
      ]);
      assert.equal(result.code, 1, result.stdout + result.stderr + server.describe());
      assert.match(result.stderr, /Common Name \(CN\) does not match/, result.stderr);
      assert.equal(server.events("handshake_complete").length, 0, server.describe());
    });
  },
});

Deno.test({
  name:
    "mbedtls client on certificates: client authentication with --client-ca, identified as CN=device-1",
  ignore: mbedtls.ignore,
  async fn(t) {
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--client-ca",
      pki.caCert,
      "--log-plaintext",
    ]);
    for (
      const suite of [
        "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
      ]
    ) {
      await t.step(`with its certificate, ${suite}`, async () => {
        const complete = await assertCertificateSession(server, suite, [
          "--ca",
          pki.caCert,
          "--cert",
          pki.clientCert,
          "--key",
          pki.clientKey,
        ]);
        assert.equal(complete.peerSubject, "CN=device-1", server.describe());
        assert.match(String(complete.peerSpkiSha256), /^[0-9a-f]{64}$/);
      });
    }
    await t.step("without one it is refused", async () => {
      const result = await certificateClient(server, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", [
        "--ca",
        pki.caCert,
      ]);
      assert.equal(result.code, 1, result.stdout + server.describe());
      await server.waitFor(
        (e) => e.event === "alert_sent" && e.description === "handshake_failure",
        5_000,
      );
    });
  },
});
