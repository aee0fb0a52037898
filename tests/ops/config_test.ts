import assert from "node:assert/strict";
import {
  ConfigError,
  envName,
  parseDuration,
  resolveSettings,
  SETTINGS,
  usage,
} from "../../src/server/config.ts";
import { loadKeys, openKeyFileMode } from "../../src/cli/server_command.ts";

const noEnv = () => undefined;
const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

function tempFile(name: string, text: string): string {
  const dir = Deno.makeTempDirSync({ prefix: "dtls-config-" });
  const path = `${dir}/${name}`;
  Deno.writeTextFileSync(path, text);
  return path;
}

Deno.test("defaults give the Qt example's server on 127.0.0.1:4433", () => {
  const s = resolveSettings([], noEnv);
  assert.equal(s.address, "127.0.0.1");
  assert.equal(s.port, 4433);
  assert.equal(s.identityHint, "Qt DTLS example server");
  assert.equal(s.logFormat, "json");
  assert.equal(s.logLevel, "info");
  assert.equal(s.handshakeTimeoutMs, 30_000);
  assert.equal(s.idleTimeoutMs, 600_000);
  assert.equal(s.pskFile, undefined);
  assert.equal(s.metrics, undefined);
});

Deno.test("every setting has an environment variable named after it", () => {
  for (const spec of SETTINGS) {
    assert.match(envName(spec.name), /^DTLS_SERVER_[A-Z_]+$/);
  }
  assert.equal(envName("psk-file"), "DTLS_SERVER_PSK_FILE");
});

Deno.test("a flag beats the environment, which beats the config file", () => {
  const file = tempFile(
    "c.json",
    JSON.stringify({ port: 1111, mtu: 1000, "identity-hint": "file" }),
  );
  const env = envOf({ DTLS_SERVER_CONFIG: file, DTLS_SERVER_PORT: "2222", DTLS_SERVER_MTU: "900" });
  const s = resolveSettings(["--port", "3333"], env);
  assert.equal(s.port, 3333);
  assert.equal(s.mtu, 900);
  assert.equal(s.identityHint, "file");
});

Deno.test("a TOML config file sets any setting", () => {
  const file = tempFile(
    "c.toml",
    'address = "::1"\nport = 5684\nlog-format = "pretty"\nidle-timeout = "5m"\nmetrics = "[::1]:9464"\nallow-demo-key = true\n',
  );
  const s = resolveSettings(["--config", file], noEnv);
  assert.equal(s.address, "::1");
  assert.equal(s.port, 5684);
  assert.equal(s.logFormat, "pretty");
  assert.equal(s.idleTimeoutMs, 300_000);
  assert.deepEqual(s.metrics, { hostname: "::1", port: 9464 });
  assert.equal(s.allowDemoKey, true);
});

Deno.test("durations take units", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("15"), 15_000);
  assert.equal(parseDuration("soon"), undefined);
});

