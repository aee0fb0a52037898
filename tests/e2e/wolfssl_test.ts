/**
 * End to end with wolfSSL 5.7's example client (built from Debian 13's
 * source by .ci/debian13-peers, with DTLS 1.3): over DTLS 1.2 with its
 * compiled-in PSK (identity `Client_identity`, key 1a2b3c4d), and as a
 * client that offers DTLS 1.3 and 1.2 (`-v d`), which our server answers
 * with DTLS 1.2 for now. Its default DTLS 1.2 PSK suite list has none we
 * speak: it is refused with handshake_failure.
 */
import assert from "node:assert/strict";
import { runPeer, type ServerProcess, startServer } from "../helpers/server_process.ts";
import type { RunPeerResult } from "../helpers/server_process.ts";
import { wolfssl57, wolfsslRoot } from "../helpers/debian13_peers.ts";

const TIMEOUT_MS = 20_000;
const ACK = /to \(127\.0\.0\.1:\d+\): ACK/;

/** The key file of the example client's DTLS 1.2 PSK, mode 0600. */
function keyFile(): string {
  const path = Deno.makeTempFileSync({ prefix: "wolfssl-keys-" });
  Deno.chmodSync(path, 0o600);
  Deno.writeTextFileSync(path, "Client_identity:1a2b3c4d\n");
  globalThis.addEventListener("unload", () => Deno.removeSync(path));
  return path;
}

function client(port: number, args: readonly string[]): Promise<RunPeerResult> {
  return runPeer(
    "sh",
    [
      "-c",
      `cd "${wolfsslRoot()}" && exec "${wolfssl57.client()}" -u -s -h 127.0.0.1 -p ${port} ${
        args.join(" ")
      }`,
    ],
    { timeoutMs: TIMEOUT_MS },
  );
}

function show(server: ServerProcess, result: RunPeerResult): string {
  return `exit ${result.code}, timed out ${result.timedOut}\n--- client stdout:\n${result.stdout}\n` +
    `--- client stderr:\n${result.stderr}\n${server.describe()}`;
}

for (
  const [name, args] of [
    ["DTLS 1.2", ["-v", "3", "-l", "PSK-AES128-GCM-SHA256"]],
    ["offering DTLS 1.3 and 1.2, answered with 1.2", [
      "-v",
      "d",
      "-l",
      "TLS13-AES128-GCM-SHA256:PSK-AES128-GCM-SHA256",
    ]],
    ["DTLS 1.2 on PSK-CHACHA20-POLY1305", ["-v", "3", "-l", "PSK-CHACHA20-POLY1305"]],
  ] as const
) {
  Deno.test({
    name: `wolfSSL 5.7 client: ${name}`,
    ignore: wolfssl57.ignore,
    async fn() {
      await using server = await startServer(["--psk-file", keyFile()]);
      const result = await client(server.port, args);
      const context = show(server, result);
      assert.equal(result.code, 0, context);
      assert.match(result.stdout, /SSL version is DTLSv1\.2/, context);
      assert.match(result.stdout, ACK, context);
      const complete = await server.waitForEvent("handshake_complete", {}, TIMEOUT_MS);
      assert.equal(complete.version, "DTLS 1.2", context);
      assert.equal(complete.identity, "Client_identity", context);
      assert.equal(await server.stop(), 0);
    },
  });
}

Deno.test({
  name: "wolfSSL 5.7 client: its default DTLS 1.2 PSK suites, none of them ours, are refused",
  ignore: wolfssl57.ignore,
  async fn() {
    await using server = await startServer(["--psk-file", keyFile()]);
    const result = await client(server.port, ["-v", "3"]);
    const context = show(server, result);
    assert.notEqual(result.code, 0, context);
    const closed = await server.waitForEvent("connection_closed", {}, TIMEOUT_MS);
    assert.match(String(closed.reason), /no common cipher suite/, context);
    assert.equal(await server.stop(), 0);
  },
});
