/**
 * Logging of the server shell. The engine never logs; the shell reports
 * through a small {@link Logger} interface, and the default implementation
 * hands each entry to LogTape under the category `["dtls-server"]`, so an
 * application embedding the server routes our logs with its own LogTape
 * configuration. The command line configures one of two sinks:
 *
 * - JSON lines: one object per line with `ts`, `level`, `event`, `msg` and
 *   the event's fields;
 * - pretty: coloured text for a terminal, in the Qt example's colours
 *   (errors crimson, warnings orange, info blue, received messages magenta).
 *
 * @module
 */

import { configureSync, getLogger, type LogRecord, resetSync, type Sink } from "@logtape/logtape";
import { escapeJsonUnsafe, safeText } from "./log_text.ts";

/** Severity, least to most severe. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Where the shell writes its log. */
export interface Logger {
  /** Writes one entry (the logger decides whether `level` passes). */
  log(level: LogLevel, event: string, msg: string, fields?: Record<string, unknown>): void;
  /**
   * Whether an entry at `level` would be written, so that costly fields (a
   * hex dump per datagram) are built only when they are. Absent: always.
   */
  enabled?(level: LogLevel): boolean;
}

/** The LogTape category of everything the server logs. */
export const LOG_CATEGORY = ["dtls-server"] as const;

/** A {@link Logger} that emits LogTape records (the default). */
export class LogtapeLogger implements Logger {
  readonly #logger = getLogger([...LOG_CATEGORY]);
  readonly #clock: () => number;

  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
  }

  enabled(level: LogLevel): boolean {
    return this.#logger.isEnabledFor(level);
  }

  log(level: LogLevel, event: string, msg: string, fields: Record<string, unknown> = {}): void {
    // emit() takes the message as is: no template parsing of braces in peer data.
    this.#logger.emit({
      timestamp: this.#clock(),
      level,
      message: [msg],
      rawMessage: msg,
      properties: { event, ...fields },
    });
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

function messageOf(record: LogRecord): string {
  return record.message.map((part) => (typeof part === "string" ? part : String(part))).join("");
}

/**
 * Formats a LogTape record as our JSON line (without the newline). Besides
 * the C0 controls JSON escapes, DEL, C1 controls, U+2028/U+2029 and bidi
 * controls in any string are escaped too: a peer's text must not act on the
 * terminal of someone tailing the log, nor split the line for a reader that
 * takes U+2028 as a line break.
 */
export function formatJsonLine(record: LogRecord): string {
  const { event, ...fields } = record.properties;
  return escapeJsonUnsafe(JSON.stringify({
    ts: new Date(record.timestamp).toISOString(),
    level: record.level,
    event: event ?? "log",
    msg: messageOf(record),
    ...fields,
  }));
}

const COLOURS = {
  crimson: "\x1b[38;2;220;20;60m",
  orange: "\x1b[38;2;255;140;0m",
  blue: "\x1b[38;2;65;105;225m",
  magenta: "\x1b[38;2;255;0;255m",
  grey: "\x1b[38;2;128;128;128m",
  reset: "\x1b[0m",
};

/**
 * Longest message or plaintext shown on a pretty line, in characters. Larger
 * than safeText's default: messages the server writes are short, and the
 * plaintext field is already bounded when logged, but its escapes grow when
 * shown again here.
 */
const PRETTY_MAX_CHARS = 2048;

/**
 * Formats a record as one coloured line for a terminal, as the Qt example's
 * window does. The message and the plaintext carry peer text (a PSK
 * identity, a payload), so both go through {@link safeText}: the only
 * escape sequences on the line are our colours, and it stays one line.
 */
export function formatPretty(record: LogRecord): string {
  const { event, ...fields } = record.properties;
  const colour = record.level === "error" || record.level === "fatal"
    ? COLOURS.crimson
    : record.level === "warning"
    ? COLOURS.orange
    : event === "datagram"
    ? COLOURS.magenta
    : record.level === "info"
    ? COLOURS.blue
    : COLOURS.grey;
  const time = new Date(record.timestamp).toISOString().slice(11, 23);
  const message = safeText(messageOf(record), PRETTY_MAX_CHARS);
  let line = `${COLOURS.grey}${time}${COLOURS.reset} ${colour}${message}`;
  if (event === "datagram" && "plaintext" in fields) {
    const plaintext = fields.plaintext;
    const text = typeof plaintext === "string" ? plaintext : String(plaintext);
    line += `: "${safeText(text, PRETTY_MAX_CHARS)}"`;
  }
  return line + COLOURS.reset;
}

/** A LogTape sink writing formatted lines synchronously, so nothing is lost at exit. */
export function lineSink(
  format: (record: LogRecord) => string,
  write?: (line: string) => void,
): Sink {
  const encoder = new TextEncoder();
  const out = write ?? ((line: string) => {
    Deno.stdout.writeSync(encoder.encode(line + "\n"));
  });
  return (record) => out(format(record));
}

/** Configures LogTape for the command line: one sink on stdout, a threshold. */
export function configureLogging(
  options: { format: "json" | "pretty"; level: LogLevel; write?: (line: string) => void },
): void {
  resetSync();
  configureSync({
    reset: true,
    sinks: {
      out: lineSink(options.format === "json" ? formatJsonLine : formatPretty, options.write),
    },
    loggers: [
      { category: [...LOG_CATEGORY], sinks: ["out"], lowestLevel: options.level },
      // LogTape's own diagnostics, only when something is wrong.
      { category: ["logtape", "meta"], sinks: ["out"], lowestLevel: "warning" },
    ],
  });
}

export { toHex } from "../codec/hex.ts";
