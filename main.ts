/**
 * Command-line entry of the DTLS server (and of its client and health
 * commands). `deno task start [flags]`, or `dtls-server [flags]` once compiled.
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import { CLIENT_USAGE, runClient, runHealth } from "./src/cli/client_command.ts";
import { runServer, usage } from "./src/cli/server_command.ts";

async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  if (first === "client") {
    return rest.includes("--help") ? (console.log(CLIENT_USAGE), 0) : await runClient(rest);
  }
  if (first === "health") return await runHealth(rest);
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage());
    return 0;
  }
  if (args.includes("--version")) {
    console.log(`dtls-server ${denoJson.version}`);
    return 0;
  }
  return await runServer(args);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
