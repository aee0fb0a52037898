/**
 * The systemd unit, its env file and the container image definition, checked
 * without installing anything: `systemd-analyze verify` judges the unit, and
 * the settings files go through the same parser as the server's.
 */
import assert from "node:assert/strict";
import { resolveSettings } from "../../src/server/config.ts";
import { onPath, REPO_ROOT } from "../helpers/server_process.ts";

const UNIT = Deno.readTextFileSync(`${REPO_ROOT}/deploy/dtls-server.service`);
const ENV_FILE = Deno.readTextFileSync(`${REPO_ROOT}/deploy/dtls-server.env`);
const DOCKERFILE = Deno.readTextFileSync(`${REPO_ROOT}/Dockerfile`);

/** `systemd-analyze verify` on a copy of the unit whose binary path exists here. */
async function verify(unit: string): Promise<{ code: number; output: string }> {
  const dir = Deno.makeTempDirSync({ prefix: "dtls-unit-" });
  try {
    // The compiled binary is not installed on a test machine: stand in an executable.
    const binary = `${dir}/dtls-server`;
    Deno.writeTextFileSync(binary, "#!/bin/sh\nexit 0\n");
    Deno.chmodSync(binary, 0o755);
    Deno.writeTextFileSync(
      `${dir}/dtls-server.service`,
      unit.replaceAll("/usr/local/bin/dtls-server", binary),
    );
    const out = await new Deno.Command("systemd-analyze", {
      args: ["verify", `${dir}/dtls-server.service`],
      stdout: "piped",
      stderr: "piped",
      env: { SYSTEMD_LOG_COLOR: "0" },
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { code: out.code, output: decode(out.stdout) + decode(out.stderr) };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const haveSystemd = onPath("systemd-analyze");
if (!haveSystemd) console.log("skip: systemd-analyze not installed (Debian package systemd)");

Deno.test({
  name: "systemd-analyze verify accepts deploy/dtls-server.service",
  ignore: !haveSystemd,
  fn: async () => {
    const result = await verify(UNIT);
    assert.equal(result.code, 0, result.output);
    assert.equal(result.output.trim(), "", result.output);
  },
});

Deno.test({
  name: "systemd-analyze verify rejects a broken copy (the check can fail)",
  ignore: !haveSystemd,
  fn: async () => {
    const result = await verify(UNIT.replace("Type=exec", "Type=exce"));
    assert.match(result.output, /Failed to parse service type/);
  },
});

function directives(unit: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of unit.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) map.set(m[1]!, [...(map.get(m[1]!) ?? []), m[2]!]);
  }
  return map;
}

Deno.test("the unit runs sandboxed, unprivileged, reloadable and restarted on failure", () => {
  const d = directives(UNIT);
  assert.deepEqual(d.get("Type"), ["exec"]);
  assert.deepEqual(d.get("DynamicUser"), ["yes"]);
  assert.deepEqual(d.get("ProtectSystem"), ["strict"]);
  assert.deepEqual(d.get("NoNewPrivileges"), ["yes"]);
  assert.deepEqual(d.get("CapabilityBoundingSet"), [""], "no capability for port 4433");
  assert.deepEqual(d.get("Restart"), ["on-failure"]);
  assert.match(d.get("ExecReload")![0]!, /kill -HUP \$MAINPID/);
  assert.match(d.get("LoadCredential")![0]!, /^keys\.psk:\/etc\/dtls-server\/keys\.psk$/);
  assert.match(d.get("ExecStart")![0]!, /--psk-file \$\{CREDENTIALS_DIRECTORY\}\/keys\.psk/);
  assert.equal(d.get("MemoryDenyWriteExecute"), undefined, "V8's JIT needs W+X memory");
});

Deno.test("every line of the example env file is a valid setting", () => {
  const env: Record<string, string> = {};
  for (const line of ENV_FILE.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  assert.ok(Object.keys(env).length >= 5);
  const settings = resolveSettings([], (name) => env[name]);
  assert.equal(settings.address, "0.0.0.0");
  assert.equal(settings.port, 4433);
  assert.deepEqual(settings.metrics, { hostname: "127.0.0.1", port: 9464 });
  assert.equal(settings.idleTimeoutMs, 600_000);
  for (const name of Object.keys(env)) {
    assert.ok(resolveSettings([], (n) => (n === name ? env[name] : undefined)), name);
  }
});

Deno.test("the Dockerfile builds with deno compile and runs the binary as non-root", () => {
  const stages = [...DOCKERFILE.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gm)];
  assert.equal(stages.length, 2, "multi-stage");
  assert.match(stages[0]![1]!, /^denoland\/deno:2\.9\.6$/);
  assert.match(DOCKERFILE, /RUN deno compile [^\n]*--unstable-net[^\n]*/);
  assert.match(DOCKERFILE, /^USER nonroot/m);
  assert.match(DOCKERFILE, /^EXPOSE 4433\/udp$/m);
  assert.match(DOCKERFILE, /^VOLUME \["\/etc\/dtls-server"\]$/m);
  assert.match(
    DOCKERFILE,
    /^HEALTHCHECK .*\n\s+CMD \["\/usr\/local\/bin\/dtls-server", "health", "http:\/\/127\.0\.0\.1:9464\/healthz"\]/m,
  );
  // Exec form: the server is PID 1 and receives docker stop's SIGTERM itself.
  assert.match(DOCKERFILE, /^ENTRYPOINT \["\/usr\/local\/bin\/dtls-server"\]$/m);
  const env: Record<string, string> = {};
  for (const m of DOCKERFILE.matchAll(/(DTLS_SERVER_[A-Z_]+)=(\S+)/g)) env[m[1]!] = m[2]!;
  const settings = resolveSettings([], (name) => env[name]);
  assert.equal(settings.pskFile, "/etc/dtls-server/keys.psk");
  assert.deepEqual(settings.metrics, { hostname: "127.0.0.1", port: 9464 });
});
