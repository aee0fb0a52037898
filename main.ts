/**
 * Command-line entry: `deno task start [flags]`.
 *
 * Starts the DTLS server with the Qt example's demo credentials unless a key
 * file is given, and shuts down cleanly (close_notify to every peer) on
 * SIGINT / SIGTERM.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DtlsServer } from "./src/server/dtls_server.ts";
import { JsonLogger, type LogLevel } from "./src/server/log.ts";
import { demoPskStore, mapPskStore, parsePskFile, type PskStore } from "./src/server/psk_store.ts";
import { DEMO_IDENTITY_HINT } from "./src/server/psk_store.ts";

const USAGE = `Usage: main.ts [options]
  --address ADDR        address to bind (default 127.0.0.1; IPv6 e.g. ::1)
  --port N              UDP port (default 4433; 0 = any free port)
  --psk-file PATH       keys in psktool format (identity:hexkey per line)
  --identity-hint TEXT  PSK identity hint (default "${DEMO_IDENTITY_HINT}")
  --mtu N               largest datagram sent (default 1200)
  --log-level LEVEL     debug | info | warning | error (default info)
  --help                this text`;

function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    fail(`Cannot use --port ${value}: expected an integer from 0 to 65535`);
  }
  return port;
}

function main(): void {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      strict: true,
      options: {
        address: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "4433" },
        "psk-file": { type: "string" },
        "identity-hint": { type: "string", default: DEMO_IDENTITY_HINT },
        mtu: { type: "string", default: "1200" },
        "log-level": { type: "string", default: "info" },
        help: { type: "boolean", default: false },
      },
    });
  } catch (error) {
    fail(`${error instanceof Error ? error.message : error}\n${USAGE}`);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return;
  }
  const level = v["log-level"];
  if (!["debug", "info", "warning", "error"].includes(level)) {
    fail(`Cannot use --log-level ${level}: expected debug, info, warning or error`);
  }
  const mtu = Number(v.mtu);
  if (!Number.isInteger(mtu) || mtu < 256 || mtu > 65507) {
    fail(`Cannot use --mtu ${v.mtu}: expected an integer from 256 to 65507`);
  }
  const logger = new JsonLogger({ level: level as LogLevel });
  let psk: PskStore;
  const file = v["psk-file"];
  if (file !== undefined) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (error) {
      fail(`Cannot read --psk-file ${file}: ${error instanceof Error ? error.message : error}`);
    }
    try {
      psk = mapPskStore(parsePskFile(text, `--psk-file ${file}`));
    } catch (error) {
      fail(error instanceof Error ? error.message : String(error));
    }
  } else {
    psk = demoPskStore();
    logger.log(
      "warning",
      "demo_key",
      "No --psk-file: using the Qt example's demo key for every identity",
    );
  }

  const server = new DtlsServer({
    address: v.address,
    port: parsePort(v.port),
    psk,
    identityHint: v["identity-hint"],
    mtu,
    logger,
  });
  try {
    server.listen();
  } catch (error) {
    fail(
      `Cannot listen on ${v.address}:${v.port}: ${error instanceof Error ? error.message : error}`,
    );
  }
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.log("info", "signal", `Received ${signal}: shutting down`);
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
}

if (import.meta.main) main();
