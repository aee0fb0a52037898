/**
 * Session resumption end to end (RFC 5246 §7.3, RFC 5077): OpenSSL's
 * s_client reconnecting by ticket and by session ID (`-reconnect`, which
 * prints `Reused`), a saved session (`-sess_out`/`-sess_in`) resumed by a
 * restarted server that shares the ticket key file, a certificate suite
 * resumed, and Mbed TLS 3.6 (built from Debian 13's source, see
 * .ci/debian13-peers) resuming by ticket and by session ID.
 */
import assert from "node:assert/strict";
import { ACK, sClientPsk } from "../helpers/openssl_psk.ts";
import {
  DEMO,
  runPeer,
  type RunPeerResult,
  type ServerProcess,
  skipUnless,
  startServer,
} from "../helpers/server_process.ts";
import { certificateArgs } from "../helpers/certificates.ts";
import { testPki } from "../helpers/pki.ts";
import { mbedtls36 } from "../helpers/debian13_peers.ts";

const TIMEOUT_MS = 20_000;
const openssl = skipUnless("openssl");

function show(server: ServerProcess, result: RunPeerResult): string {
  return `exit ${result.code}, timed out ${result.timedOut}\n--- client stdout:\n${result.stdout}\n` +
    `--- client stderr:\n${result.stderr}\n${server.describe()}`;
}

/** The `resumed` field of every handshake_complete the server logged, in order. */
function resumptions(server: ServerProcess): (string | undefined)[] {
  return server.events("handshake_complete").map((e) => e.resumed as string | undefined);
}

/** A ticket key file of `lines` (hex secrets), mode 0600, removed when the test file ends. */
function ticketKeyFile(...lines: string[]): string {
  const path = Deno.makeTempFileSync({ prefix: "ticket-keys-" });
  Deno.chmodSync(path, 0o600);
  Deno.writeTextFileSync(path, `# session ticket keys\n${lines.join("\n")}\n`);
  globalThis.addEventListener("unload", () => Deno.removeSync(path));
  return path;
}

const SECRET_A = "a1".repeat(32);
const SECRET_B = "b2".repeat(32);

for (
  const [name, cipher, extra, kind] of [
    ["by ticket", "PSK-AES128-GCM-SHA256", [], "ticket"],
    [
      "by session ID (-no_ticket) on ECDHE-PSK",
      "ECDHE-PSK-CHACHA20-POLY1305",
      ["-no_ticket"],
      "session_id",
    ],
  ] as const
) {
  Deno.test({
    name: `openssl s_client -reconnect resumes ${name} five times`,
    ...openssl,
    async fn() {
      await using server = await startServer();
      const result = await sClientPsk(server.port, ["-cipher", cipher, ...extra, "-reconnect"]);
      const context = show(server, result);
      assert.equal((result.stdout.match(/^Reused, /gm) ?? []).length, 5, context);
      await server.waitFor(() => resumptions(server).length >= 6, 5_000);
      assert.deepEqual(resumptions(server), [undefined, ...Array(5).fill(kind)], context);
      assert.equal(await server.stop(), 0);
    },
  });
}

Deno.test({
  name: "a saved ticket resumes across a restart with the same --ticket-key-file, not without",
  ...openssl,
  async fn() {
    const keys = ticketKeyFile(SECRET_A, SECRET_B);
    const session = Deno.makeTempFileSync({ prefix: "s_client-session-" });
    try {
      const cipher = ["-cipher", "PSK-AES256-GCM-SHA384"];
      {
        await using first = await startServer(["--ticket-key-file", keys]);
        await first.waitForEvent("ticket_keys_loaded", { keys: 2 });
        const result = await sClientPsk(first.port, [...cipher, "-sess_out", session]);
        assert.ok(result.reply, show(first, result));
        assert.equal(await first.stop(), 0);
      }
      {
        await using second = await startServer(["--ticket-key-file", keys]);
        const result = await sClientPsk(second.port, [...cipher, "-sess_in", session]);
        const context = show(second, result);
        assert.match(result.stdout, /^Reused, /m, context);
        const complete = await second.waitForEvent("handshake_complete");
        assert.equal(complete.resumed, "ticket", context);
        assert.equal(complete.identity, DEMO.identity, context);
        assert.equal(await second.stop(), 0);
      }
      {
        // Each process its own key: the ticket is another server's.
        await using third = await startServer();
        const result = await sClientPsk(third.port, [...cipher, "-sess_in", session]);
        const context = show(third, result);
        assert.match(result.stdout, /^New, /m, context);
        const refused = await third.waitForEvent("ticket_refused");
        assert.equal(refused.reason, "unknown_key", context);
        assert.equal(await third.stop(), 0);
      }
    } finally {
      Deno.removeSync(session);
    }
  },
});

