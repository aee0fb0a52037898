import assert from "node:assert/strict";
import { safeText } from "../../src/server/log_text.ts";
/**
 * End-to-end plumbing: the real server (`main.ts`) as a subprocess whose JSON
 * log lines a test can wait for, and real peers (`openssl s_client`,
 * `gnutls-cli`, `tshark`) as subprocesses with bounded lifetimes.
 *
 * Everything here is disposable (`await using`): a failing test still kills
 * its processes and drains their pipes, so Deno.test's op and resource
 * sanitizers stay quiet. Nothing waits on a fixed sleep; every wait is for an
 * observable event, bounded by a timeout.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The repository root: the server runs from here, as `deno task start` does. */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** The Qt example's demo credentials, which the server uses without --psk-file. */
export const DEMO = {
  identity: "Qt DTLS example client",
  keyHex: "1a2b3c4d5e6f",
  hint: "Qt DTLS example server",
} as const;

/** One line of the server's log. */
export interface LogEntry {
  readonly ts: string;
  readonly level: string;
  readonly event: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** How a subprocess ended. */
export interface ExitStatus {
  /** Exit code (128 + signal number when killed by a signal, as a shell reports it). */
  readonly code: number;
  /** The signal that ended it, if any. */
  readonly signal: Deno.Signal | null;
}

/** Races `promise` against a timer of `ms`; the timer never outlives the race. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what())), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a byte stream to its end, calling `onText` with each decoded chunk. */
async function pump(stream: ReadableStream<Uint8Array>, onText: (text: string) => void) {
  const decoder = new TextDecoder();
  for await (const chunk of stream) onText(decoder.decode(chunk, { stream: true }));
  const rest = decoder.decode();
  if (rest !== "") onText(rest);
}

/** A condition some later output may satisfy. */
interface Waiter {
  readonly check: () => boolean;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/**
 * Output-driven waiting shared by the server and the peers: `wait` resolves as
 * soon as `check` holds (re-evaluated on every new chunk of output) and
 * rejects when the process has ended without it holding, or on timeout.
 */
class Watch {
  readonly #waiters = new Set<Waiter>();
  #ended = false;

