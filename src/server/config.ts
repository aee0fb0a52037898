/**
 * Server settings from flags, environment variables and an optional config
 * file (JSON or TOML), in that order of precedence, all described by one
 * table. Every invalid value is refused with one message naming the setting
 * and where it came from; nothing starts half-configured.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parse as parseToml } from "smol-toml";
import { isLoopbackIp } from "../codec/ip_address.ts";
import { CONNECTION_DEFAULTS, ENDPOINT_DEFAULTS, MAX_CID_LENGTH } from "../connection/endpoint.ts";
import { SERVER_DEFAULTS } from "./dtls_server.ts";

/** A configuration error: the message names the setting and its source. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

type Kind = "string" | "int" | "bool" | "duration" | "enum" | "hostport";

interface Spec {
  /** Flag name without dashes; also the config-file key. */
  readonly name: string;
  readonly kind: Kind;
  readonly help: string;
  readonly default?: string | number | boolean;
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
}

/** A duration in ms as a setting takes it: "30s", "10m". */
function durationText(ms: number): string {
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1_000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Every server setting. The environment variable is DTLS_SERVER_ + the name in upper snake case. */
export const SETTINGS: readonly Spec[] = [
  {
    name: "config",
    kind: "string",
    help: "config file (.json or .toml) with any of these settings",
  },
  {
    name: "address",
    kind: "string",
    default: SERVER_DEFAULTS.address,
    help: "address to bind (IPv6 as ::1)",
  },
  {
    name: "port",
    kind: "int",
    default: SERVER_DEFAULTS.port,
    min: 0,
    max: 65535,
    help: "UDP port (0: any free port)",
  },
  { name: "psk-file", kind: "string", help: "keys in psktool format (identity:hexkey per line)" },
  {
    name: "cert",
    kind: "string",
    help: "PEM certificate chain, leaf first, for the ECDHE_ECDSA / ECDHE_RSA suites",
  },
  { name: "key", kind: "string", help: "PEM private key of --cert (PKCS#8, SEC1 or PKCS#1)" },
  {
    name: "client-ca",
    kind: "string",
    help: "PEM CA bundle: ask certificate-suite clients for a certificate that chains to it",
  },
  {
    name: "client-keys",
    kind: "string",
    help: "PEM public keys: clients may authenticate with one of them (raw public keys, RFC 7250)",
  },
  {
    name: "client-auth",
    kind: "enum",
    default: "require",
    choices: ["require", "optional"],
    help:
      "with --client-ca/--client-keys: refuse clients without a certificate, or serve them anonymously",
  },
  {
    name: "keylog",
    kind: "string",
    help: "append each session's secrets to FILE (NSS key log, for Wireshark): debugging only",
  },
  {
    name: "ticket-key-file",
    kind: "string",
    help: "session ticket keys, one per line as hex (openssl rand -hex 32), the first sealing: " +
      "instances sharing it resume each other's tickets (default: a key made at start)",
  },
  {
    name: "tickets",
    kind: "bool",
    default: SERVER_DEFAULTS.tickets,
    help: "issue and resume session tickets (RFC 5077); --no-tickets turns them off",
  },
  {
    name: "session-lifetime",
    kind: "duration",
    default: durationText(SERVER_DEFAULTS.sessionLifetimeMs),
    min: 0,
    help: "how long a session may be resumed after its full handshake (0: no resumption)",
  },
  {
    name: "session-cache-size",
    kind: "int",
    default: SERVER_DEFAULTS.sessionCacheSize,
    min: 0,
    max: 10_000_000,
    help: "sessions kept for resumption by session ID (0: none)",
  },
  {
    name: "cid-length",
    kind: "int",
    default: ENDPOINT_DEFAULTS.cidLength,
    min: 0,
    max: MAX_CID_LENGTH,
    help: "bytes of the Connection ID (RFC 9146) given to clients that offer it, so that they " +
      "keep their connection when their address changes (0: none)",
  },
  {
    name: "versions",
    kind: "enum",
    default: "1.2,1.3",
    choices: ["1.2,1.3", "1.3,1.2", "1.2", "1.3"],
    help: "DTLS versions spoken: a client that offers 1.3 (with a PSK) gets it",
  },
  {
    name: "identity-hint",
    kind: "string",
    default: SERVER_DEFAULTS.identityHint,
    help: "PSK identity hint",
  },
  {
    name: "allow-demo-key",
    kind: "bool",
    default: false,
    help: "allow the demo key on a non-loopback address",
  },
  {
    name: "mtu",
    kind: "int",
    default: CONNECTION_DEFAULTS.mtu,
    min: 256,
    max: 65507,
    help: "largest datagram sent",
  },
  {
    name: "log-level",
    kind: "enum",
    default: "info",
    choices: ["debug", "info", "warning", "error"],
    help: "least severe level logged",
  },
  {
    name: "log-format",
    kind: "enum",
    default: "json",
    choices: ["json", "pretty"],
    help: "json lines, or coloured text for a terminal",
  },
  {
    name: "log-plaintext",
    kind: "bool",
    help: "log decrypted payloads (default: only with the demo key on loopback)",
  },
  {
    name: "metrics",
    kind: "hostport",
    help: "serve Prometheus metrics and /healthz on ADDRESS:PORT",
  },
  {
    name: "max-connections",
    kind: "int",
    default: ENDPOINT_DEFAULTS.maxConnections,
    min: 1,
    max: 10_000_000,
    help: "most connections held at once",
  },
  {
    name: "handshake-timeout",
    kind: "duration",
    default: durationText(CONNECTION_DEFAULTS.handshakeTimeoutMs),
    min: 1_000,
    help: "a handshake not done by then is abandoned",
  },
  {
    name: "idle-timeout",
    kind: "duration",
    default: durationText(ENDPOINT_DEFAULTS.idleTimeoutMs),
    min: 1_000,
    help: "a silent connection is closed after this",
  },
  {
    name: "max-half-open",
    kind: "int",
    default: ENDPOINT_DEFAULTS.maxHalfOpen,
    min: 1,
    max: 10_000_000,
    help: "most handshakes past the cookie but not done",
  },
  {
    name: "handshake-rate",
    kind: "int",
    default: ENDPOINT_DEFAULTS.handshakeRate,
    min: 0,
    max: 1_000_000,
    help: "handshakes per second per source address (0: no limit)",
  },
  {
    name: "handshake-burst",
    kind: "int",
    default: ENDPOINT_DEFAULTS.handshakeBurst,
    min: 1,
    max: 1_000_000,
    help: "handshakes a quiet source address may start at once",
  },
  {
    name: "max-handshake-message",
    kind: "int",
    default: CONNECTION_DEFAULTS.maxHandshakeMessage,
    min: 1_024,
    max: 16_777_215,
    help: "largest handshake message accepted, bytes",
  },
  {
    name: "max-reassembly-per-handshake",
    kind: "int",
    default: CONNECTION_DEFAULTS.maxReassemblyPerHandshake,
    min: 1_024,
    max: 1 << 30,
    help: "handshake buffers (reassembly, early records) per connection, bytes",
  },
  {
    name: "max-reassembly-total",
    kind: "int",
    default: ENDPOINT_DEFAULTS.maxReassemblyTotal,
    min: 1_024,
    max: 1 << 30,
    help: "handshake buffers (reassembly, early records) of all connections, bytes",
  },
  {
    name: "max-reassembly-per-source",
    kind: "int",
    default: ENDPOINT_DEFAULTS.maxReassemblyPerSource,
    min: 1_024,
    max: 1 << 30,
    help: "handshake buffers of the connections of one address (IPv6: one /64), bytes",
  },
  {
    name: "refusal-log-interval",
    kind: "duration",
    default: durationText(SERVER_DEFAULTS.refusalLogIntervalMs),
    min: 100,
    help: "refusals are logged once per reason per interval",
  },
  {
    name: "crypto",
    kind: "enum",
    default: "node",
    choices: ["node", "noble"],
    help: "crypto provider: the runtime's native crypto, or portable @noble",
  },
  {
    name: "io",
    kind: "enum",
    default: SERVER_DEFAULTS.io,
    choices: ["deno", "libc"],
    help: "UDP socket: Deno's, or Linux libc recvmmsg/sendmmsg (needs --allow-ffi)",
  },
  {
    name: "receive-buffer",
    kind: "int",
    min: 4_096,
    max: 1 << 30,
    help: "socket receive buffer to ask the kernel for, bytes (--io libc only)",
  },
];

/**
 * The parsed settings, each named as its flag in camel case (a duration
 * with `Ms`: it is held in milliseconds); the library's options and the
 * engine's configuration use the same names.
 */
export interface ServerSettings {
  readonly config: string | undefined;
  readonly address: string;
  readonly port: number;
  readonly pskFile: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly keylog: string | undefined;
  readonly clientCa: string | undefined;
  readonly clientKeys: string | undefined;
  readonly clientAuth: "require" | "optional";
  readonly ticketKeyFile: string | undefined;
  readonly tickets: boolean;
  readonly sessionLifetimeMs: number;
  readonly sessionCacheSize: number;
  readonly cidLength: number;
  readonly versions: "1.2,1.3" | "1.3,1.2" | "1.2" | "1.3";
  readonly identityHint: string;
  readonly allowDemoKey: boolean;
  readonly mtu: number;
  readonly logLevel: "debug" | "info" | "warning" | "error";
  readonly logFormat: "json" | "pretty";
  readonly logPlaintext: boolean | undefined;
  readonly metrics: { hostname: string; port: number } | undefined;
  readonly maxConnections: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxHalfOpen: number;
  readonly handshakeRate: number;
  readonly handshakeBurst: number;
  readonly maxHandshakeMessage: number;
  readonly maxReassemblyPerHandshake: number;
  readonly maxReassemblyTotal: number;
  readonly maxReassemblyPerSource: number;
  readonly refusalLogIntervalMs: number;
  readonly crypto: "node" | "noble";
  readonly io: "deno" | "libc";
  readonly receiveBuffer: number | undefined;
}

/** What a flag takes, as `--help` shows it: the choices of an enum, the kind of anything else. */
function argumentOf(spec: Spec): string {
  if (spec.kind === "bool") return "";
  if (spec.kind === "hostport") return " ADDR:PORT";
  if (spec.kind === "enum" && spec.choices !== undefined) return ` ${spec.choices.join("|")}`;
  return ` ${spec.kind.toUpperCase()}`;
}

/** The environment variable of a setting. */
export function envName(name: string): string {
  return `DTLS_SERVER_${name.toUpperCase().replaceAll("-", "_")}`;
}

/** The field of {@link ServerSettings} a setting fills: its flag in camel case, `Ms` for a duration. */
function fieldName(spec: Spec): string {
  const camel = spec.name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  return spec.kind === "duration" ? `${camel}Ms` : camel;
}

/** Parses "30s", "500ms", "10m", "1h" or a bare number of seconds into ms. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  return Math.round(Number(m[1]) * unit);
}

function convert(spec: Spec, raw: unknown, source: string): unknown {
  const where = source === "default" ? "" : ` (from ${source})`;
  const fail = (expected: string): never => {
    throw new ConfigError(
      `Cannot use --${spec.name} ${JSON.stringify(raw)}${where}: expected ${expected}`,
    );
  };
  switch (spec.kind) {
    case "string":
      if (typeof raw !== "string" || raw === "") fail("a non-empty string");
      return raw;
    case "bool":
      if (typeof raw === "boolean") return raw;
      if (raw === "true" || raw === "1" || raw === "yes") return true;
      if (raw === "false" || raw === "0" || raw === "no") return false;
      return fail("true or false");
    case "int": {
      const n = typeof raw === "number"
        ? raw
        : typeof raw === "string" && /^-?\d+$/.test(raw)
        ? Number(raw)
        : NaN;
      if (!Number.isInteger(n) || n < (spec.min ?? -Infinity) || n > (spec.max ?? Infinity)) {
        fail(`an integer from ${spec.min} to ${spec.max}`);
      }
      return n;
    }
    case "duration": {
      const ms = typeof raw === "number"
        ? raw * 1000
        : typeof raw === "string"
        ? parseDuration(raw)
        : undefined;
      if (ms === undefined || !Number.isFinite(ms) || ms < (spec.min ?? 0)) {
        fail(`a duration such as 30s, 500ms or 10m, at least ${(spec.min ?? 0) / 1000}s`);
      }
      return ms;
    }
    case "enum":
      if (typeof raw !== "string" || !spec.choices!.includes(raw)) fail(spec.choices!.join(", "));
      return raw;
    case "hostport": {
      if (typeof raw !== "string") return fail("ADDRESS:PORT");
      const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(raw);
      const port = m ? Number(m[3]) : NaN;
      if (!m || port > 65535) return fail("ADDRESS:PORT, e.g. 127.0.0.1:9464 or [::1]:9464");
      return { hostname: m[1] ?? m[2]!, port };
    }
  }
}

/** Reads a config file into raw values; unknown keys are an error. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw new ConfigError(
      `Cannot read --config ${path}: ${error instanceof Error ? error.message : error}`,
    );
  }
  let data: unknown;
  try {
    data = path.endsWith(".toml") ? parseToml(text) : JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `Cannot parse --config ${path}: ${error instanceof Error ? error.message : error}`,
    );
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError(`Cannot parse --config ${path}: expected a table of settings`);
  }
  const known = new Set(SETTINGS.map((s) => s.name));
  for (const key of Object.keys(data)) {
    if (!known.has(key) || key === "config") {
      throw new ConfigError(`Cannot use --config ${path}: unknown setting "${key}"`);
    }
  }
  return data as Record<string, unknown>;
}

/**
 * Resolves every setting: flag, then environment, then config file, then
 * default. Throws {@link ConfigError} for the first invalid one.
 */
export function resolveSettings(
  args: readonly string[],
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): ServerSettings {
  const options: Record<string, { type: "string" | "boolean" }> = {};
  for (const spec of SETTINGS) {
    options[spec.name] = { type: spec.kind === "bool" ? "boolean" : "string" };
  }
  let flags: Record<string, unknown>;
  try {
    // allowNegative: every boolean also takes --no-<name> (--no-tickets).
    flags = parseArgs(
      {
        args: [...args],
        options,
        strict: true,
        allowPositionals: false,
        allowNegative: true,
      } as Parameters<typeof parseArgs>[0],
    ).values;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`Cannot parse the command line: ${message.split("\n")[0]}`);
  }
  const configSpec = SETTINGS[0]!;
  const configPath = (flags.config as string | undefined) ?? env(envName("config"));
  const file = configPath === undefined
    ? {}
    : readConfigFile(String(convert(configSpec, configPath, "--config")));

  const out: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    const fromFlag = flags[spec.name];
    const fromEnv = env(envName(spec.name));
    let value: unknown;
    if (fromFlag !== undefined) value = convert(spec, fromFlag, `--${spec.name}`);
    else if (fromEnv !== undefined) value = convert(spec, fromEnv, envName(spec.name));
    else if (spec.name in file) value = convert(spec, file[spec.name], `config file ${configPath}`);
    else value = spec.default === undefined ? undefined : convert(spec, spec.default, "default");
    out[fieldName(spec)] = value;
  }
  if ((out.cert === undefined) !== (out.key === undefined)) {
    throw new ConfigError(
      out.cert === undefined
        ? "Cannot use --key without --cert: give the certificate it belongs to"
        : "Cannot use --cert without --key: give its private key",
    );
  }
  return out as unknown as ServerSettings;
}

