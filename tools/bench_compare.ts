/**
 * Runs the same load (tools/load.ts) against several servers on this
 * machine in one go, alternating between them round after round, and prints
 * the medians and the ratios. Figures on a shared 2-core machine vary run
 * to run, so only figures from the same run are compared.
 *
 *     deno task bench:compare [--duration 5] [--rounds 2] [--only echo64,echo64-chacha,handshake]
 *       [--io libc] [--load pion|ours] [--pin 0,1|off] [--baseline DIR] [--info]
 *
 * Per core: every server runs pinned to one CPU and the load generator to
 * another (`--pin SERVER,LOAD`, default `0,1`, with `taskset`), so that a
 * single-threaded server and a multi-threaded one (pion's Go runtime sees
 * one CPU) are compared on the same footing and the figures do not measure
 * the scheduler.
 *
 * The load generator (`--load`): pion's (tests/e2e/pion, `-mode load` and
 * `-mode handshakes`), the default when it can be built, so that no server
 * is measured by its own side's client; or ours (tools/load.ts). pion has no
 * PSK ChaCha20-Poly1305 suite, so those rows, and the plain UDP ceiling,
 * always use ours.
 *
 * Servers (each started and stopped here, on loopback):
 * - `udp`: tools/udp_echo.ts, a plain UDP echo in Deno: the ceiling;
 * - `ours`: tools/bench_server.ts with the node:crypto provider (default);
 * - `ours-noble`: the same with the portable @noble provider (`--noble`);
 * - `ours-info`: ours logging every datagram at `--log-level info`, as
 *   `deno task start` does, to stdout (`--info`; echo at 64 B only);
 * - `before`: tools/bench_server.ts of another checkout (`--baseline DIR`,
 *   e.g. a git worktree of an older commit), for before/after figures;
 * - `pion`: the interop tests' pion/dtls v2 peer (tests/e2e/pion) as an echo
 *   server, when `go` and the Debian package golang-github-pion-dtls.v2-dev
 *   are installed;
 * - `openssl`: `openssl s_server`, which serves one client at a time and
 *   never answers by itself, so only the one-client handshake scenario.
 *
 * `--io libc` puts the UDP echo, our server and the load generator on the
 * libc socket backend (src/net/libc/mod.ts) instead of Deno's socket;
 * the other servers keep their own.
 *
 * Prints a Markdown table, then the whole result as JSON on the last line.
 * Needs `-A`: reading other processes' CPU time in /proc takes full access.
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { LoadReport } from "./load.ts";
import { buildPionPeer } from "../tests/e2e/pion/build.ts";
import { shellSucceeds } from "../tests/helpers/build_peer.ts";

/** What the pion server accepts: its PSK suites that the load tool can ask for. */
const PION_SUITES = [
  "TLS_PSK_WITH_AES_128_GCM_SHA256",
  "TLS_PSK_WITH_AES_128_CCM",
  "TLS_PSK_WITH_AES_128_CCM_8",
  "TLS_PSK_WITH_AES_128_CBC_SHA256",
].join(",");

/** The suite of the ChaCha20-Poly1305 echo rows. */
const CHACHA = "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256";

const here = new URL(".", import.meta.url).pathname;
const deno = Deno.execPath();

interface Scenario {
  readonly name: string;
  readonly title: string;
  /** Our load generator's arguments. */
  readonly args: string[];
  /** pion's, where it can run this scenario. */
  readonly pion?: {
    readonly mode: "load" | "handshakes";
    readonly clients: string;
    readonly size: string;
  };
  readonly servers: readonly string[];
  readonly metric: "messagesPerSec" | "handshakesPerSec";
}

interface Server {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  readonly port: number;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    rounds: { type: "string", default: "2" },
    clients: { type: "string", default: "50" },
    only: { type: "string" },
    noble: { type: "boolean", default: false },
    io: { type: "string", default: "deno" },
    load: { type: "string" },
    pin: { type: "string", default: "0,1" },
    baseline: { type: "string" },
    info: { type: "boolean", default: false },
  },
});
if (values.io !== "deno" && values.io !== "libc") {
  throw new Error(`Cannot use --io ${values.io}: expected deno or libc`);
}
const io = ["--io", values.io];
if (values.load !== undefined && values.load !== "pion" && values.load !== "ours") {
  throw new Error(`Cannot use --load ${values.load}: expected pion or ours`);
}

/** The CPUs the server and the load generator are pinned to, or undefined. */
const pins = values.pin === "off" ? undefined : values.pin!.split(",").map(Number);
if (pins !== undefined && (pins.length !== 2 || pins.some((n) => !Number.isInteger(n)))) {
  throw new Error(`Cannot use --pin ${values.pin}: expected SERVER_CPU,LOAD_CPU or off`);
}
if (pins !== undefined && !shellSucceeds("command -v taskset")) {
  throw new Error("Cannot pin: taskset not installed (Debian: util-linux), or pass --pin off");
}

