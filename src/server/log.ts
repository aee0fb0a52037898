/**
 * Structured logging of the server shell: one JSON object per line, with
 * `ts`, `level`, `event` and `msg` and any fields of the event. The engine
 * never logs; only the shell does.
 *
 * @module
 */

/** Severity, ordered. Mirrors the Qt example's colours: error, warning, info (and data), debug. */
export type LogLevel = "debug" | "info" | "warning" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };

/** Where the shell writes its log. */
export interface Logger {
  /** Writes one entry if `level` is at or above the logger's threshold. */
  log(level: LogLevel, event: string, msg: string, fields?: Record<string, unknown>): void;
}

/** A JSON-lines logger writing to a sink (stdout by default). */
export class JsonLogger implements Logger {
  readonly #threshold: number;
  readonly #write: (line: string) => void;
  readonly #clock: () => number;

  constructor(
    options: {
      level?: LogLevel;
      write?: (line: string) => void;
      clock?: () => number;
    } = {},
  ) {
    this.#threshold = RANK[options.level ?? "info"];
    const encoder = new TextEncoder();
    this.#write = options.write ?? ((line) => Deno.stdout.writeSync(encoder.encode(line + "\n")));
    this.#clock = options.clock ?? Date.now;
  }

  log(level: LogLevel, event: string, msg: string, fields: Record<string, unknown> = {}): void {
    if (RANK[level] < this.#threshold) return;
    const entry = { ts: new Date(this.#clock()).toISOString(), level, event, msg, ...fields };
    this.#write(JSON.stringify(entry));
  }
}

/** A logger that keeps entries in memory (tests, embedding). */
export class MemoryLogger implements Logger {
  /** Every entry logged, oldest first. */
  readonly entries: { level: LogLevel; event: string; msg: string; [k: string]: unknown }[] = [];

  log(level: LogLevel, event: string, msg: string, fields: Record<string, unknown> = {}): void {
    this.entries.push({ ...fields, level, event, msg });
  }
}

/** Lowercase hex of bytes, for logging ciphertext. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]!];
  return s;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
