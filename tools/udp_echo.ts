/**
 * A plain UDP echo server in Deno: the ceiling of what one Deno process can
 * answer on this machine, against which the DTLS server is compared. It
 * receives into one reused buffer (the default `receive()` allocates 64 KiB
 * per datagram and is several times slower).
 *
 *     deno run --allow-net --unstable-net tools/udp_echo.ts --port 4500
 *
 * Prints `{"port":N}` once bound; stops on SIGTERM / SIGINT.
 *
 * @module
 */

import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
  },
});
const socket = Deno.listenDatagram({
  transport: "udp",
  hostname: values.host,
  port: Number(values.port),
});
console.log(JSON.stringify({ port: (socket.addr as Deno.NetAddr).port }));
const stop = () => socket.close();
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
const buffer = new Uint8Array(65_536);
while (true) {
  let datagram: Uint8Array, addr: Deno.Addr;
  try {
    [datagram, addr] = await socket.receive(buffer);
  } catch {
    break;
  }
  // The send copies the bytes before the next receive reuses the buffer.
  socket.send(datagram, addr).catch(() => {});
}
Deno.exit(0);
