/**
 * Review of the restructure (half_conn.ts, the private handshake host, the
 * per-peer entry, one name per setting). The engine was checked against the
 * commit before it (d6c60d0) by a differential fuzz and found to behave the
 * same; these tests are the findings of the settings rename, and each fails
 * on the code as reviewed.
 *
 * An option the library no longer knows (its name before the rename), or one
 * given as null, is taken silently: the limit it set is replaced by the
 * default (or, for null, by a limit of zero), where it used to be honoured.
 */
import assert from "node:assert/strict";
import {
  connectionConfig,
  ServerEndpoint,
  type ServerEndpointOptions,
} from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { DtlsServer, type DtlsServerOptions } from "../../src/server/dtls_server.ts";
import { MemoryLogger } from "../../src/server/log.ts";
import { converse, testClient } from "../helpers/drive.ts";
import { HostilePeer } from "../helpers/hostile_peer.ts";
import { seededRandom } from "../helpers/random.ts";
import { serverPsk } from "../helpers/sim.ts";

const T0 = 1_000_000;

/** Either `make` refuses `name` with a TypeError naming it, or it returns what it made. */
function refusedOrMade<T>(make: () => T, name: RegExp): T | undefined {
  try {
    return make();
  } catch (error) {
    assert.ok(error instanceof TypeError, `refused, but not with a TypeError: ${error}`);
    assert.match(error.message, name);
    return undefined;
  }
}

Deno.test("restructure: a ServerEndpoint given the rate limit under its old names refuses it or applies it", () => {
  // What an embedder wrote before the rename (in JavaScript, or in TypeScript
  // through a variable, where no excess-property check runs).
  const legacy = {
    connection: connectionConfig(nobleProvider, seededRandom("restructure/legacy")),
    psk: serverPsk(),
    handshakesPerSecondPerAddress: 1,
    handshakeBurstPerAddress: 1,
  };
  const endpoint = refusedOrMade(
    () => new ServerEndpoint(legacy as ServerEndpointOptions),
    /handshakesPerSecondPerAddress/,
  );
  if (endpoint === undefined) return;
  const first = converse(endpoint, testClient("restructure/a", T0), "10.7.0.1:1000", T0);
  assert.ok(first.some((o) => o.kind === "connection" && o.created), "the first is admitted");
  const second = converse(endpoint, testClient("restructure/b", T0), "10.7.0.1:1001", T0);
  assert.ok(
    second.some((o) => o.kind === "dropped" && o.reason === "rate"),
    "a second handshake from the address within the second passed the burst of 1 it was given",
  );
});

Deno.test("restructure: DtlsServer options under their old names are refused or applied, not dropped in silence", async () => {
  const legacy = {
    port: 0,
    logger: new MemoryLogger(),
    handshakesPerSecondPerAddress: 1,
    handshakeBurstPerAddress: 1,
  };
  const server = refusedOrMade(
    () => new DtlsServer(legacy as DtlsServerOptions),
    /handshakesPerSecondPerAddress|handshakeBurstPerAddress/,
  );
  if (server === undefined) return;
  const { port } = server.listen();
  const a = HostilePeer.open(port);
  const b = HostilePeer.open(port);
  try {
    a.connect();
    await a.until(() => a.connection?.isEstablished === true, "first handshake");
    b.connect();
    // Either refused (rate) or, with the option ignored, established.
    await b.until(
      () => server.refused.rate > 0 || b.connection?.isEstablished === true,
      "second handshake refused or done",
    );
    assert.ok(
      server.refused.rate > 0,
      "the burst of 1 given as handshakeBurstPerAddress was ignored",
    );
  } finally {
    await a.close();
    await b.close();
    await server.close();
  }
});

Deno.test("restructure: a limit given as null is refused or means its default, not zero", () => {
  // Before the rename `options.maxHalfOpen ?? default` made null the default;
  // definedOnly() keeps null, and `size >= null` refuses every handshake.
  const options = {
    connection: connectionConfig(nobleProvider, seededRandom("restructure/null")),
    psk: serverPsk(),
    maxHalfOpen: null,
  };
  const endpoint = refusedOrMade(
    () => new ServerEndpoint(options as unknown as ServerEndpointOptions),
    /maxHalfOpen/,
  );
  if (endpoint === undefined) return;
  const outcomes = converse(endpoint, testClient("restructure/null", T0), "10.7.0.2:1000", T0);
  assert.ok(
    outcomes.some((o) => o.kind === "connection" && o.created),
    `the handshake was refused: ${
      JSON.stringify(outcomes.map((o) => o.kind === "dropped" ? o.reason : o.kind))
    }`,
  );
});

Deno.test("restructure: an option under its old name is refused with its new name; an unknown one by its name", () => {
  const connection = connectionConfig(nobleProvider, seededRandom("restructure/names"));
  assert.throws(
    () =>
      new ServerEndpoint(
        { connection, psk: serverPsk(), maxReassemblyBytesTotal: 1 } as ServerEndpointOptions,
      ),
    /unknown option maxReassemblyBytesTotal \(renamed maxReassemblyTotal\)/,
  );
  assert.throws(
    () => new DtlsServer({ recieveBuffer: 1 } as DtlsServerOptions),
    /Cannot create DtlsServer: unknown option recieveBuffer$/,
  );
  assert.throws(
    () => new DtlsServer({ idleTimeoutMs: -1 }),
    /option idleTimeoutMs must be a number of at least 0, not -1/,
  );
  assert.throws(
    () => connectionConfig(nobleProvider, seededRandom("x"), { mtu: Number.NaN }),
    /option mtu must be a number of at least 0, not NaN/,
  );
});
