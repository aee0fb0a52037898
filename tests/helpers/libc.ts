import type { SocketIo } from "../../src/net/datagram_socket.ts";

/**
 * Whether the libc socket backend can run here: Linux and Deno's FFI
 * permission. Tests that need it skip with this reason printed.
 */
export function libcUnavailable(): string | undefined {
  if (Deno.build.os !== "linux") return `libc socket I/O needs Linux, not ${Deno.build.os}`;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "run the tests with --allow-ffi";
  }
  return undefined;
}

/** The socket backends that run here: libc too where it can, else Deno's alone, saying why for `what`. */
export function socketBackends(what: string): readonly SocketIo[] {
  const reason = libcUnavailable();
  if (reason === undefined) return ["deno", "libc"];
  console.log(`${what} on Deno's socket only: ${reason}`);
  return ["deno"];
}