/** `command args`, pinned to `cpu` when pinning. */
function pinned(cpu: 0 | 1, command: string, args: string[]): [string, string[]] {
  return pins === undefined
    ? [command, args]
    : ["taskset", ["-c", String(pins[cpu]), command, ...args]];
}

/** Reads the first line of a child's stdout: `{"port":N}`. */
async function readPort(child: Deno.ChildProcess, name: string): Promise<number> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = Date.now() + 30_000;
  while (!text.includes("\n")) {
    if (Date.now() > deadline) throw new Error(`Cannot start ${name}: no port announced`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`Cannot start ${name}: exited before announcing its port`);
    text += value;
  }
  // Keep draining so the child never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })().catch(() => {});
  return JSON.parse(text.split("\n")[0]!).port;
}

/** Starts a server, pinned to the server's CPU. */
function spawn(command: string, args: string[], stdin: "null" | "piped" = "null") {
  const [pinnedCommand, pinnedArgs] = pinned(0, command, args);
  return new Deno.Command(pinnedCommand, {
    args: pinnedArgs,
    stdin,
    stdout: "piped",
    stderr: "null",
  })
    .spawn();
}

/** A free UDP port on loopback (bound and released). */
function freePort(): number {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (s.addr as Deno.NetAddr).port;
  s.close();
  return port;
}

async function start(name: string, pion: string | undefined): Promise<Server> {
  let process: Deno.ChildProcess;
  let port: number;
  switch (name) {
    case "udp":
      process = spawn(deno, ["run", "-A", "--unstable-net", `${here}udp_echo.ts`, ...io]);
      port = await readPort(process, name);
      break;
    case "ours":
    case "ours-noble":
    case "ours-info":
    case "before":
      process = spawn(deno, [
        "run",
        "-A",
        "--unstable-net",
        name === "before" ? `${values.baseline}/tools/bench_server.ts` : `${here}bench_server.ts`,
        "--crypto",
        name === "ours-noble" ? "noble" : "node",
        ...(name === "ours-info" ? ["--log-level", "info"] : []),
        ...io,
      ]);
      port = await readPort(process, name);
      break;
    case "pion":
      process = spawn(pion!, ["-mode", "server", "-port", "0", "-suite", PION_SUITES]);
      port = await readPort(process, name);
      break;
    case "openssl": {
      port = freePort();
      // stdin stays open and silent: s_server relays stdin to the client.
      process = spawn("openssl", [
        "s_server",
        "-dtls1_2",
        "-nocert",
        "-psk",
        "1a2b3c4d5e6f",
        "-psk_hint",
        "Qt DTLS example server",
        "-cipher",
        "PSK-AES128-GCM-SHA256",
        "-accept",
        `127.0.0.1:${port}`,
        "-quiet",
      ], "piped");
      const reader = process.stdout.getReader();
      (async () => {
        while (!(await reader.read()).done) { /* discard */ }
      })().catch(() => {});
      await new Promise((r) => setTimeout(r, 500));
      break;
    }
    default:
      throw new Error(`Cannot start ${name}: unknown server`);
  }
  return { name, process, port };
}

