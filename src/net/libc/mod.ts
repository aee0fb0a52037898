/**
 * The libc socket backend: a UDP socket on Linux libc through Deno's FFI,
 * where `recvmmsg` takes every waiting datagram in one system call and
 * `sendmmsg` sends what a batch produced in one more. Deno's own socket costs
 * a promise and an operation per datagram each way; this costs one `poll` on
 * a worker thread per batch, and allocates nothing per datagram but the
 * subarray handed to the caller. On this machine class a plain echo on it
 * answers about twice as many datagrams per second as one on
 * `Deno.listenDatagram`, close to a C echo server's rate and latency tail.
 *
 * Opt-in (`--io libc`): it needs `--allow-ffi` (which is full access: FFI
 * code is outside Deno's sandbox), glibc and a little-endian CPU. Nothing
 * touches libc until a socket or poller is made.
 *
 * This file is the folder's only entry point:
 * - `ffi.ts`: the binding (constants, struct layouts, symbols, errno)
 * - `sockaddr.ts`: sockaddr_in / sockaddr_in6 to and from `Deno.NetAddr`
 * - `arena.ts`: the one unmoving buffer each socket's structs live in
 * - `poller.ts`: the `poll` loop, for one socket or many
 * - `socket.ts`: the socket
 *
 * @module
 */

export { LibcDatagramSocket, type LibcSocketSizes, SERVER_SIZES } from "./socket.ts";
export { LibcPoller } from "./poller.ts";