function refuses(args: string[], env: Record<string, string>, pattern: RegExp): void {
  assert.throws(() => resolveSettings(args, envOf(env)), (error: unknown) => {
    assert.ok(error instanceof ConfigError, `ConfigError, got ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("invalid settings are refused with a message naming the setting and its source", () => {
  refuses(
    ["--port", "70000"],
    {},
    /--port "70000" \(from --port\): expected an integer from 0 to 65535/,
  );
  refuses(["--port", "http"], {}, /--port "http"/);
  refuses([], { DTLS_SERVER_PORT: "-1" }, /--port "-1" \(from DTLS_SERVER_PORT\)/);
  refuses(["--mtu", "100"], {}, /--mtu "100".*256 to 65507/);
  refuses(["--log-level", "loud"], {}, /--log-level "loud".*debug, info, warning, error/);
  refuses(["--log-format", "xml"], {}, /--log-format "xml".*json, pretty/);
  refuses(["--metrics", "9464"], {}, /--metrics "9464".*ADDRESS:PORT/);
  refuses(["--idle-timeout", "forever"], {}, /--idle-timeout "forever".*duration/);
  refuses(["--handshake-timeout", "10ms"], {}, /--handshake-timeout "10ms".*at least 1s/);
  refuses([], { DTLS_SERVER_ALLOW_DEMO_KEY: "maybe" }, /--allow-demo-key "maybe".*true or false/);
  refuses(["--max-connections", "0"], {}, /--max-connections "0"/);
  refuses(["--bogus"], {}, /Cannot parse the command line: Unknown option '--bogus'/);
  refuses(["--port"], {}, /Cannot parse the command line/);
});

Deno.test("a config file with an unknown key, bad syntax or no file at all is refused", () => {
  refuses(["--config", tempFile("c.json", '{"prot": 1}')], {}, /unknown setting "prot"/);
  refuses(["--config", tempFile("c.json", "{port: 1")], {}, /Cannot parse --config .*c\.json/);
  refuses(["--config", tempFile("c.toml", "port = = 1")], {}, /Cannot parse --config .*c\.toml/);
  refuses(
    ["--config", "/nonexistent/dtls.toml"],
    {},
    /Cannot read --config \/nonexistent\/dtls\.toml/,
  );
  refuses(["--config", tempFile("c.json", '{"port": "x"}')], {}, /--port "x" \(from config file/);
});

Deno.test("keys: key file, environment, demo, and the demo refusal off loopback", () => {
  const file = tempFile("keys.psk", "# test keys\nalice:0011223344\n");
  const fromFile = loadKeys(resolveSettings(["--psk-file", file], noEnv), noEnv)!;
  assert.equal(fromFile.kind, "keys");
  assert.deepEqual(
    fromFile.lookup(new TextEncoder().encode("alice")),
    new Uint8Array([0, 0x11, 0x22, 0x33, 0x44]),
  );

  const env = envOf({ DTLS_SERVER_PSK_KEYS: "bob:aabb,carol:ccdd" });
  const fromEnv = loadKeys(resolveSettings([], env), env)!;
  assert.equal(fromEnv.size, 2);
  assert.deepEqual(fromEnv.lookup(new TextEncoder().encode("carol")), new Uint8Array([0xcc, 0xdd]));

  assert.equal(loadKeys(resolveSettings([], noEnv), noEnv)?.kind, "demo");
  // A certificate and no keys: no PSK at all, not the demo key, on any address.
  const certOnly = ["--cert", "c.pem", "--key", "k.pem", "--address", "0.0.0.0"];
  assert.equal(loadKeys(resolveSettings(certOnly, noEnv), noEnv), undefined);
  assert.throws(
    () => loadKeys(resolveSettings(["--address", "0.0.0.0"], noEnv), noEnv),
    /Cannot use the demo key on non-loopback address 0\.0\.0\.0/,
  );
  const allowed = loadKeys(
    resolveSettings(["--address", "0.0.0.0", "--allow-demo-key"], noEnv),
    noEnv,
  );
  assert.equal(allowed?.kind, "demo");
  assert.throws(
    () => loadKeys(resolveSettings(["--psk-file", "/nonexistent.psk"], noEnv), noEnv),
    /Cannot read --psk-file \/nonexistent\.psk/,
  );
  const bad = tempFile("bad.psk", "alice:00112\n");
  assert.throws(
    () => loadKeys(resolveSettings(["--psk-file", bad], noEnv), noEnv),
    /Cannot parse --psk-file .*bad\.psk line 1 key/,
  );
});

Deno.test("admission limits and the crypto provider are settings too", () => {
  const d = resolveSettings([], noEnv);
  assert.equal(d.maxHalfOpen, 1_000);
  assert.equal(d.handshakeRate, 50);
  assert.equal(d.handshakeBurst, 100);
  assert.equal(d.maxHandshakeMessage, 16_384);
  assert.equal(d.maxReassemblyPerHandshake, 65_536);
  assert.equal(d.maxReassemblyTotal, 8 << 20);
  assert.equal(d.maxReassemblyPerSource, 256 << 10);
  assert.equal(d.refusalLogIntervalMs, 10_000);
  assert.equal(d.crypto, "node");
  const s = resolveSettings(
    ["--handshake-rate", "0", "--crypto", "noble", "--refusal-log-interval", "500ms"],
    envOf({ DTLS_SERVER_MAX_HALF_OPEN: "5" }),
  );
  assert.equal(s.handshakeRate, 0);
  assert.equal(s.crypto, "noble");
  assert.equal(s.refusalLogIntervalMs, 500);
  assert.equal(s.maxHalfOpen, 5);
  refuses(["--crypto", "openssl"], {}, /--crypto "openssl".*node, noble/);
  refuses(["--max-handshake-message", "10"], {}, /--max-handshake-message "10"/);
});

Deno.test("openKeyFileMode: the mode of a key file open to group or others", {
  ignore: Deno.build.os === "windows",
}, () => {
  const file = tempFile("keys.psk", "alice:00\n");
  for (
    const [mode, open] of [[0o600, undefined], [0o400, undefined], [0o644, 0o644], [0o604, 0o604], [
      0o620,
      0o620,
    ], [0o601, 0o601]] as const
  ) {
    Deno.chmodSync(file, mode);
    assert.equal(openKeyFileMode(file), open, mode.toString(8));
  }
  assert.equal(openKeyFileMode("/nonexistent/keys.psk"), undefined);
});

Deno.test("--help: every description starts in one column, after every flag, and enums list their choices", () => {
  const lines = usage().split("\n").filter((l) => l.startsWith("  --"));
  const column = (line: string) => line.search(/(?<=\S {2,})\S/);
  const first = column(lines[0]!);
  for (const line of lines) {
    assert.equal(column(line), first, line);
    assert.ok(/^ {2}--\S+( \S+)? {2,}\S/.test(line), `two spaces between flag and text: ${line}`);
  }
  assert.ok(lines.some((l) => l.startsWith("  --log-level debug|info|warning|error ")));
  assert.ok(lines.some((l) => l.startsWith("  --log-format json|pretty ")));
  assert.ok(!lines.some((l) => l.includes("ENUM")));
});
