/**
 * struct sockaddr_in / sockaddr_in6 to and from Deno's `NetAddr`.
 *
 * @module
 */

import { formatIp, type IpBytes } from "../../codec/ip_address.ts";
import { AF_INET, AF_INET6 } from "./ffi.ts";

// struct sockaddr_in6 is 28 bytes (sockaddr_in 16): a slot of 32 holds either.
export const NAME_SLOT = 32;

/** Writes a sockaddr_in (IPv4) or sockaddr_in6 into `into`; returns its length. */
export function encodeSockaddr(into: Uint8Array, ip: IpBytes, port: number): number {
  const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
  into.fill(0, 0, NAME_SLOT);
  view.setUint16(0, ip.length === 4 ? AF_INET : AF_INET6, true);
  view.setUint16(2, port, false);
  into.set(ip, ip.length === 4 ? 4 : 8);
  return ip.length === 4 ? 16 : 28;
}

/** The address a sockaddr_in or sockaddr_in6 names (the inverse of {@link encodeSockaddr}). */
export function decodeSockaddr(name: Uint8Array): Deno.NetAddr {
  const view = new DataView(name.buffer, name.byteOffset, name.byteLength);
  const ip = view.getUint16(0, true) === AF_INET6 ? name.subarray(8, 24) : name.subarray(4, 8);
  return { transport: "udp", hostname: formatIp(ip), port: view.getUint16(2, false) };
}

/** `::ffff:a.b.c.d`: how an IPv6 socket reaches an IPv4 peer. */
export function ipv4Mapped(ip: IpBytes): IpBytes {
  const mapped = new Uint8Array(16);
  mapped[10] = 0xff;
  mapped[11] = 0xff;
  mapped.set(ip, 12);
  return mapped;
}