  /** New output arrived: re-check every waiter. */
  notify(): void {
    for (const w of [...this.#waiters]) {
      if (w.check()) {
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** The output ended (the process exited): nothing more can satisfy a waiter. */
  end(describe: () => string): void {
    this.#ended = true;
    this.notify();
    for (const w of [...this.#waiters]) {
      this.#waiters.delete(w);
      w.reject(new Error(`Process ended before ${describe()}`));
    }
  }

  async wait(check: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
    if (check()) return;
    if (this.#ended) throw new Error(`Process ended before ${describe()}`);
    let waiter!: Waiter;
    const satisfied = new Promise<void>((resolve, reject) => {
      waiter = { check, resolve, reject };
    });
    this.#waiters.add(waiter);
    try {
      await withTimeout(
        satisfied,
        timeoutMs,
        () => `Timed out after ${timeoutMs} ms waiting for ${describe()}`,
      );
    } finally {
      this.#waiters.delete(waiter);
    }
  }
}

function exitStatus(status: Deno.CommandStatus): ExitStatus {
  return { code: status.code, signal: status.signal };
}

function tryKill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // Already exited: nothing to do.
  }
}

/**
 * Waits for `child` to exit within `timeoutMs`; past that, sends `signal`,
 * then SIGKILL after a short grace period. Returns the status and whether
 * the deadline passed.
 */
async function reap(
  child: Deno.ChildProcess,
  timeoutMs: number,
  signal: Deno.Signal = "SIGKILL",
): Promise<{ status: ExitStatus; timedOut: boolean }> {
  try {
    const status = await withTimeout(child.status, timeoutMs, () => "exit");
    return { status: exitStatus(status), timedOut: false };
  } catch {
    tryKill(child, signal);
    try {
      const status = await withTimeout(child.status, 2_000, () => "exit after signal");
      return { status: exitStatus(status), timedOut: true };
    } catch {
      tryKill(child, "SIGKILL");
      return { status: exitStatus(await child.status), timedOut: true };
    }
  }
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** How long to wait for the `listening` line (default 15 s: the first run may compile). */
  readonly startTimeoutMs?: number;
}

/** The server as a subprocess. Create with {@link startServer}; dispose with `await using`. */
export class ServerProcess implements AsyncDisposable {
  /** Every parsed JSON log line, oldest first. */
  readonly logs: LogEntry[] = [];
  /** Stdout lines that were not JSON objects (the log format promises there are none). */
  readonly strayLines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #watch = new Watch();
  readonly #pumps: Promise<void>;
  #stderr = "";
  #partial = "";
  #status: ExitStatus | undefined;
  #port: number | undefined;

  /** @internal Use {@link startServer}. */
  constructor(args: readonly string[]) {
    // The libc socket backend needs FFI; every other run keeps without it.
    const ffi = args[args.indexOf("--io") + 1] === "libc" ? ["--allow-ffi"] : [];
    // --keylog writes a file: the one setting that needs write access (to it alone).
    const keylog = args.indexOf("--keylog");
    const write = keylog >= 0 ? [`--allow-write=${args[keylog + 1]}`] : [];
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-env",
        ...ffi,
        ...write,
        "main.ts",
        ...args,
      ],
      cwd: REPO_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#pumps = Promise.all([
      pump(this.#child.stdout, (text) => this.#onStdout(text)),
      pump(this.#child.stderr, (text) => {
        this.#stderr += text;
      }),
    ]).then(() => {
      if (this.#partial !== "") this.#onLine(this.#partial);
      this.#partial = "";
      this.#watch.end(() => "the awaited log entry");
    });
  }

  /** The UDP port the server bound (from its `listening` line). */
  get port(): number {
    if (this.#port === undefined) throw new Error("Server has not reported its port yet");
    return this.#port;
  }

  /** The process id (to send it signals such as SIGHUP). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Everything the server wrote to stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** How the process ended, once it has. */
  get status(): ExitStatus | undefined {
    return this.#status;
  }

  /**
   * Resolves when the process ends, by itself (a crash) or when stopped: a
   * test that must see the server survive races its waits against this.
   */
  get exited(): Promise<ExitStatus> {
    return this.#child.status.then(exitStatus);
  }

  /** Log entries of one event, in order. */
  events(event: string): LogEntry[] {
    return this.logs.filter((e) => e.event === event);
  }

  /**
   * The first log entry (already logged or still to come) matching
   * `predicate`. Rejects on timeout or when the server exits first, with the
   * recent log in the message.
   */
  async waitFor(
    predicate: (entry: LogEntry) => boolean,
    timeoutMs = 10_000,
    what = "a matching log entry",
  ): Promise<LogEntry> {
    let found: LogEntry | undefined;
    const check = () => (found = this.logs.find(predicate)) !== undefined;
    try {
      await this.#watch.wait(check, timeoutMs, () => what);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${this.describe()}`);
    }
    return found!;
  }

  /** Shorthand: the first entry of `event` whose fields include `fields`. */
  waitForEvent(
    event: string,
    fields: Record<string, unknown> = {},
    timeoutMs = 10_000,
  ): Promise<LogEntry> {
    return this.waitFor(
      (e) => e.event === event && Object.entries(fields).every(([k, v]) => e[k] === v),
      timeoutMs,
      `log event ${event} ${JSON.stringify(fields)}`,
    );
  }

  /**
   * Sends `signal` and waits (bounded) for the exit; returns the exit code.
   * If the server does not exit within `timeoutMs` it is killed and this
   * throws: a server that ignores SIGTERM is a bug.
   */
  async stop(signal: Deno.Signal = "SIGTERM", timeoutMs = 10_000): Promise<number> {
    if (this.#status === undefined) {
      tryKill(this.#child, signal);
      const { status, timedOut } = await reap(this.#child, timeoutMs);
      this.#status = status;
      await this.#pumps;
      if (timedOut) {
        throw new Error(
          `Server did not exit within ${timeoutMs} ms of ${signal}\n${this.describe()}`,
        );
      }
    }
    return this.#status.code;
  }

  /** The tail of the log and stderr, for failure messages. */
  describe(lines = 25): string {
    const log = this.logs.slice(-lines).map((e) => JSON.stringify(e)).join("\n");
    const stray = this.strayLines.length > 0
      ? `\nnon-JSON stdout:\n${this.strayLines.join("\n")}`
      : "";
    const err = this.#stderr.trim() !== "" ? `\nserver stderr:\n${this.#stderr.trim()}` : "";
    return `server log (last ${lines}):\n${log}${stray}${err}`;
  }

  /** Kills the server if still running and drains its pipes. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#status === undefined) {
      tryKill(this.#child, "SIGKILL");
      this.#status = exitStatus(await this.#child.status);
    }
    await this.#pumps;
  }

  /** @internal */
  async waitListening(timeoutMs: number): Promise<void> {
    const entry = await this.waitFor(
      (e) => e.event === "listening",
      timeoutMs,
      "the listening line",
    );
    if (typeof entry.port !== "number") {
      throw new Error(`listening line without a port: ${JSON.stringify(entry)}`);
    }
    this.#port = entry.port;
  }

  #onStdout(text: string): void {
    const lines = (this.#partial + text).split("\n");
    this.#partial = lines.pop()!;
    for (const line of lines) this.#onLine(line);
    this.#watch.notify();
  }

  #onLine(line: string): void {
    if (line.trim() === "") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.strayLines.push(line);
      return;
    }
    if (
      typeof parsed === "object" && parsed !== null &&
      typeof (parsed as LogEntry).event === "string"
    ) {
      this.logs.push(parsed as LogEntry);
    } else {
      this.strayLines.push(line);
    }
  }
}

/**
 * Starts `main.ts --port 0 ...args` and resolves once it logs `listening`.
 * If it never does, the process is killed and the error carries its output.
 */
export async function startServer(
  args: readonly string[] = [],
  options: StartServerOptions = {},
): Promise<ServerProcess> {
  const server = new ServerProcess(["--port", "0", ...args]);
  try {
    await server.waitListening(options.startTimeoutMs ?? 15_000);
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
  return server;
}

/** What a finished peer produced. */
export interface PeerResult extends ExitStatus {
  readonly stdout: string;
  readonly stderr: string;
  /** True if the peer had to be killed at its deadline. */
  readonly timedOut: boolean;
}

/** Options of {@link spawnPeer}. */
export interface PeerOptions {
  /** Extra environment variables. */
  readonly env?: Record<string, string>;
}

/**
 * A peer program (s_client, gnutls-cli, tshark) with stdin kept open until the
 * test closes it: as PEERS.md notes, closing stdin early makes the clients
 * send close_notify and exit before the server's reply arrives.
 */
export class PeerProcess implements AsyncDisposable {
  readonly command: string;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #watch = new Watch();
  readonly #pumps: Promise<void>;
  #stdout = "";
  #stderr = "";
  #stdinClosed = false;
  #status: ExitStatus | undefined;

  /** @internal Use {@link spawnPeer}. */
  constructor(cmd: string, args: readonly string[], options: PeerOptions = {}) {
    this.command = [cmd, ...args].join(" ");
    this.#child = new Deno.Command(cmd, {
      args: [...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      ...(options.env ? { env: options.env } : {}),
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#pumps = Promise.all([
      pump(this.#child.stdout, (text) => {
        this.#stdout += text;
        this.#watch.notify();
      }),
      pump(this.#child.stderr, (text) => {
        this.#stderr += text;
        this.#watch.notify();
      }),
    ]).then(() => this.#watch.end(() => "the awaited output"));
  }

  /** Stdout so far. */
  get stdout(): string {
    return this.#stdout;
  }

  /** Stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Writes to the peer's stdin (ignored once the peer has gone). */
  async write(text: string): Promise<void> {
    if (this.#stdinClosed) throw new Error("Cannot write: stdin is closed");
    try {
      await this.#stdin.write(new TextEncoder().encode(text));
    } catch {
      // The peer exited (broken pipe); its exit status tells the story.
    }
  }

  /** Closes stdin: the clients then send close_notify and exit by themselves. */
  async closeStdin(): Promise<void> {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    try {
      await this.#stdin.close();
    } catch {
      // Broken pipe: the peer has already gone.
    }
  }

  /**
   * Resolves when stdout or stderr matches `pattern`; rejects on timeout or
   * when the peer exits without printing it.
   */
  async waitForOutput(pattern: RegExp | string, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const re = typeof pattern === "string" ? new RegExp(escapeRegExp(pattern)) : pattern;
    let match: RegExpMatchArray | null = null;
    const check = () => (match = this.#stdout.match(re) ?? this.#stderr.match(re)) !== null;
    try {
      await this.#watch.wait(check, timeoutMs, () => `output matching ${re}`);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${this.describe()}`);
    }
    return match!;
  }

  /**
   * Waits (bounded) for the peer to exit by itself; past `timeoutMs` it gets
   * SIGTERM then SIGKILL and the result says `timedOut`.
   */
  async wait(timeoutMs = 10_000): Promise<PeerResult> {
    if (this.#status === undefined) {
      const { status, timedOut } = await reap(this.#child, timeoutMs, "SIGTERM");
      this.#status = status;
      await this.#finish();
      return { ...status, stdout: this.#stdout, stderr: this.#stderr, timedOut };
    }
    return { ...this.#status, stdout: this.#stdout, stderr: this.#stderr, timedOut: false };
  }

  /** The command and its output, for failure messages. */
  describe(): string {
    return `peer: ${this.command}\n--- stdout:\n${this.#stdout}\n--- stderr:\n${this.#stderr}`;
  }

  /**
   * Sends `signal` (SIGINT makes tshark stop capturing and clean up) and
   * waits, bounded, for the exit.
   */
  async stop(signal: Deno.Signal = "SIGTERM", timeoutMs = 5_000): Promise<PeerResult> {
    if (this.#status === undefined) tryKill(this.#child, signal);
    return await this.wait(timeoutMs);
  }

  /**
   * Stops the peer if still running (SIGTERM first, so tshark removes its
   * temporary capture file; SIGKILL if it lingers), closes stdin and drains
   * the pipes.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#status === undefined) {
      tryKill(this.#child, "SIGTERM");
      this.#status = (await reap(this.#child, 2_000)).status;
    }
    await this.#finish();
  }

  async #finish(): Promise<void> {
    if (!this.#stdinClosed) {
      this.#stdinClosed = true;
      // The reader is gone: abort rather than close, which could wait on a full pipe.
      await this.#stdin.abort().catch(() => {});
    }
    await this.#pumps;
  }
}

/** Starts a peer program. Dispose it with `await using` so it never outlives the test. */
export function spawnPeer(
  cmd: string,
  args: readonly string[],
  options: PeerOptions = {},
): PeerProcess {
  return new PeerProcess(cmd, args, options);
}

/** Options of {@link runPeer}. */
export interface RunPeerOptions extends PeerOptions {
  /** Written to stdin at once (each line becomes one datagram for the clients). */
  readonly input?: string;
  /** Keep stdin open until the output matches this (the server's reply), then close it. */
  readonly until?: RegExp | string;
  /** Bound on the whole run (default 10 s). */
  readonly timeoutMs?: number;
}

/** What {@link runPeer} saw. */
export interface RunPeerResult extends PeerResult {
  /** The match of `until`, if it appeared. */
  readonly reply: RegExpMatchArray | undefined;
}

/**
 * Runs a peer to completion: writes `input`, keeps stdin open until `until`
 * appears (or the peer exits, or time runs out), then closes stdin and waits
 * for the exit. Never throws for the peer's own failure; the result says what
 * happened, and the peer is killed at the deadline.
 */
export async function runPeer(
  cmd: string,
  args: readonly string[],
  options: RunPeerOptions = {},
): Promise<RunPeerResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  await using peer = spawnPeer(cmd, args, options.env ? { env: options.env } : {});
  if (options.input !== undefined) await peer.write(options.input);
  let reply: RegExpMatchArray | undefined;
  if (options.until !== undefined) {
    try {
      reply = await peer.waitForOutput(options.until, timeoutMs);
    } catch {
      reply = undefined;
    }
  }
  await peer.closeStdin();
  const result = await peer.wait(Math.max(deadline - Date.now(), 1_000));
  return { ...result, reply };
}

/** True if `binary` is an executable file in a PATH directory. */
export function onPath(binary: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir === "") continue;
    try {
      const info = Deno.statSync(`${dir}/${binary}`);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return true;
    } catch {
      // Not in this directory.
    }
  }
  return false;
}

/**
 * Test options that ignore a test whose peer program is missing, saying why:
 * `Deno.test({ name, ...skipUnless("openssl"), fn })`.
 */
export function skipUnless(...binaries: string[]): { ignore: boolean } {
  const missing = binaries.filter((b) => !onPath(b));
  if (missing.length > 0) console.log(`skip: ${missing.join(", ")} not installed`);
  return { ignore: missing.length > 0 };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * What the server's log must show after a peer's good session: `message`
 * received from `peer` (shown escaped, as safeText writes it), then the
 * peer's close_notify, and no fatal alert sent to anyone.
 */
export async function assertReceivedThenClosed(
  server: ServerProcess,
  peer: unknown,
  message: string,
  context: string,
  timeoutMs = 15_000,
): Promise<void> {
  const datagram = await server.waitForEvent("datagram", { peer }, timeoutMs);
  assert.equal(datagram.plaintext, safeText(message), context);
  const closed = await server.waitForEvent("connection_closed", { peer }, timeoutMs);
  assert.match(String(closed.reason), /^close_notify/, context);
  const fatal = server.events("alert_sent").filter((e) => e.level_alert === "fatal");
  assert.deepEqual(fatal, [], context);
}

export const MAIN_PERMS = ["--allow-net", "--allow-read", "--allow-env"];

/** Runs main.ts to completion (bounded) and returns what it printed. */
export async function runMain(
  args: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...MAIN_PERMS, "main.ts", ...args],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, options.timeoutMs ?? 20_000);
  const out = await child.output();
  clearTimeout(timer);
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}