async function stop(server: Server): Promise<void> {
  try {
    server.process.kill("SIGTERM");
  } catch {
    // already gone
  }
  const timer = setTimeout(() => {
    try {
      server.process.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, 3_000);
  await server.process.status;
  clearTimeout(timer);
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

interface Measurement {
  readonly report: Report;
  /** Whose load generator measured it. */
  readonly generator: "pion" | "ours";
  /** Server CPU use during the run, % of one core. */
  readonly serverCpu: number;
  /** Load generator CPU use, % of one core. */
  readonly loadCpu: number;
}

/** Whether pion's load generator measures `scenario` against `server`. */
function byPion(server: Server, scenario: Scenario): boolean {
  return pionLoad !== undefined && server.name !== "udp" && scenario.pion !== undefined;
}

async function measure(server: Server, scenario: Scenario): Promise<Measurement> {
  const args = byPion(server, scenario) ? pionArgs(server, scenario) : oursArgs(server, scenario);
  const [command, commandArgs] = pinned(1, args[0]!, args.slice(1));
  const load = new Deno.Command(command, { args: commandArgs, stdout: "piped", stderr: "piped" })
    .spawn();
  const serverCpu0 = cpuSeconds(server.process.pid);
  const loadCpu0 = cpuSeconds(load.pid);
  const t0 = performance.now();
  // Sample CPU just before the load ends (the process is gone after).
  const total = (Number(values.duration) + Number(values.warmup)) * 1000;
  let serverCpu1 = NaN, loadCpu1 = NaN, t1 = NaN;
  const sampler = setTimeout(() => {
    serverCpu1 = cpuSeconds(server.process.pid);
    loadCpu1 = cpuSeconds(load.pid);
    t1 = performance.now();
  }, total - 200);
  const out = await load.output();
  clearTimeout(sampler);
  if (!out.success) {
    throw new Error(`Cannot run load: ${new TextDecoder().decode(out.stderr).slice(0, 500)}`);
  }
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  const report = normalise(JSON.parse(lines[lines.length - 1]!));
  const seconds = (t1 - t0) / 1000;
  return {
    report,
    serverCpu: Math.round(((serverCpu1 - serverCpu0) / seconds) * 100),
    loadCpu: Math.round(((loadCpu1 - loadCpu0) / seconds) * 100),
    generator: byPion(server, scenario) ? "pion" : "ours",
  };
}

/** What either generator reports, in the fields compared here. */
interface Report {
  readonly messagesPerSec: number;
  readonly handshakesPerSec: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  readonly errorsTotal: number;
  readonly reasons?: Record<string, number>;
}

/** pion's report lacks what its mode does not measure: those fields are NaN. */
function normalise(raw: Partial<LoadReport>): Report {
  return {
    messagesPerSec: raw.messagesPerSec ?? NaN,
    handshakesPerSec: raw.handshakesPerSec ?? NaN,
    latencyMs: { p50: raw.latencyMs?.p50 ?? NaN, p99: raw.latencyMs?.p99 ?? NaN },
    errorsTotal: raw.errorsTotal ?? 0,
    ...(raw.reasons === undefined ? {} : { reasons: raw.reasons }),
  };
}

/** pion's load generator for `scenario`. */
function pionArgs(server: Server, scenario: Scenario): string[] {
  return [
    pionLoad!,
    "-mode",
    scenario.pion!.mode,
    "-port",
    String(server.port),
    "-clients",
    scenario.pion!.clients,
    "-size",
    scenario.pion!.size,
    "-duration",
    values.duration!,
    "-warmup",
    values.warmup!,
  ];
}

/** Our load generator for `scenario`. */
function oursArgs(server: Server, scenario: Scenario): string[] {
  return [
    deno,
    "run",
    "-A",
    "--unstable-net",
    `${here}load.ts`,
    "--port",
    String(server.port),
    "--duration",
    values.duration!,
    "--warmup",
    values.warmup!,
    ...io,
    // The plain UDP server gets the same lock-step echo without DTLS.
    ...scenario.args.map((a) => server.name === "udp" && a === "echo" ? "udp" : a),
  ];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** pion's load generator, when it measures (see `--load`). */
let pionLoad: string | undefined;

async function main(): Promise<void> {
  const skipped: Record<string, string> = {};
  let pion: string | undefined;
  try {
    pion = buildPionPeer().path();
  } catch (error) {
    skipped.pion = (error as Error).message;
  }
  if (values.load === "pion" && pion === undefined) {
    throw new Error(`Cannot use --load pion: ${skipped.pion}`);
  }
  if (values.load !== "ours") pionLoad = pion;
  if (
    values.baseline !== undefined &&
    !shellSucceeds(`test -f ${values.baseline}/tools/bench_server.ts`)
  ) {
    throw new Error(`Cannot use --baseline ${values.baseline}: no tools/bench_server.ts there`);
  }
  if (!shellSucceeds("command -v openssl")) skipped.openssl = "openssl not installed";
  const available = (names: string[]) => names.filter((n) => skipped[n] === undefined);
  const ours = [
    ...(values.baseline === undefined ? [] : ["before"]),
    "ours",
    ...(values.noble ? ["ours-noble"] : []),
  ];
  const clients = values.clients!;

  const all: Scenario[] = [
    {
      name: "echo64",
      title: `echo 64 B, ${clients} clients, msg/s`,
      args: ["--mode", "echo", "--size", "64", "--clients", clients],
      pion: { mode: "load", clients, size: "64" },
      servers: available(["udp", ...ours, ...(values.info ? ["ours-info"] : []), "pion"]),
      metric: "messagesPerSec",
    },
    {
      name: "echo1200",
      title: `echo 1200 B, ${clients} clients, msg/s`,
      args: ["--mode", "echo", "--size", "1200", "--clients", clients],
      pion: { mode: "load", clients, size: "1200" },
      servers: available(["udp", ...ours, "pion"]),
      metric: "messagesPerSec",
    },
    // pion has no PSK ChaCha20-Poly1305 suite, so these compare with the ceiling only.
    {
      name: "echo64-chacha",
      title: `echo 64 B, ChaCha20-Poly1305, ${clients} clients, msg/s`,
      args: ["--mode", "echo", "--size", "64", "--clients", clients, "--suite", CHACHA],
      servers: available(["udp", ...ours]),
      metric: "messagesPerSec",
    },
    {
      name: "echo1200-chacha",
      title: `echo 1200 B, ChaCha20-Poly1305, ${clients} clients, msg/s`,
      args: ["--mode", "echo", "--size", "1200", "--clients", clients, "--suite", CHACHA],
      servers: available(["udp", ...ours]),
      metric: "messagesPerSec",
    },
    {
      name: "handshake",
      title: `full PSK handshakes with cookie, ${clients} clients, /s`,
      args: ["--mode", "handshake", "--clients", clients],
      pion: { mode: "handshakes", clients, size: "0" },
      servers: available([...ours, "pion"]),
      metric: "handshakesPerSec",
    },
    {
      name: "handshake1",
      title: "full PSK handshakes with cookie, 1 client, /s",
      args: ["--mode", "handshake", "--clients", "1", "--timeout", "500"],
      pion: { mode: "handshakes", clients: "1", size: "0" },
      servers: available([...ours, "pion", "openssl"]),
      metric: "handshakesPerSec",
    },
  ];
  const only = values.only?.split(",");
  const scenarios = only ? all.filter((s) => only.includes(s.name)) : all;
  const rounds = Number(values.rounds);
  const results: Record<string, Record<string, Measurement[]>> = {};

  for (const scenario of scenarios) {
    results[scenario.name] = {};
    for (let round = 0; round < rounds; round++) {
      // Alternate the order each round so drift favours no one.
      const order = round % 2 ? [...scenario.servers].reverse() : scenario.servers;
      for (const name of order) {
        const server = await start(name, pion);
        try {
          const m = await measure(server, scenario);
          (results[scenario.name]![name] ??= []).push(m);
          console.error(
            `${scenario.name} ${name} round ${round + 1} (${m.generator} load): ` +
              `${m.report[scenario.metric]}/s, ` +
              `p50 ${m.report.latencyMs.p50} ms, p99 ${m.report.latencyMs.p99} ms, ` +
              `errors ${m.report.errorsTotal} ${JSON.stringify(m.report.reasons ?? {})}, ` +
              `cpu server ${m.serverCpu}% load ${m.loadCpu}%`,
          );
        } finally {
          await stop(server);
        }
      }
    }
  }

  const summary: Record<string, Record<string, unknown>> = {};
  const lines = [
    `| scenario | server | load by | rate (median of ${rounds}) | p50 ms | p99 ms | p99/p50 | errors | server CPU | load CPU | vs udp | ours vs it |`,
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const scenario of scenarios) {
    const byServer = results[scenario.name]!;
    const rate = (name: string) =>
      byServer[name] ? median(byServer[name]!.map((m) => m.report[scenario.metric])) : NaN;
    summary[scenario.name] = {};
    for (const name of scenario.servers) {
      const ms = byServer[name];
      if (!ms) continue;
      const r = rate(name);
      const row = {
        generator: ms[0]!.generator,
        rate: Math.round(r),
        p50: Math.round(median(ms.map((m) => m.report.latencyMs.p50)) * 100) / 100,
        p99: Math.round(median(ms.map((m) => m.report.latencyMs.p99)) * 100) / 100,
        tail: Math.round(
          median(ms.map((m) => m.report.latencyMs.p99 / m.report.latencyMs.p50)) * 100,
        ) / 100,
        errors: ms.reduce((a, m) => a + m.report.errorsTotal, 0),
        serverCpu: median(ms.map((m) => m.serverCpu)),
        loadCpu: median(ms.map((m) => m.loadCpu)),
        vsUdp: byServer.udp ? Math.round((r / rate("udp")) * 100) / 100 : null,
        oursVsIt: name === "ours" ? null : Math.round((rate("ours") / r) * 100) / 100,
      };
      summary[scenario.name]![name] = row;
      lines.push(
        `| ${scenario.title} | ${name} | ${row.generator} | ${row.rate} | ${row.p50} | ${row.p99} | ${row.tail} | ${row.errors} | ` +
          `${row.serverCpu}% | ${row.loadCpu}% | ${row.vsUdp ?? ""} | ${row.oursVsIt ?? ""} |`,
      );
    }
  }
  console.log(lines.join("\n"));
  for (const [name, why] of Object.entries(skipped)) console.log(`\n${name} skipped: ${why}`);
  console.log(JSON.stringify({
    duration: Number(values.duration),
    rounds,
    io: values.io,
    pin: values.pin,
    skipped,
    summary,
  }));
}

await main();
