/**
 * Each flight of the handshake dropped, duplicated and reordered, on virtual
 * time: the handshake still completes (RFC 6347 §4.2.4).
 */
import assert from "node:assert/strict";
import { type Fate, Pair } from "../helpers/sim.ts";

// Datagram indices per direction in a loss-free handshake:
// c2s: 0 = ClientHello, 1 = ClientHello+cookie, 2 = flight 5; s2c: 0 = HVR, 1 = flight 4, 2 = flight 6.
const FLIGHTS: { name: string; direction: "c2s" | "s2c"; index: number }[] = [
  { name: "flight 1 (ClientHello)", direction: "c2s", index: 0 },
  { name: "flight 2 (HelloVerifyRequest)", direction: "s2c", index: 0 },
  { name: "flight 3 (ClientHello with cookie)", direction: "c2s", index: 1 },
  { name: "flight 4 (ServerHello..Done)", direction: "s2c", index: 1 },
  { name: "flight 5 (ClientKeyExchange..Finished)", direction: "c2s", index: 2 },
  { name: "flight 6 (ChangeCipherSpec, Finished)", direction: "s2c", index: 2 },
];

for (const fate of ["drop", "duplicate", "delay"] as Fate[]) {
  for (const flight of FLIGHTS) {
    Deno.test(`handshake completes when ${flight.name} is ${fate === "delay" ? "reordered" : fate + "ped"}`, () => {
      const pair = new Pair({
        seed: `${fate}/${flight.name}`,
        script: (direction, index) =>
          direction === flight.direction && index === flight.index ? fate : "deliver",
      });
      pair.run();
      assert.equal(pair.client.isEstablished, true, "client established");
      assert.equal(pair.server?.isEstablished, true, "server established");
      pair.client.send(new TextEncoder().encode("after"));
      pair.pump();
      const data = pair.serverEvents.filter((e) => e.type === "data");
      assert.equal(data.length, 1, "delivered exactly once");
    });
  }
}

Deno.test("handshake completes with every second datagram lost", () => {
  const pair = new Pair({ script: (_d, index) => (index % 2 === 1 ? "drop" : "deliver") });
  pair.run();
  assert.equal(pair.client.isEstablished, true);
});

Deno.test("a dead server makes the client give up within the retransmission budget", () => {
  const pair = new Pair({ script: (direction) => (direction === "s2c" ? "drop" : "deliver") });
  const start = pair.now;
  pair.run(600_000);
  assert.equal(pair.client.isClosed, true);
  assert.ok(pair.now - start <= 31_000, `gave up after ${pair.now - start} ms`);
  const closed = pair.clientEvents.find((e) => e.type === "closed");
  assert.ok(closed && closed.type === "closed" && closed.reason === "handshake timeout");
});
