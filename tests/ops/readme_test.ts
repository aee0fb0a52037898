/**
 * The README's operator examples, run as written (with a free port in place
 * of 4433), so the documentation cannot drift from the program.
 */
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { envName, resolveSettings, SETTINGS } from "../../src/server/config.ts";
import { parseHexKey, parsePskFile } from "../../src/server/psk_store.ts";
import { onPath, REPO_ROOT, startServer } from "../helpers/server_process.ts";

const README = Deno.readTextFileSync(`${REPO_ROOT}/README.md`);

/** The fenced blocks of a language ("" for none), in order. */
function blocks(lang: string): string[] {
  const found: string[] = [];
  let current: { lang: string; lines: string[] } | undefined;
  for (const line of README.split("\n")) {
    const fence = /^```(\w*)\s*$/.exec(line);
    if (fence && current === undefined) current = { lang: fence[1]!, lines: [] };
    else if (fence && current !== undefined) {
      if (current.lang === lang) found.push(current.lines.join("\n") + "\n");
      current = undefined;
    } else current?.lines.push(line);
  }
  return found;
}

/** The sh block that contains `needle`, as one command line (continuations joined). */
function command(needle: string): string {
  const block = blocks("sh").find((b) => b.includes(needle));
  assert.ok(block, `README has a sh block with ${needle}`);
  return block.replace(/\\\n\s*/g, "").split("\n").find((l) => l.includes(needle))!;
}

async function sh(
  line: string,
  timeoutMs = 30_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command("bash", {
    args: ["-c", line],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("the README's settings table lists every setting with its environment variable", () => {
  for (const spec of SETTINGS) {
    assert.ok(README.includes(`\`--${spec.name}`), `--${spec.name} documented`);
    assert.ok(README.includes(`\`${envName(spec.name)}\``), `${envName(spec.name)} documented`);
  }
});

Deno.test("the README's settings table gives each setting the default the code has", () => {
  for (const spec of SETTINGS) {
    if (spec.default === undefined) continue;
    const row = README.split("\n").find((line) => line.startsWith(`| \`--${spec.name}`));
    assert.ok(row, `--${spec.name} has a row`);
    const cell = row.split("|")[3]!.trim();
    assert.equal(cell, `\`${spec.default}\``, `--${spec.name}`);
  }
});

Deno.test("README: the invalid-port example prints exactly what the server prints", async () => {
  const example = blocks("").find((b) => b.includes("--port 99999"))!;
  const [prompt, expected] = example.trim().split("\n");
  const r = await sh(prompt!.replace(/^\$ /, ""));
  assert.equal(r.code, 2);
  // npx and deno task print their own lines first.
  assert.equal(r.stderr.split("\n").find((l) => l.startsWith("Cannot")), expected);
});

Deno.test("README: the TOML config example is a valid config", () => {
  const dir = Deno.makeTempDirSync({ prefix: "dtls-readme-" });
  const path = `${dir}/dtls-server.toml`;
  Deno.writeTextFileSync(path, blocks("toml")[0]!);
  const s = resolveSettings(["--config", path], () => undefined);
  assert.equal(s.address, "::1");
  assert.equal(s.port, 5684);
  assert.equal(s.pskFile, "/etc/dtls-server/keys.psk");
  assert.equal(s.idleTimeoutMs, 300_000);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("README: DTLS_SERVER_PSK_KEYS example parses", () => {
  const m = /DTLS_SERVER_PSK_KEYS="([^"]+)"/.exec(README);
  assert.ok(m);
  assert.equal(parsePskFile(m[1]!.replaceAll(",", "\n")).size, 2);
});

Deno.test({
  name: "README: psktool makes a key file the server serves",
  ignore: !onPath("psktool"),
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "dtls-readme-" });
    try {
      const make = command("psktool -u alice -p keys.psk");
      const made = await sh(`cd ${dir} && ${make}`);
      assert.equal(made.code, 0, made.stderr);
      const keys = parsePskFile(Deno.readTextFileSync(`${dir}/keys.psk`));
      await using server = await startServer(["--psk-file", `${dir}/keys.psk`]);
      const client = new DtlsClient({
        hostname: "127.0.0.1",
        port: server.port,
        identity: "alice",
        psk: keys.get("alice")!,
      });
      try {
        await client.connect(5_000);
      } finally {
        await client.close();
      }
      await server.waitForEvent("handshake_complete", { identity: "alice" });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
if (!onPath("psktool")) console.log("skip: psktool not installed (Debian package gnutls-bin)");

Deno.test("README: the client example and the metrics example", async () => {
  await using server = await startServer(["--metrics", "127.0.0.1:0"]);
  const metrics = await server.waitForEvent("metrics_listening");
  const client = await sh(command("task start client").replace("4433", String(server.port)));
  assert.equal(client.code, 0, client.stderr);
  const lines = client.stdout.trim().split("\n");
  assert.match(lines[0]!, /^connected: TLS_\w+, DTLS 1\.2$/);
  assert.equal(lines.filter((l) => /^to \(127\.0\.0\.1:\d+\): ACK$/.test(l)).length, 2);
  if (onPath("curl")) {
    const curl = await sh(command("curl -s").replace("9464", String(metrics.port)));
    assert.match(curl.stdout, /^dtls_handshakes_completed_total 1$/m);
  } else {
    console.log(
      "skip: curl not installed; the metrics example is covered by tests/ops/cli_test.ts",
    );
  }
});

Deno.test("README: the quick-start key is the demo key", () => {
  assert.ok(README.includes("-psk 1a2b3c4d5e6f"));
  assert.deepEqual(parseHexKey("1a2b3c4d5e6f", "k").length, 6);
});
