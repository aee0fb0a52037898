/**
 * Findings of the adversarial review of --keylog (fa9c3b9): the file that
 * receives every session's master secret. Each test FAILS on the code as
 * reviewed. Live server processes (tests/helpers/server_process.ts).
 */
import assert from "node:assert/strict";
import { startServer } from "../helpers/server_process.ts";

function tempDir(): string {
  return Deno.makeTempDirSync({ dir: "/tmp", prefix: "review-keylog-" });
}

/** Starts a server with `--keylog path`: the server, or the error it failed to start with. */
async function tryStart(path: string, timeoutMs = 15_000) {
  try {
    return { server: await startServer(["--keylog", path], { startTimeoutMs: timeoutMs }) };
  } catch (error) {
    return { error: error as Error };
  }
}

Deno.test({
  name:
    "review keylog live: an existing key log readable by others is refused, fixed to 0600, or at least warned of",
  async fn() {
    const dir = tempDir();
    try {
      const path = `${dir}/keys.log`;
      Deno.writeTextFileSync(path, "");
      Deno.chmodSync(path, 0o644);
      const { server, error } = await tryStart(path);
      if (server === undefined) return void assert.ok(error); // refused: fine
      await using _ = server;
      const mode = Deno.statSync(path).mode! & 0o777;
      const warned = server.logs.some((l) =>
        l.level === "warning" && /readable|permission|mode/i.test(l.msg) && /keylog/i.test(l.msg)
      );
      assert.ok(
        (mode & 0o077) === 0 || warned,
        `master secrets go to a file of mode ${mode.toString(8)}, silently`,
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "review keylog live: a key log path that is a symbolic link is not followed (the /tmp link attack)",
  async fn() {
    const dir = tempDir();
    try {
      // Another local user, expecting `--keylog /tmp/keys.log`, plants a
      // link to a file they can read.
      const target = `${dir}/theirs.log`;
      Deno.writeTextFileSync(target, "");
      Deno.chmodSync(target, 0o666);
      // `ln -s`: Deno.symlinkSync needs unscoped write access, which the test task does not grant.
      const link = new Deno.Command("ln", { args: ["-s", target, `${dir}/keys.log`] }).outputSync();
      assert.ok(link.success);
      const { server } = await tryStart(`${dir}/keys.log`);
      if (server === undefined) return; // refused: fine
      await using _ = server;
      assert.fail("the server opened a symbolic link for its key log and will write secrets there");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "review keylog live: a key log path that is a FIFO does not hang the start",
  async fn() {
    const dir = tempDir();
    try {
      const path = `${dir}/keys.fifo`;
      const made = new Deno.Command("mkfifo", { args: [path] }).outputSync();
      assert.ok(made.success);
      const started = Date.now();
      const { server, error } = await tryStart(path, 10_000);
      if (server !== undefined) await server[Symbol.asyncDispose]();
      // Refusing the path (not a regular file) at once is the fix; starting
      // and writing to it would block the event loop on a slow reader.
      assert.ok(
        server === undefined && error !== undefined && !/Timed out/.test(error.message),
        `start ${server === undefined ? "hung" : "took"} ${Date.now() - started} ms: ${
          error?.message.split("\n")[0]
        }`,
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
