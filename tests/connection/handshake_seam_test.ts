/**
 * The seam between a connection and its handshake driver: the driver is
 * never entered again while one of its calls runs. Records of the next
 * epoch that came before the peer's ChangeCipherSpec are opened after the
 * driver has returned from it, not from inside it.
 */

import assert from "node:assert/strict";
import { Connection } from "../../src/connection/connection.ts";
import { connectionConfig } from "../../src/connection/endpoint.ts";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { ClientHandshake } from "../../src/handshake/client.ts";
import type { HandshakeDriver } from "../../src/handshake/driver.ts";
import { ContentType, encodeRecord, parseRecords } from "../../src/record/header.ts";
import { suiteByName } from "../../src/record/suites.ts";
import { drain, testEndpoint } from "../helpers/drive.ts";
import { seededRandom } from "../helpers/random.ts";
import { clientPsk } from "../helpers/sim.ts";

const T0 = 1_000_000;
const PEER = "10.90.0.1:5000";

/** `driver` with each call counted in and out: `deepest` is the most calls ever running at once. */
function watched(driver: HandshakeDriver): { driver: HandshakeDriver; deepest: () => number } {
  let depth = 0;
  let deepest = 0;
  const enter = <A extends unknown[]>(call: (...args: A) => void) => (...args: A) => {
    depth++;
    deepest = Math.max(deepest, depth);
    try {
      call(...args);
    } finally {
      depth--;
    }
  };
  return {
    driver: {
      onMessage: enter(driver.onMessage.bind(driver)),
      onChangeCipherSpec: enter(driver.onChangeCipherSpec.bind(driver)),
      onPeerRetransmit: enter(driver.onPeerRetransmit.bind(driver)),
      start: enter(driver.start.bind(driver)),
    },
    deepest: () => deepest,
  };
}

Deno.test("a Finished that overtakes its ChangeCipherSpec is taken after the driver returns from the ChangeCipherSpec", () => {
  const endpoint = testEndpoint({}, "seam/early");
  let watch: ReturnType<typeof watched> | undefined;
  const client = new Connection(connectionConfig(nobleProvider, seededRandom("seam/early")), T0, {
    driver: (host) => {
      watch = watched(
        new ClientHandshake(
          host,
          clientPsk({ suites: [suiteByName("TLS_PSK_WITH_AES_128_GCM_SHA256")!] }),
        ),
      );
      return watch.driver;
    },
  });
  client.start();
  let finalFlight: Uint8Array[] = [];
  for (let round = 0; round < 10 && finalFlight.length === 0; round++) {
    for (const d of drain(client).sent) {
      const out = endpoint.handleDatagram(d, PEER, T0);
      if (out.kind === "hello_verify_request") client.handleDatagram(out.datagram, T0);
    }
    const server = endpoint.get(PEER);
    if (server === undefined) continue;
    const sent = drain(server).sent;
    const records = sent.flatMap((d) => parseRecords(d).records);
    if (records.some((r) => r.type === ContentType.ChangeCipherSpec)) {
      // The server's final flight, one record per datagram, Finished first.
      finalFlight = records
        .map((r) => encodeRecord(r.type, r.version, r.epoch, r.seq, r.fragment))
        .reverse();
    } else {
      for (const d of sent) client.handleDatagram(d, T0);
    }
  }
  assert.equal(finalFlight.length, 2, "ChangeCipherSpec and Finished");
  assert.equal(parseRecords(finalFlight[0]!).records[0]!.epoch, 1, "Finished comes first");
  for (const d of finalFlight) client.handleDatagram(d, T0 + 1);
  assert.equal(client.isEstablished, true);
  assert.equal(watch!.deepest(), 1, "the driver was entered while it ran");
});
