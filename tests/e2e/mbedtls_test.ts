/**
 * End to end against Mbed TLS 2.28, the embedded world's TLS stack (CoAP's
 * CCM_8 suites among others): a small client of ours on its API
 * (tests/e2e/mbedtls/dtls_psk_client.c), compiled from Debian's
 * libmbedtls-dev, runs the handshake with the cookie exchange, one message
 * and close_notify against our server on every one of our suites. Without
 * a C compiler or the library, these tests skip, saying why.
 */

import assert from "node:assert/strict";
import { PSK_SUITES } from "../../src/record/suites.ts";
import { assertReceivedThenClosed, DEMO, runPeer, startServer } from "../helpers/server_process.ts";
import { buildPeer, shellSucceeds } from "../helpers/build_peer.ts";

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
    new URL("./mbedtls/dtls_psk_client.c", import.meta.url).pathname,
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