Deno.test({
  name: "SIGHUP rotates the ticket keys: an old ticket resumes while its key is listed",
  ...openssl,
  async fn() {
    const keys = ticketKeyFile(SECRET_A);
    const session = Deno.makeTempFileSync({ prefix: "s_client-session-" });
    try {
      await using server = await startServer(["--ticket-key-file", keys]);
      const cipher = ["-cipher", "PSK-AES128-GCM-SHA256"];
      assert.ok((await sClientPsk(server.port, [...cipher, "-sess_out", session])).reply);
      // A new key in front: it seals from now on, A still opens.
      Deno.writeTextFileSync(keys, `${SECRET_B}\n${SECRET_A}\n`);
      Deno.kill(server.pid, "SIGHUP");
      await server.waitForEvent("ticket_keys_reloaded", { keys: 2 });
      const kept = await sClientPsk(server.port, [...cipher, "-sess_in", session]);
      assert.match(kept.stdout, /^Reused, /m, show(server, kept));
      // A taken out: the ticket sealed under it makes a full handshake.
      Deno.writeTextFileSync(keys, `${SECRET_B}\n`);
      Deno.kill(server.pid, "SIGHUP");
      await server.waitForEvent("ticket_keys_reloaded", { keys: 1 });
      const gone = await sClientPsk(server.port, [...cipher, "-sess_in", session]);
      assert.match(gone.stdout, /^New, /m, show(server, gone));
      // A broken file keeps the keys in force.
      Deno.writeTextFileSync(keys, "not hex\n");
      Deno.kill(server.pid, "SIGHUP");
      await server.waitForEvent("ticket_keys_reload_failed");
      assert.deepEqual(resumptions(server), [undefined, "ticket", undefined]);
      assert.equal(await server.stop(), 0);
    } finally {
      Deno.removeSync(session);
    }
  },
});

Deno.test({
  name: "openssl s_client resumes a certificate session (ECDHE-ECDSA) by ticket and by session ID",
  ...openssl,
  async fn() {
    const pki = testPki();
    await using server = await startServer(certificateArgs(pki.ecCert, pki.ecKey));
    for (const extra of [[], ["-no_ticket"]]) {
      const result = await runPeer("openssl", [
        "s_client",
        "-dtls1_2",
        "-connect",
        `127.0.0.1:${server.port}`,
        "-CAfile",
        pki.caCert,
        "-verify_return_error",
        "-cipher",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "-reconnect",
        ...extra,
      ], { input: "Message #1\n", until: ACK, timeoutMs: TIMEOUT_MS });
      assert.equal((result.stdout.match(/^Reused, /gm) ?? []).length, 5, show(server, result));
    }
    await server.waitFor(() => resumptions(server).length >= 12, 5_000);
    assert.deepEqual(resumptions(server), [
      undefined,
      ...Array(5).fill("ticket"),
      undefined,
      ...Array(5).fill("session_id"),
    ]);
    assert.equal(await server.stop(), 0);
  },
});

Deno.test({
  name: "--session-lifetime 0 turns resumption off: openssl reconnects with full handshakes",
  ...openssl,
  async fn() {
    await using server = await startServer(["--session-lifetime", "0"]);
    const result = await sClientPsk(server.port, [
      "-cipher",
      "PSK-AES128-GCM-SHA256",
      "-reconnect",
    ]);
    assert.equal((result.stdout.match(/^Reused, /gm) ?? []).length, 0, show(server, result));
    assert.equal(await server.stop(), 0);
  },
});

for (const tickets of [1, 0]) {
  Deno.test({
    name: `Mbed TLS 3.6 reconnects resuming by ${tickets ? "ticket" : "session ID"}`,
    ignore: mbedtls36.ignore,
    async fn() {
      await using server = await startServer();
      const result = await runPeer(mbedtls36.client(), [
        "server_addr=127.0.0.1",
        `server_port=${server.port}`,
        "dtls=1",
        `psk=${DEMO.keyHex}`,
        `psk_identity=${DEMO.identity}`,
        "force_ciphersuite=TLS-PSK-WITH-AES-128-CCM-8",
        "reconnect=1",
        `tickets=${tickets}`,
      ], { timeoutMs: TIMEOUT_MS });
      const context = show(server, result);
      assert.equal(result.code, 0, context);
      assert.match(result.stdout, /Reconnecting with saved session\.\.\. ok/, context);
      await server.waitFor(() => resumptions(server).length >= 2, 5_000);
      assert.deepEqual(resumptions(server), [undefined, tickets ? "ticket" : "session_id"]);
      assert.equal(await server.stop(), 0);
    },
  });
}

Deno.test({
  name: "openssl s_client with a client certificate resumes under the same --client-ca",
  ...openssl,
  async fn() {
    const pki = testPki();
    await using server = await startServer([
      ...certificateArgs(pki.ecCert, pki.ecKey),
      "--client-ca",
      pki.caCert,
    ]);
    const result = await runPeer("openssl", [
      "s_client",
      "-dtls1_2",
      "-connect",
      `127.0.0.1:${server.port}`,
      "-CAfile",
      pki.caCert,
      "-verify_return_error",
      "-cert",
      pki.clientCert,
      "-key",
      pki.clientKey,
      "-cipher",
      "ECDHE-ECDSA-AES128-GCM-SHA256",
      "-reconnect",
    ], { input: "Message #1\n", until: ACK, timeoutMs: TIMEOUT_MS });
    const context = show(server, result);
    assert.equal((result.stdout.match(/^Reused, /gm) ?? []).length, 5, context);
    await server.waitFor(() => resumptions(server).length >= 6, 5_000);
    const completes = server.events("handshake_complete");
    assert.deepEqual(resumptions(server), [undefined, ...Array(5).fill("ticket")], context);
    for (const complete of completes) {
      assert.equal(complete.peerSubject, "CN=device-1", "each resumption says who the client is");
    }
    assert.equal(await server.stop(), 0);
  },
});
