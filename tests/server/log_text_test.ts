/**
 * Peer text in the log: escaped so it cannot act on a terminal or forge a
 * line, bounded, and (for bytes) never ambiguous.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { bytesForLog, escapeJsonUnsafe, safeText } from "../../src/server/log_text.ts";

/** Every code point safeText must escape, with its escape. */
const MUST_ESCAPE: [number, string][] = [
  [0x00, "\\x00"],
  [0x09, "\\x09"],
  [0x0a, "\\x0a"],
  [0x0d, "\\x0d"],
  [0x1b, "\\x1b"],
  [0x1f, "\\x1f"],
  [0x5c, "\\\\"],
  [0x7f, "\\x7f"],
  [0x80, "\\x80"],
  [0x9b, "\\x9b"],
  [0x9f, "\\x9f"],
  [0x061c, "\\u{061c}"],
  [0x200e, "\\u{200e}"],
  [0x200f, "\\u{200f}"],
  [0x2028, "\\u{2028}"],
  [0x2029, "\\u{2029}"],
  ...[0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069].map((
    cp,
  ): [number, string] => [cp, `\\u{${cp.toString(16)}}`]),
];

/** Any UTF-16 string, lone surrogates included. */
const anyString = fc.string({
  unit: fc.oneof(
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    fc.constantFrom("\\", "x", "{", "}", "\u2028", "\u202e", "\x1b", "\x85", "\ud83d\ude00"),
  ),
  maxLength: 40,
});

/** True when `s` holds a character that must never reach a log raw. */
function hasUnsafe(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.codePointAt(i)!;
    if (c > 0xffff) {
      i++;
      continue;
    }
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0xd800 && c <= 0xdfff)) return true;
    if (MUST_ESCAPE.some(([cp]) => cp === c && cp > 0xff)) return true;
  }
  return false;
}

/** Reads safeText's output back (the escapes it writes, and nothing else). */
function unescapeText(s: string): string {
  return s.replace(
    /\\(\\|x([0-9a-f]{2})|u\{([0-9a-f]{4})\})/g,
    (_, all, x, u) => all === "\\" ? "\\" : String.fromCharCode(parseInt(x ?? u, 16)),
  );
}

Deno.test("safeText escapes every control, separator, bidi control and the backslash", () => {
  for (const [cp, escaped] of MUST_ESCAPE) {
    const c = String.fromCharCode(cp);
    assert.equal(safeText(`a${c}b`), `a${escaped}b`, `U+${cp.toString(16)}`);
  }
  assert.equal(safeText("\ud800"), "\\u{d800}", "lone high surrogate");
  assert.equal(safeText("x\udc00"), "x\\u{dc00}", "lone low surrogate");
  assert.equal(safeText("\x1b[2J\nFAKE LINE"), "\\x1b[2J\\x0aFAKE LINE");
});

Deno.test("safeText keeps ordinary text, non-ASCII and surrogate pairs as they are", () => {
  for (
    const text of ["", "Message #1", "héllo wörld", "日本語", "\ud83d\ude00 ok", "a\u00a0b\u00ff"]
  ) {
    assert.equal(safeText(text), text);
  }
});

Deno.test("safeText cuts at maxChars of output, never inside an escape, and says how much is left", () => {
  assert.equal(safeText("a".repeat(300)), "a".repeat(256) + "…(+44 more)");
  assert.equal(safeText("a".repeat(256)), "a".repeat(256));
  // 4 chars per escape: two fit in 10, the third would be split.
  assert.equal(safeText("\x1b".repeat(100), 10), "\\x1b\\x1b…(+98 more)");
  // Characters left out are counted as characters, a surrogate pair as one.
  assert.equal(safeText("ab\ud83d\ude00\ud83d\ude00", 2), "ab…(+2 more)");
  assert.equal(safeText("abc", 0), "…(+3 more)");
  assert.equal(safeText("abc", -1), "…(+3 more)");
  assert.equal(safeText("abc", NaN), "…(+3 more)");
  assert.equal(safeText("abc", Infinity), "abc");
});

Deno.test("safeText never throws, never lets an unsafe character through, and reads back", () => {
  fc.assert(
    fc.property(
      anyString,
      fc.oneof(fc.integer({ min: -5, max: 300 }), fc.constant(NaN)),
      (s, n) => {
        const out = safeText(s, n);
        assert.ok(!hasUnsafe(out), JSON.stringify(out));
        if (!out.endsWith(" more)")) assert.equal(unescapeText(out), s);
      },
    ),
    { numRuns: 2_000 },
  );
});

Deno.test("escapeJsonUnsafe escapes DEL, C1, U+2028/9 and bidi controls and keeps the value", () => {
  const value = { msg: "a\x7fb\x9bc\u2028d\u2029e\u202ef\u2066g\u061ch", "k\x85": 1 };
  const json = escapeJsonUnsafe(JSON.stringify(value));
  assert.equal(
    json,
    '{"msg":"a\\u007fb\\u009bc\\u2028d\\u2029e\\u202ef\\u2066g\\u061ch","k\\u0085":1}',
  );
  assert.deepEqual(JSON.parse(json), value);
  fc.assert(
    fc.property(anyString, (s) => {
      const out = escapeJsonUnsafe(JSON.stringify({ s }));
      assert.ok(!hasUnsafe(out), out);
      assert.equal(JSON.parse(out).s, s);
    }),
    { numRuns: 1_000 },
  );
});

