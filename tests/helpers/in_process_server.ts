/**
 * A DtlsServer in the test's own process on a free port, logging to memory,
 * closed (close_notify to every peer) when the body is done.
 */
import { DtlsServer } from "../../src/server/dtls_server.ts";
import { MemoryLogger } from "../../src/server/log.ts";

/** Runs `body` with a listening server made with `options`; closes it after, however the body ends. */
export async function withServer(
  options: ConstructorParameters<typeof DtlsServer>[0],
  body: (server: DtlsServer, port: number, log: MemoryLogger) => Promise<void>,
): Promise<void> {
  const log = new MemoryLogger();
  const server = new DtlsServer({ port: 0, logger: log, ...options });
  const { port } = server.listen();
  try {
    await body(server, port, log);
  } finally {
    await server.close();
  }
}
