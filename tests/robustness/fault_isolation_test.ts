/**
 * Fault isolation on a live server, on both socket backends: an exception in
 * one connection's path (the application handler, the logger, the record
 * layer) ends that connection with internal_error, an `error` log line and
 * `dtls_internal_errors_total`, and never the process or another peer.
 */
import assert from "node:assert/strict";
import { DtlsClient } from "../../src/client/dtls_client.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import type { Aead, CryptoProvider } from "../../src/crypto/provider.ts";
import { DtlsServer } from "../../src/server/dtls_server.ts";
import { type LogLevel, MemoryLogger } from "../../src/server/log.ts";
import { DEMO_KEY_HEX, parseHexKey } from "../../src/server/psk_store.ts";
import { socketBackends } from "../helpers/libc.ts";

const KEY = parseHexKey(DEMO_KEY_HEX, "demo key");
const text = new TextDecoder();

function client(port: number, identity: string): DtlsClient {
  return new DtlsClient({ hostname: "127.0.0.1", port, identity, psk: KEY });
}

/** Connects, sends `message` and returns the reply as text. */
async function exchange(c: DtlsClient, message: string): Promise<string> {
  c.send(message);
  return text.decode(await c.receive(5_000));
}

/** The server's internal error count for `where`, from its metrics text. */
function internalErrors(server: DtlsServer, where: string): number {
  const line = server.metrics.render().split("\n").find((l) =>
    l.startsWith(`dtls_internal_errors_total{where="${where}"}`)
  );
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

/** Runs `body` with a bystander that talks before and after it, and checks the bystander. */
async function withBystander(
  server: DtlsServer,
  port: number,
  body: () => Promise<void>,
): Promise<void> {
  const bystander = client(port, "bystander");
  try {
    await bystander.connect(5_000);
    assert.match(await exchange(bystander, "before"), /ACK$/);
    await body();
    assert.match(await exchange(bystander, "after"), /ACK$/, "the other peer is served on");
  } finally {
    await bystander.close();
  }
  assert.equal(server.isListening, true);
}

/**
 * A victim connects and sends `message`, which must end its connection with
 * internal_error, while a bystander talks before and after.
 */
async function victimEndedBy(
  server: DtlsServer,
  port: number,
  message: string,
  connected: (victim: DtlsClient) => void = () => {},
): Promise<void> {
  await withBystander(server, port, async () => {
    const victim = client(port, "victim");
    try {
      await victim.connect(5_000);
      connected(victim);
      victim.send(message);
      await assert.rejects(() => victim.receive(5_000), /internal_error/);
    } finally {
      await victim.close();
    }
  });
}

for (const io of socketBackends("fault isolation tests")) {
  Deno.test(`fault isolation (${io} socket): a throwing application handler ends only its connection`, async () => {
    const log = new MemoryLogger();
    const server = new DtlsServer({
      port: 0,
      io,
      logger: log,
      onDatagram: (data, peer) => {
        if (text.decode(data) === "throw") throw new Error("handler bug");
        return `to (${peer.address}:${peer.port}): ACK`;
      },
    });
    const { port } = server.listen();
    try {
      await victimEndedBy(server, port, "throw");
      assert.equal(internalErrors(server, "handler"), 1);
      const errors = log.entries.filter((e) => e.level === "error");
      assert.equal(errors.length, 1);
      assert.equal(errors[0]!.event, "internal_error");
      assert.match(errors[0]!.msg, /handler bug/);
    } finally {
      await server.close();
    }
  });

  Deno.test(`fault isolation (${io} socket): a logger that throws for one peer ends only that peer's connection`, async () => {
    const log = new MemoryLogger();
    let poisoned = -1;
    const logger = {
      log(level: LogLevel, event: string, msg: string, fields?: Record<string, unknown>) {
        if (event === "datagram" && String(fields?.peer).endsWith(`:${poisoned}`)) {
          throw new Error("log sink failed");
        }
        log.log(level, event, msg, fields);
      },
    };
    const server = new DtlsServer({ port: 0, io, logger });
    const { port } = server.listen();
    try {
      await victimEndedBy(server, port, "hello", (victim) => (poisoned = victim.localPort));
      assert.equal(internalErrors(server, "log"), 1);
    } finally {
      await server.close();
    }
  });

  Deno.test(`fault isolation (${io} socket): a record layer that breaks for one connection ends only it`, async () => {
    // Corrupted state inside the engine, reached through one peer's data: the
    // AEAD throws (as a bug would) when it opens the payload "poison".
    const log = new MemoryLogger();
    const server = new DtlsServer({ port: 0, io, logger: log, provider: poisonOnOpen("poison") });
    const { port } = server.listen();
    try {
      await victimEndedBy(server, port, "poison");
      assert.equal(internalErrors(server, "engine"), 1);
      assert.ok(log.entries.some((e) => e.level === "error" && e.event === "internal_error"));
    } finally {
      await server.close();
    }
  });
}

/** node:crypto, except that an AEAD throws when what it opened is `poison`. */
function poisonOnOpen(poison: string): CryptoProvider {
  return {
    ...nodeProvider,
    name: "poisoned",
    aead(name, key) {
      const inner = nodeProvider.aead(name, key);
      const aead: Aead = {
        tagLength: inner.tagLength,
        seal: (n, a, p) => inner.seal(n, a, p),
        sealInto: (n, a, p, o, at) => inner.sealInto(n, a, p, o, at),
        open(nonce, aad, sealed) {
          const plaintext = inner.open(nonce, aad, sealed);
          if (plaintext !== null && text.decode(plaintext) === poison) {
            throw new Error("record layer state corrupted");
          }
          return plaintext;
        },
      };
      return aead;
    },
  };
}
