/**
 * IP address literals to and from the bytes of a socket address: what the
 * libc socket backend needs to bind and send, and to name a peer the same
 * way `Deno.listenDatagram` does (RFC 5952 text for IPv6, as Rust prints it).
 *
 * @module
 */

/** An IPv4 (4 bytes) or IPv6 (16 bytes) address, in network order. */
export type IpBytes = Uint8Array;

/** Parses an IPv4 or IPv6 literal (`localhost` is 127.0.0.1); undefined if it is not one. */
export function parseIp(text: string): IpBytes | undefined {
  if (text === "localhost") return new Uint8Array([127, 0, 0, 1]);
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

function parseIpv4(text: string): IpBytes | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    // Decimal only, no leading zeros: "010" is octal to some parsers and refused by Rust.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) return undefined;
    bytes[i] = Number(part);
  }
  return bytes;
}

function parseIpv6(text: string): IpBytes | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = groups(halves[0]!, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1]!, true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/** The 16-bit groups of one side of `::`; a dotted IPv4 tail counts as two groups. */
function groups(text: string, mayEndInIpv4: boolean): number[] | undefined {
  if (text === "") return [];
  const parts = text.split(":");
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (i === parts.length - 1 && mayEndInIpv4 && part.includes(".")) {
      const v4 = parseIpv4(part);
      if (v4 === undefined) return undefined;
      out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
      out.push(parseInt(part, 16));
    } else {
      return undefined;
    }
  }
  return out;
}

/**
 * True for an address only this machine can reach: 127.0.0.0/8, `::1`, or
 * `localhost`. Anything else, names and IPv4-mapped forms included, counts
 * as reachable from outside, the safe side to err on.
 */
export function isLoopbackIp(text: string): boolean {
  const bytes = parseIp(text);
  if (bytes === undefined) return false;
  if (bytes.length === 4) return bytes[0] === 127;
  return bytes.subarray(0, 15).every((b) => b === 0) && bytes[15] === 1;
}

/** The text of an address: dotted IPv4, or RFC 5952 IPv6 (IPv4-mapped ones as `::ffff:a.b.c.d`). */
export function formatIp(bytes: IpBytes): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new TypeError(`Cannot format address: ${bytes.length} bytes`);
  const group = (i: number) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!;
  if (bytes.subarray(0, 10).every((b) => b === 0) && group(5) === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  // RFC 5952 §4.2: the longest run of two or more zero groups (the first of equals) becomes "::".
  let bestStart = -1, bestLength = 1;
  for (let i = 0; i < 8;) {
    if (group(i) !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && group(j) === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, k) => group(from + k).toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}
