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
