/**
 * The two log formats keep a peer's text from acting on a terminal or
 * forging a line.
 */
import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { formatJsonLine, formatPretty } from "../../src/server/log.ts";

function record(
  level: LogRecord["level"],
  msg: string,
  properties: Record<string, unknown>,
): LogRecord {
  return {
    category: ["dtls-server"],
    level,
    message: [msg],
    rawMessage: msg,
    timestamp: Date.UTC(2024, 0, 1),
    properties,
  };
}

/** The colour codes formatPretty writes itself (the only ESC bytes allowed). */
// deno-lint-ignore no-control-regex -- ESC is what the colours are made of
const COLOUR_CODE = /\x1b\[38;2;\d+;\d+;\d+m|\x1b\[0m/g;
/** What must never be on a log line raw: controls, line separators, bidi controls. */
// deno-lint-ignore no-control-regex -- control characters are what this finds
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

const HOSTILE = "\x1b[2J\nFAKE LINE\r\x9b31m\u2028\u202eevil\u2066\x7f";

Deno.test("pretty: a peer's ESC sequences and newlines never reach the terminal raw", () => {
  for (const level of ["info", "warning", "error", "debug"] as const) {
    const line = formatPretty(
      record(level, `PSK identity from 1.2.3.4:5: "${HOSTILE}"`, {
        event: "psk_identity",
        identity: HOSTILE,
      }),
    );
    const bare = line.replace(COLOUR_CODE, "");
    assert.ok(!bare.includes("\x1b"), `no ESC besides our colours: ${JSON.stringify(line)}`);
    assert.equal(line.split(/[\n\r\u2028\u2029\x85]/).length, 1, "one line");
    assert.doesNotMatch(bare, UNSAFE);
    assert.ok(bare.includes("\\x1b[2J\\x0aFAKE LINE"), "visible as escapes");
  }
});

Deno.test("pretty: the record whose message is ESC[2J then a newline is one line", () => {
  const line = formatPretty(record("info", "\x1b[2J\nFAKE LINE", { event: "x" }));
  assert.equal(
    line,
    "\x1b[38;2;128;128;128m00:00:00.000\x1b[0m \x1b[38;2;65;105;225m\\x1b[2J\\x0aFAKE LINE\x1b[0m",
  );
});

Deno.test("pretty: the plaintext of a datagram is shown escaped", () => {
  const line = formatPretty(
    record("info", "Received 20 bytes from 1.2.3.4:5", {
      event: "datagram",
      plaintext: HOSTILE,
    }),
  );
  const bare = line.replace(COLOUR_CODE, "");
  assert.ok(!bare.includes("\x1b"));
  assert.doesNotMatch(bare, UNSAFE);
  assert.ok(
    bare.endsWith(': "\\x1b[2J\\x0aFAKE LINE\\x0d\\x9b31m\\u{2028}\\u{202e}evil\\u{2066}\\x7f"'),
  );
});

Deno.test("JSON: C1, U+2028/9 and bidi controls are escaped in every string, the value is kept", () => {
  const fields = { event: "datagram", peer: "1.2.3.4:5", plaintext: HOSTILE, [HOSTILE]: HOSTILE };
  const line = formatJsonLine(record("info", HOSTILE, fields));
  assert.doesNotMatch(line, UNSAFE);
  const parsed = JSON.parse(line);
  assert.equal(parsed.msg, HOSTILE);
  assert.equal(parsed.plaintext, HOSTILE);
  assert.equal(parsed[HOSTILE], HOSTILE);
  assert.equal(parsed.event, "datagram");
});