/** True for addresses only this machine can reach (127.0.0.0/8, `::1`, `localhost`). */
export function isLoopback(address: string): boolean {
  return isLoopbackIp(address);
}

/** The usage text, generated from the table. */
export function usage(): string {
  const lines = [
    "Usage: dtls-server [options]          run the DTLS server",
    "       dtls-server client [options]   run a DTLS client (see: dtls-server client --help)",
    "       dtls-server health URL         exit 0 if URL (e.g. the /healthz endpoint) answers 200",
    "",
    "Options (each also an environment variable, and a key of the --config file):",
  ];
  const flags = SETTINGS.map((spec) => `  --${spec.name}${argumentOf(spec)}`);
  // One column for every description: two spaces after the longest flag.
  const width = Math.max(...flags.map((f) => f.length)) + 2;
  SETTINGS.forEach((spec, i) => {
    const def = spec.default === undefined ? "" : ` (default ${spec.default})`;
    lines.push(`${flags[i]!.padEnd(width)}${spec.help}${def}  [${envName(spec.name)}]`);
  });
  lines.push(
    `${"  --help".padEnd(width)}this text`,
    `${"  --version".padEnd(width)}print the version`,
    "",
    "Keys may also come from DTLS_SERVER_PSK_KEYS (psktool lines, newline- or comma-separated).",
    "SIGHUP reloads the keys; SIGINT / SIGTERM send close_notify to every peer and exit.",
  );
  return lines.join("\n");
}
