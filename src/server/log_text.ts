/**
 * Peer-supplied text made safe to log. A log line is read on terminals and
 * parsed by tools that split on line breaks, so a peer that can put an ESC
 * sequence, a newline or a bidi override into its PSK identity or its
 * payload could clear an operator's screen, forge a line, or make text read
 * backwards. Everything here writes such characters as visible escapes,
 * bounds the length, and never throws: a log call must not fail.
 *
 * @module
 */

/** Bidi controls (Unicode TR9): they reorder the text that follows them on screen. */
function isBidiControl(cp: number): boolean {
  return cp === 0x061c || cp === 0x200e || cp === 0x200f ||
    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/**
 * Code points that JSON.stringify leaves raw but that act on a terminal or
 * end a line for some reader: DEL, C1 controls (0x9b is CSI to an 8-bit
 * terminal), the Unicode line and paragraph separators, bidi controls.
 */
function isUnsafeBeyondC0(cp: number): boolean {
  return (cp >= 0x7f && cp <= 0x9f) || cp === 0x2028 || cp === 0x2029 || isBidiControl(cp);
}

/**
 * The escape of one code point in {@link safeText}, or undefined to keep it.
 * A lone surrogate arrives here as its own code unit (0xd800–0xdfff).
 */
function escapeOf(cp: number): string | undefined {
  // The backslash is escaped too, so every backslash in the output starts an
  // escape and the output reads back to exactly one input.
  if (cp === 0x5c) return "\\\\";
  // Quotes too: a line quotes peer text, and a quote inside must not end it.
  if (cp === 0x22) return "\\x22";
  if (cp < 0x20 || isUnsafeBeyondC0(cp)) {
    return cp <= 0xff ? `\\x${hex(cp, 2)}` : `\\u{${hex(cp, 4)}}`;
  }
  if (cp >= 0xd800 && cp <= 0xdfff) return `\\u{${hex(cp, 4)}}`;
  return undefined;
}

function hex(n: number, digits: number): string {
  return n.toString(16).padStart(digits, "0");
}

/** True when `text` has nothing {@link escapeOf} would change: the common case, checked fast. */
function isPlain(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x5c || c === 0x22 || (c >= 0x7f && c <= 0x9f)) return false;
    if (c >= 0x0600 && (isUnsafeBeyondC0(c) || (c >= 0xd800 && c <= 0xdfff))) return false;
  }
  return true;
}

/** A bound given by a caller, as a count: NaN or negative is 0, Infinity stays. */
function bound(max: number): number {
  return max >= 0 ? Math.floor(max) : 0;
}

/** What {@link safeTextBounded} returns. */
export interface BoundedText {
  /** The escaped text, with `…(+N more)` when it was cut. */
  readonly text: string;
  /** True when the text was cut to the bound. */
  readonly truncated: boolean;
}

/**
 * {@link safeText}, also saying whether the text was cut, for a log entry
 * that flags truncation in a field of its own.
 */
export function safeTextBounded(text: string, maxChars = 256): BoundedText {
  const max = bound(maxChars);
  if (text.length <= max && isPlain(text)) return { text, truncated: false };
  let out = "";
  let used = 0;
  let i = 0;
  while (i < text.length) {
    // codePointAt gives a lone surrogate as its own code unit, a pair as one code point.
    const cp = text.codePointAt(i)!;
    const width = cp > 0xffff ? 2 : 1;
    const escaped = escapeOf(cp);
    const length = escaped === undefined ? 1 : escaped.length;
    // An escape is never split: a cut one would read as something else.
    if (used + length > max) break;
    out += escaped ?? text.slice(i, i + width);
    used += length;
    i += width;
  }
  if (i === text.length) return { text: out, truncated: false };
  let more = 0;
  for (; i < text.length; more++) i += text.codePointAt(i)! > 0xffff ? 2 : 1;
  return { text: `${out}…(+${more} more)`, truncated: true };
}