const utf8 = (s: string) => new TextEncoder().encode(s);

Deno.test("bytesForLog: UTF-8 as safe text, a BOM kept, anything else byte by byte", () => {
  assert.equal(bytesForLog(utf8("Qt DTLS example client")), "Qt DTLS example client");
  assert.equal(bytesForLog(utf8("héllo")), "héllo");
  assert.equal(bytesForLog(utf8("\x1b[2J\n")), "\\x1b[2J\\x0a");
  assert.equal(bytesForLog(utf8("\uFEFFabc")), "\uFEFFabc", "BOM kept");
  assert.notEqual(bytesForLog(utf8("\uFEFFabc")), bytesForLog(utf8("abc")));
  assert.equal(bytesForLog(new Uint8Array([0x61, 0xff, 0x5c, 0x00])), "a\\xff\\x5c\\x00");
  assert.notEqual(bytesForLog(new Uint8Array([0xff])), bytesForLog(utf8("\ufffd")));
  assert.equal(bytesForLog(new Uint8Array([0xed, 0xa0, 0x80])), "\\xed\\xa0\\x80", "surrogate");
});

Deno.test("bytesForLog: a C1 control in text and a lone byte 0x80-0x9f do not meet", () => {
  assert.equal(bytesForLog(new Uint8Array([0x85])), "\\x85");
  assert.equal(bytesForLog(utf8("\x85")), "\\xc2\\x85");
  assert.equal(bytesForLog(utf8("a\\b")), "a\\\\b");
  assert.equal(bytesForLog(new Uint8Array([0x61, 0x5c, 0x62, 0x80])), "a\\x5cb\\x80");
});

Deno.test("bytesForLog cuts at maxBytes, UTF-8 at a character boundary", () => {
  assert.equal(bytesForLog(utf8("a".repeat(200))), "a".repeat(128) + "…(+72 bytes)");
  assert.equal(bytesForLog(utf8("a".repeat(128))), "a".repeat(128));
  // "é" is two bytes: a cut after 3 bytes backs up to 2.
  assert.equal(bytesForLog(utf8("aéé"), 4), "aé…(+2 bytes)");
  assert.equal(bytesForLog(new Uint8Array([0xff, 0xfe, 0xfd]), 2), "\\xff\\xfe…(+1 bytes)");
  assert.equal(bytesForLog(new Uint8Array(10), 0), "…(+10 bytes)");
  assert.equal(bytesForLog(new Uint8Array(3), -1), "…(+3 bytes)");
  // Output is bounded by the input bound, whatever the bytes.
  assert.ok(bytesForLog(new Uint8Array(100_000).fill(0x1b)).length <= 128 * 4 + 20);
});

/** Bytes rich in what could collide: escapes' letters, BOM, C1, invalid lead bytes. */
const trickyBytes = fc.oneof(
  fc.uint8Array({ maxLength: 12 }),
  fc.array(
    fc.constantFrom(
      0x00,
      0x1b,
      0x0a,
      0x5c,
      0x78,
      0x75,
      0x7b,
      0x7d,
      0x38,
      0x35,
      0x63,
      0x32,
      0x61,
      0x80,
      0x85,
      0x9f,
      0xc2,
      0xe2,
      0xef,
      0xbb,
      0xbf,
      0xff,
    ),
    { maxLength: 8 },
  ).map((a) => new Uint8Array(a)),
  anyString.map(utf8),
);

/** Reads bytesForLog's output back to the bytes (inputs within the bound only). */
function unrender(out: string): Uint8Array {
  // The byte-wise form is the only one with an escape of 0x80 or above, or of the backslash.
  if (/(^|[^\\])(\\\\)*\\x([89a-f][0-9a-f]|5c)/.test(out)) {
    return new Uint8Array(
      out.match(/\\x[0-9a-f]{2}|[^\\]/g)!.map((t) =>
        t.length === 4 ? parseInt(t.slice(2), 16) : t.charCodeAt(0)
      ),
    );
  }
  return utf8(unescapeText(out));
}

Deno.test("bytesForLog: distinct byte strings never render the same", () => {
  fc.assert(
    fc.property(trickyBytes, (bytes) => {
      assert.deepEqual(unrender(bytesForLog(bytes, 1_000)), bytes);
    }),
    { numRuns: 3_000 },
  );
  fc.assert(
    fc.property(trickyBytes, trickyBytes, (a, b) => {
      const same = a.length === b.length && a.every((x, i) => x === b[i]);
      assert.equal(bytesForLog(a, 1_000) === bytesForLog(b, 1_000), same);
    }),
    { numRuns: 5_000 },
  );
});
