/**
 * The standalone binary, end to end. `deno compile` needs its base runtime:
 * with `DENORT_BIN` set this builds the binary and drives it; without it the
 * test is skipped with the reason printed.
 */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { REPO_ROOT } from "../helpers/server_process.ts";

const denort = Deno.env.get("DENORT_BIN");
if (denort === undefined) {
  console.log(
    "skip: compiled-binary test needs DENORT_BIN (deno compile cannot download denort here)",
  );
}

async function run(cmd: string, args: string[], timeoutMs = 120_000) {
  const child = new Deno.Command(cmd, { args, cwd: REPO_ROOT, stdout: "piped", stderr: "piped" })
    .spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test({
  name: "deno task compile builds a binary that serves and answers its own client command",
  ignore: denort === undefined,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "dtls-bin-" });
    const binary = `${dir}/dtls-server`;
    try {
      const build = await run(Deno.execPath(), [
        "run",
        "--allow-run",
        "--allow-env",
        "--allow-read",
        `--allow-write=${dir}`,
        "tools/compile.ts",
        binary,
      ]);
      assert.equal(build.code, 0, build.stderr);
      const version = await run(binary, ["--version"]);
      assert.equal(version.stdout.trim(), `dtls-server ${denoJson.version}`);

      const server = new Deno.Command(binary, {
        args: ["--port", "0"],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let log = "";
      let port = 0;
      while (port === 0) {
        const { value, done } = await reader.read();
        if (done) break;
        log += value;
        port = Number(/"event":"listening"[^\n]*"port":(\d+)/.exec(log)?.[1] ?? 0);
      }
      assert.ok(port > 0, log);
      const client = await run(binary, [
        "client",
        "--connect",
        `127.0.0.1:${port}`,
        "--psk-identity",
        "binary",
        "--psk-key",
        "1a2b3c4d5e6f",
      ], 20_000);
      server.kill("SIGTERM");
      reader.releaseLock();
      await server.stdout.cancel();
      await server.stderr.cancel();
      assert.equal((await server.status).code, 0);
      assert.equal(client.code, 0, client.stderr);
      assert.match(client.stdout, /^to \(127\.0\.0\.1:\d+\): ACK$/m);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