/**
 * Text for a log line that cannot act on a terminal or forge a line: C0
 * controls (newline, carriage return, tab and ESC among them), DEL, C1
 * controls, U+2028/U+2029, the bidi controls and the backslash itself are
 * written as escapes: `\xNN` up to 0xff, `\u{NNNN}` above, `\\` for the
 * backslash; a lone surrogate as `\u{dNNN}`. Distinct inputs give distinct
 * outputs while neither is cut.
 *
 * At most `maxChars` characters of output (escapes count at their written
 * length and are never split), then `…(+N more)` giving how many input
 * characters were left out. Never throws.
 */
export function safeText(text: string, maxChars = 256): string {
  return safeTextBounded(text, maxChars).text;
}

/**
 * Escapes, in a JSON text, what {@link safeText} escapes beyond the C0
 * controls (which JSON.stringify escapes already) as JSON `\uNNNN` escapes:
 * the JSON reads back to the same value, and the line stays one line on a
 * terminal. Those characters can only occur inside JSON strings, so the
 * whole text can be scanned.
 */
export function escapeJsonUnsafe(json: string): string {
  let out: string | undefined;
  let from = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c < 0x7f || !isUnsafeBeyondC0(c)) continue;
    out = (out ?? "") + json.slice(from, i) + `\\u${hex(c, 4)}`;
    from = i + 1;
  }
  return out === undefined ? json : out + json.slice(from);
}

// fatal: invalid UTF-8 goes to the byte-wise form instead of becoming U+FFFD,
// which would render like the real U+FFFD. ignoreBOM: a leading BOM is kept,
// so "\uFEFFabc" and "abc" render differently.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** True when the bytes `[0, end)` end on a UTF-8 character boundary of `bytes`. */
function atBoundary(bytes: Uint8Array, end: number): boolean {
  return end >= bytes.length || (bytes[end]! & 0xc0) !== 0x80;
}

/** Valid UTF-8 without C1 controls, decoded; undefined otherwise. */
function textOf(bytes: Uint8Array): string | undefined {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
  // A C1 control renders as `\xNN`, which the byte-wise form also writes for
  // a lone byte 0x80–0x9f: such text goes byte-wise, so the two forms never
  // meet (the byte-wise form always holds an escape of 0x80 or above; text
  // rendered by safeText, then, never does).
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80 && c <= 0x9f) return undefined;
  }
  return text;
}

/** Every byte outside printable ASCII, and the backslash, as `\xNN`. */
function byteWise(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    out += b >= 0x20 && b <= 0x7e && b !== 0x5c && b !== 0x22
      ? String.fromCharCode(b)
      : `\\x${hex(b, 2)}`;
  }
  return out;
}

/**
 * Peer-supplied bytes (a PSK identity, say) as text for a log. Valid UTF-8
 * is shown as {@link safeText} of its text (a BOM kept as a character);
 * anything else, and text holding C1 controls, byte by byte, printable ASCII
 * as is and every other byte (the backslash too) as `\xNN`. Two different
 * byte strings never render the same while neither is cut.
 *
 * At most `maxBytes` input bytes are shown (UTF-8 cut back to a character
 * boundary), then `…(+N bytes)` giving how many were left out. Never throws.
 */
export function bytesForLog(bytes: Uint8Array, maxBytes = 128): string {
  const max = bound(maxBytes);
  let end = Math.min(bytes.length, max);
  // Cutting inside a character would turn good text into the byte-wise form.
  let boundary = end;
  while (boundary > 0 && end - boundary < 3 && !atBoundary(bytes, boundary)) boundary--;
  const text = atBoundary(bytes, boundary) ? textOf(bytes.subarray(0, boundary)) : undefined;
  let shown: string;
  if (text !== undefined) {
    shown = safeText(text, Infinity);
    end = boundary;
  } else {
    shown = byteWise(bytes.subarray(0, end));
  }
  return end === bytes.length ? shown : `${shown}…(+${bytes.length - end} bytes)`;
}
