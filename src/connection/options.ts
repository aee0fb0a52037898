/**
 * Checking the options an embedder passes to the library's constructors:
 * JavaScript callers, and TypeScript ones passing a variable, get no
 * compile-time check, and a limit that is silently not applied undoes an
 * operator's policy. An unknown name (a renamed one says its new name) and
 * a limit that is not a non-negative number are refused with a TypeError.
 *
 * @module
 */

/** What a constructor checks of an option: a limit is a number ≥ 0; anything else is taken as given. */
export type OptionKind = "limit" | "other";

/** Names options had before each setting got one name, flag to field. */
const RENAMED: Readonly<Record<string, string>> = Object.freeze({
  handshakesPerSecondPerAddress: "handshakeRate",
  handshakeBurstPerAddress: "handshakeBurst",
  maxHandshakeMessageBytes: "maxHandshakeMessage",
  maxReassemblyBytesPerHandshake: "maxReassemblyPerHandshake",
  maxBufferedHandshakeBytes: "maxReassemblyPerHandshake",
  maxReassemblyBytesTotal: "maxReassemblyTotal",
  maxReassemblyBytesPerSource: "maxReassemblyPerSource",
  receiveBufferBytes: "receiveBuffer",
});

/**
 * Throws a TypeError naming the first option of `options` that `kinds` does
 * not know, or the first limit that is neither undefined nor a finite
 * number ≥ 0 (null included). `what` names the constructor in the message.
 */
export function checkOptions(
  what: string,
  options: object,
  kinds: Readonly<Record<string, OptionKind>>,
): void {
  for (const [name, value] of Object.entries(options)) {
    const kind = kinds[name];
    if (kind === undefined) {
      const renamed = RENAMED[name];
      throw new TypeError(
        `Cannot create ${what}: unknown option ${name}` +
          (renamed === undefined ? "" : ` (renamed ${renamed})`),
      );
    }
    if (
      kind === "limit" && value !== undefined &&
      !(typeof value === "number" && Number.isFinite(value) && value >= 0)
    ) {
      throw new TypeError(
        `Cannot create ${what}: option ${name} must be a number of at least 0, not ${
          value === null ? "null" : typeof value === "number" ? value : typeof value
        }`,
      );
    }
  }
}

/** `options` without its undefined members, so that spreading it over defaults keeps them. */
export function definedOnly<T extends object>(
  options: T,
): { [K in keyof T]: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) if (value !== undefined) out[key] = value;
  return out as { [K in keyof T]: Exclude<T[K], undefined> };
}
