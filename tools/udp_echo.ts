/**
 * A plain UDP echo server in Deno: the ceiling of what one Deno process can
 * answer on this machine, against which the DTLS server is compared. It
 * runs on the server's own socket layer (src/net/datagram_socket.ts), so
 * `--io` picks the same backends: Deno's socket receiving into one reused
 * buffer (the default `receive()` allocates 64 KiB per datagram and is
 * several times slower), or libc's recvmmsg/sendmmsg.
 *
 *     deno run --allow-net --unstable-net [--allow-ffi] tools/udp_echo.ts --port 4500 [--io libc]
 *
 * Prints `{"port":N}` once bound; stops on SIGTERM / SIGINT.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { bindDatagramSocket } from "../src/net/datagram_socket.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    io: { type: "string", default: "deno" },
  },
});
const socket = bindDatagramSocket({
  hostname: values.host,
  port: Number(values.port),
  io: values.io === "libc" ? "libc" : "deno",
});
console.log(JSON.stringify({ port: socket.addr.port }));
const stop = () => socket.close();
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
const ignore = () => {};
// Each send copies the bytes before the next receive reuses the buffer.
await socket.serve((datagram, from) => socket.send(datagram, from, ignore), ignore);
Deno.exit(0);
