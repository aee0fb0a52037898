/**
 * Our DTLS server as the benchmarks run it: the library's `DtlsServer` with
 * an echo application (each decrypted datagram is sent back as it came, so
 * 64-byte and 1200-byte loads are symmetric, as with the other servers'
 * echo), warnings and errors logged to stderr, info lines dropped (a server
 * under load runs with `--log-level warning`; `--log-level info` writes the
 * real server's JSON line per datagram to stdout instead), and no
 * per-address handshake rate limit (every load client comes from loopback).
 *
 *     deno run -A --unstable-net tools/bench_server.ts --port 4433 --crypto node [--io libc] [--log-level info]
 *
 * Prints `{"port":N}` once bound; closes on SIGTERM / SIGINT.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DtlsServer } from "../src/server/dtls_server.ts";
import { configureLogging, type Logger, type LogLevel } from "../src/server/log.ts";
import { nobleProvider } from "../src/crypto/noble.ts";
import { nodeProvider } from "../src/crypto/node.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    crypto: { type: "string", default: "node" },
    app: { type: "string", default: "echo" },
    io: { type: "string", default: "deno" },
    "log-level": { type: "string", default: "warning" },
  },
});

/** Warnings and errors to stderr as JSON lines; nothing else. */
const logger: Logger = {
  log(level: LogLevel, event: string, msg: string): void {
    if (level === "warning" || level === "error") {
      console.error(JSON.stringify({ level, event, msg }));
    }
  },
  // As `--log-level warning` does: the server builds no info fields (the
  // per-datagram hex dump) for lines that are not written.
  enabled: (level: LogLevel) => level === "warning" || level === "error",
};

// `--log-level info`: the real server's JSON lines on stdout, one per
// datagram, as `deno task start` writes them (the first is `listening`,
// which carries the port too).
const info = values["log-level"] === "info";
if (info) configureLogging({ format: "json", level: "info" });

const server = new DtlsServer({
  address: values.host,
  port: Number(values.port),
  provider: values.crypto === "noble" ? nobleProvider : nodeProvider,
  io: values.io === "libc" ? "libc" : "deno",
  ...(info ? {} : { logger, logPlaintext: false }),
  handshakeRate: 0,
  maxHalfOpen: 10_000,
  maxConnections: 20_000,
  ...(values.app === "echo" ? { onDatagram: (data: Uint8Array) => data } : {}),
});
const { port } = server.listen();
if (!info) console.log(JSON.stringify({ port }));
const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
