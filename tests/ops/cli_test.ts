/**
 * The command line as an operator meets it: help, version, refusals, the
 * client command, metrics, SIGHUP key reload and the pretty log.
 */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { parseHexKey } from "../../src/server/psk_store.ts";
import { MAIN_PERMS, REPO_ROOT, runMain, startServer } from "../helpers/server_process.ts";
import { testPki } from "../helpers/pki.ts";

function tempFile(name: string, text: string): string {
  const dir = Deno.makeTempDirSync({ prefix: "dtls-cli-" });
  Deno.writeTextFileSync(`${dir}/${name}`, text);
  return `${dir}/${name}`;
}

Deno.test("--help lists every setting with its environment variable; --version prints the version", async () => {
  const help = await runMain(["--help"]);
  assert.equal(help.code, 0);
  for (
    const v of [
      "DTLS_SERVER_PORT",
      "DTLS_SERVER_PSK_FILE",
      "DTLS_SERVER_METRICS",
      "DTLS_SERVER_LOG_FORMAT",
    ]
  ) {
    assert.ok(help.stdout.includes(v), v);
  }
  const version = await runMain(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(version.stdout.trim(), `dtls-server ${denoJson.version}`);
});

Deno.test("invalid settings exit non-zero with one message naming the setting", async (t) => {
  const cases: [string, string[], Record<string, string>, RegExp][] = [
    ["bad port", ["--port", "99999"], {}, /^Cannot use --port "99999" \(from --port\)/],
    ["bad port from the environment", [], { DTLS_SERVER_PORT: "x" }, /from DTLS_SERVER_PORT/],
    [
      "unreadable key file",
      ["--psk-file", "/nonexistent/keys.psk"],
      {},
      /^Cannot read --psk-file \/nonexistent\/keys\.psk/,
    ],
    [
      "malformed key line",
      ["--psk-file", tempFile("k.psk", "alice:zz\n")],
      {},
      /^Cannot parse --psk-file .* line 1 key/,
    ],
    [
      "unknown flag",
      ["--frobnicate"],
      {},
      /^Cannot parse the command line: Unknown option '--frobnicate'/,
    ],
    [
      "demo key off loopback",
      ["--address", "0.0.0.0"],
      {},
      /^Cannot use the demo key on non-loopback address 0\.0\.0\.0/,
    ],
  ];
  for (const [name, args, env, pattern] of cases) {
    await t.step(name, async () => {
      const r = await runMain(args, { env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, "", "nothing started");
    });
  }
});

Deno.test("the client command talks to the server and prints the suite and each reply", async () => {
  await using server = await startServer([]);
  const r = await runMain([
    "client",
    "--connect",
    `127.0.0.1:${server.port}`,
    "--psk-identity",
    "Qt DTLS example client",
    "--psk-key",
    "1a2b3c4d5e6f",
    "--count",
    "2",
    "--cipher",
    "TLS_PSK_WITH_AES_128_CCM_8",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines[0], "connected: TLS_PSK_WITH_AES_128_CCM_8, DTLS 1.2");
  assert.equal(lines.length, 3);
  for (const line of lines.slice(1)) assert.match(line, /^to \(127\.0\.0\.1:\d+\): ACK$/);
  await server.waitForEvent("datagram", { plaintext: "Message #2" });
});

Deno.test("the client command without keys is the Qt example's client: it talks to the demo server", async () => {
  await using server = await startServer([]);
  const r = await runMain(["client", "--connect", `127.0.0.1:${server.port}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^connected: \S+, DTLS 1\.2\nto \(127\.0\.0\.1:\d+\): ACK\n$/);
  const identity = await server.waitForEvent("psk_identity", {});
  assert.equal(identity.identity, "Qt DTLS example client");
});

Deno.test("the client command speaks DTLS 1.3 (--dtls 1.3): with the demo PSK, and with --ca alone the certificate", async () => {
  await using server = await startServer([]);
  // Many messages on one connection, each answered.
  const r = await runMain([
    "client",
    "--connect",
    `127.0.0.1:${server.port}`,
    "--dtls",
    "1.3",
    "--count",
    "200",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  assert.equal(lines[0], "connected: TLS_AES_128_GCM_SHA256, DTLS 1.3");
  assert.equal(lines.length, 201);
  assert.ok(lines.slice(1).every((l) => /^to \(127\.0\.0\.1:\d+\): ACK$/.test(l)));
  const pki = testPki();
  await using certified = await startServer(["--cert", pki.ecCert, "--key", pki.ecKey]);
  const c = await runMain([
    "client",
    "--connect",
    `127.0.0.1:${certified.port}`,
    "--dtls",
    "1.3",
    "--ca",
    pki.caCert,
    "--server-name",
    "localhost",
  ]);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /DTLS 1\.3/);
  const complete = await certified.waitForEvent("handshake_complete", {});
  assert.equal(complete.version, "DTLS 1.3");
  assert.equal(complete.identity, "");
  const bad = await runMain(["client", "--connect", "127.0.0.1:1", "--dtls", "1.4"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--dtls 1\.4/);
});

Deno.test("the client command fails clearly with a wrong key", async () => {
  const keys = tempFile("keys.psk", "alice:00112233\n");
  await using server = await startServer(["--psk-file", keys]);
  const r = await runMain([
    "client",
    "--connect",
    `127.0.0.1:${server.port}`,
    "--psk-identity",
    "alice",
    "--psk-key",
    "99999999",
    "--timeout",
    "5",
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Cannot connect: fatal alert received: bad_record_mac/);
});

Deno.test("metrics move after a handshake and a message; /healthz answers", async () => {
  await using server = await startServer(["--metrics", "127.0.0.1:0"]);
  const listening = await server.waitForEvent("metrics_listening");
  const base = `http://127.0.0.1:${listening.port}`;
  const before = await (await fetch(`${base}/metrics`)).text();
  assert.match(before, /^dtls_handshakes_completed_total 0$/m);
  const client = new DtlsClient({
    hostname: "127.0.0.1",
    port: server.port,
    identity: "metrics",
    psk: parseHexKey("1a2b3c4d5e6f", "k"),
  });
  try {
    await client.connect(5_000);
    client.send("count me");
    await client.receive(5_000);
  } finally {
    await client.close();
  }
  await server.waitForEvent("connection_closed");
  const after = await (await fetch(`${base}/metrics`)).text();
  assert.match(after, /^dtls_handshakes_started_total 1$/m);
  assert.match(after, /^dtls_handshakes_completed_total 1$/m);
  assert.match(after, /^dtls_hello_verify_requests_total 1$/m);
  assert.match(after, /^dtls_app_records_received_total 1$/m);
  assert.match(after, /^dtls_app_records_sent_total 1$/m);
  assert.match(after, /^dtls_handshake_duration_seconds_count 1$/m);
  assert.match(after, /^dtls_datagrams_received_total [1-9]\d*$/m);
  assert.match(after, /^dtls_connections 0$/m);
  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(await health.text(), "ok\n");
  const missing = await fetch(`${base}/nope`);
  await missing.body?.cancel();
  assert.equal(missing.status, 404);
});

Deno.test("SIGHUP reloads the keys without dropping connections", async () => {
  const keys = tempFile("keys.psk", "alice:0102030405060708\n");
  await using server = await startServer(["--psk-file", keys]);
  const alice = new DtlsClient({
    hostname: "127.0.0.1",
    port: server.port,
    identity: "alice",
    psk: parseHexKey("0102030405060708", "k"),
  });
  const bobKey = parseHexKey("a0a1a2a3a4a5a6a7", "k");
  try {
    await alice.connect(5_000);
    const bobBefore = new DtlsClient({
      hostname: "127.0.0.1",
      port: server.port,
      identity: "bob",
      psk: bobKey,
    });
    await assert.rejects(() => bobBefore.connect(5_000), /bad_record_mac/);

    Deno.writeTextFileSync(keys, "alice:0102030405060708\nbob:a0a1a2a3a4a5a6a7\n");
    Deno.kill(server.pid, "SIGHUP");
    await server.waitForEvent("keys_reloaded", { identities: 2 });

    alice.send("still connected");
    assert.match(new TextDecoder().decode(await alice.receive(5_000)), /ACK$/);
    const bob = new DtlsClient({
      hostname: "127.0.0.1",
      port: server.port,
      identity: "bob",
      psk: bobKey,
    });
    try {
      await bob.connect(5_000);
    } finally {
      await bob.close();
    }

    // A broken key file on reload keeps the old keys.
    Deno.writeTextFileSync(keys, "broken line\n");
    Deno.kill(server.pid, "SIGHUP");
    await server.waitForEvent("keys_reload_failed");
    alice.send("and still");
    await alice.receive(5_000);
  } finally {
    await alice.close();
  }
  assert.equal(await server.stop(), 0);
});

Deno.test("--log-format pretty colours the log for a terminal", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...MAIN_PERMS, "main.ts", "--port", "0", "--log-format", "pretty"],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  const deadline = Date.now() + 15_000;
  while (!text.includes("listening") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  child.kill("SIGTERM");
  reader.releaseLock();
  await child.stdout.cancel();
  const status = await child.status;
  assert.equal(status.code, 0);
  assert.ok(text.includes("\x1b[38;2;255;140;0m"), "warning (demo key) in orange");
  assert.ok(text.includes("\x1b[38;2;65;105;225mServer is listening"), "info in blue");
  assert.ok(!text.includes('{"ts"'), "not JSON");
});

Deno.test("--log-plaintext logs payloads with real keys; without it they are not logged", async () => {
  const keys = tempFile("keys.psk", "alice:0102030405060708\n");
  const psk = parseHexKey("0102030405060708", "k");
  for (const [args, logged] of [[["--log-plaintext"], true], [[], false]] as const) {
    await using server = await startServer(["--psk-file", keys, ...args]);
    const client = new DtlsClient({
      hostname: "127.0.0.1",
      port: server.port,
      identity: "alice",
      psk,
    });
    try {
      await client.connect(5_000);
      client.send("secret payload");
      await client.receive(5_000);
    } finally {
      await client.close();
    }
    const datagram = await server.waitForEvent("datagram");
    assert.equal(datagram.plaintext, logged ? "secret payload" : undefined);
    assert.match(String(datagram.ciphertext), /^17fefd0001/);
  }
});

Deno.test("--crypto noble serves, and --handshake-rate refuses a second handshake from one address", async () => {
  await using server = await startServer([
    "--crypto",
    "noble",
    "--handshake-rate",
    "1",
    "--handshake-burst",
    "1",
    "--handshake-timeout",
    "2s",
  ]);
  const psk = parseHexKey("1a2b3c4d5e6f", "k");
  const first = new DtlsClient({ hostname: "127.0.0.1", port: server.port, identity: "a", psk });
  try {
    await first.connect(5_000);
  } finally {
    await first.close();
  }
  const second = new DtlsClient({ hostname: "127.0.0.1", port: server.port, identity: "b", psk });
  // Refused handshakes are dropped silently; the client's retries are refused too
  // until a token comes back a second later, so it may still get through.
  const outcome = second.connect(5_000).then(() => "connected", () => "failed");
  const refused = await server.waitForEvent("handshake_refused");
  assert.equal(refused.reason, "rate");
  await outcome;
  await second.close();
});

Deno.test("--allow-demo-key on a public address does not log payloads unless --log-plaintext", async () => {
  const psk = parseHexKey("1a2b3c4d5e6f", "k");
  for (const [args, logged] of [[[], false], [["--log-plaintext"], true]] as const) {
    await using server = await startServer(["--address", "0.0.0.0", "--allow-demo-key", ...args]);
    const client = new DtlsClient({ hostname: "127.0.0.1", port: server.port, identity: "d", psk });
    try {
      await client.connect(5_000);
      client.send("demo payload");
      await client.receive(5_000);
    } finally {
      await client.close();
    }
    const datagram = await server.waitForEvent("datagram");
    assert.equal(datagram.plaintext, logged ? "demo payload" : undefined, args.join(" "));
  }
});

Deno.test("a SIGHUP as soon as the server reports listening reloads the keys, and does not end it", async () => {
  const keys = tempFile("keys.psk", "alice:0102030405060708\n");
  await using server = await startServer(["--psk-file", keys, "--metrics", "127.0.0.1:0"]);
  Deno.kill(server.pid, "SIGHUP");
  await server.waitForEvent("keys_reloaded", { identities: 1 });
  assert.equal(await server.stop(), 0);
});

Deno.test("a key file open to group or others is warned of at start and on SIGHUP; the server still serves", async () => {
  const keys = tempFile("keys.psk", "alice:0102030405060708\n");
  Deno.chmodSync(keys, 0o644);
  await using server = await startServer(["--psk-file", keys]);
  const warning = await server.waitForEvent("key_file_permissions");
  assert.equal(warning.level, "warning");
  assert.equal(warning.file, keys);
  assert.equal(warning.mode, "0644");
  assert.ok(String(warning.msg).includes(`chmod 600 ${keys}`), String(warning.msg));

  const reloads = (n: number) =>
    server.waitFor(() => server.events("keys_reloaded").length === n, 10_000, `${n} reloads`);
  Deno.chmodSync(keys, 0o600);
  Deno.kill(server.pid, "SIGHUP");
  await reloads(1);
  assert.equal(server.events("key_file_permissions").length, 1, "a private file is not warned of");

  Deno.chmodSync(keys, 0o640);
  Deno.kill(server.pid, "SIGHUP");
  await reloads(2);
  const warnings = server.events("key_file_permissions");
  assert.deepEqual(warnings.map((w) => w.mode), ["0644", "0640"]);
  assert.equal(await server.stop(), 0);
});

Deno.test("--metrics on a non-loopback address warns that it is unauthenticated", async () => {
  for (const [metrics, exposed] of [["127.0.0.1:0", false], ["0.0.0.0:0", true]] as const) {
    await using server = await startServer(["--metrics", metrics]);
    await server.waitForEvent("metrics_listening");
    assert.equal(await server.stop(), 0);
    const warnings = server.events("metrics_exposed");
    assert.equal(warnings.length, exposed ? 1 : 0, metrics);
    if (exposed) {
      assert.equal(warnings[0]!.level, "warning");
      assert.equal(warnings[0]!.address, "0.0.0.0");
      assert.match(String(warnings[0]!.msg), /unauthenticated/);
    }
  }
});
