/**
 * The endpoint's one timer: the deadline heap, and `pollTimeout` saying
 * when each kind of deadline (retransmission, idle timeout, buffer release)
 * is due, with only due connections visited.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DeadlineHeap } from "../../src/connection/deadlines.ts";
import { suiteByName } from "../../src/record/suites.ts";
import { converse, deliver, drain, testClient, testEndpoint } from "../helpers/drive.ts";

const T0 = 1_000_000;

Deno.test("DeadlineHeap: any sequence of sets and deletes keeps the earliest on top, each item once (property)", () => {
  const op = fc.record({
    item: fc.integer({ min: 0, max: 19 }),
    deadline: fc.integer({ min: 0, max: 1_000 }),
    remove: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const items = Array.from({ length: 20 }, (_, id) => ({ id, deadline: 0, heapIndex: -1 }));
      const model = new Map<number, number>();
      const heap = new DeadlineHeap<(typeof items)[number]>();
      for (const o of ops) {
        const item = items[o.item]!;
        if (o.remove) {
          heap.delete(item);
          model.delete(o.item);
        } else {
          heap.set(item, o.deadline);
          model.set(o.item, o.deadline);
        }
        assert.equal(heap.size, model.size);
        const earliest = Math.min(...model.values());
        assert.equal(heap.peek()?.deadline, model.size === 0 ? undefined : earliest);
      }
      // Draining in order gives every item once, earliest first.
      const drained: number[] = [];
      for (let top = heap.peek(); top !== undefined; top = heap.peek()) {
        drained.push(top.deadline);
        heap.delete(top);
        assert.equal(top.heapIndex, -1);
      }
      assert.deepEqual(drained, [...model.values()].sort((x, y) => x - y));
    }),
  );
});

Deno.test("endpoint pollTimeout: a half-open handshake's retransmission, then an idle connection's buffer release and idle timeout", () => {
  const endpoint = testEndpoint({ idleTimeoutMs: 5_000 }, "deadlines");
  assert.equal(endpoint.pollTimeout(), undefined, "nothing pending without connections");
  const peer = "10.50.0.1:5000";
  // AES-CCM: its plaintexts go through the connection's receive chunk.
  const client = testClient("deadlines", T0, { suites: [suiteByName("TLS_PSK_WITH_AES_128_CCM")] });
  converse(endpoint, client, peer, T0, (_d, i) => i < 2);
  const server = endpoint.get(peer)!;
  // Half-open: its flight 4's retransmission timer (jittered below 1 s).
  assert.equal(endpoint.pollTimeout(), server.pollTimeout());
  assert.ok(endpoint.pollTimeout()! <= T0 + 1_000);
  assert.deepEqual(endpoint.handleTimeouts(endpoint.pollTimeout()! - 1), []);
  // The client's flight 5 was lost: it sends it again at 1.5 s, and the
  // connection is established with one message. The received-data chunk is
  // given back a quiet second later, and the connection closes after 5 s.
  const later = T0 + 1_500;
  client.handleTimeout(later);
  converse(endpoint, client, peer, later);
  assert.equal(server.isEstablished, true);
  assert.ok(deliver(endpoint, client, peer, new Uint8Array([1, 2, 3]), later));
  drain(server);
  assert.equal(server.holdsIdleMemory, true);
  // A deadline that moved later is found out when it fires: the timer may
  // wake early, never late.
  assert.ok(endpoint.pollTimeout()! <= later + 1_000);
  endpoint.handleTimeouts(later + 999);
  assert.equal(endpoint.pollTimeout(), later + 1_000);
  endpoint.handleTimeouts(later + 1_000);
  assert.equal(server.holdsIdleMemory, false);
  assert.equal(endpoint.pollTimeout(), later + 5_000);
  assert.deepEqual(endpoint.handleTimeouts(later + 4_999), []);
  const touched = endpoint.handleTimeouts(later + 5_000);
  assert.deepEqual(touched.map((e) => e.peer), [peer]);
  assert.equal(server.isClosed, true);
  assert.ok(drain(server).events.some((e) => e.type === "closed" && e.reason === "idle timeout"));
  endpoint.remove(peer, server);
  assert.equal(endpoint.pollTimeout(), undefined);
});

Deno.test("endpoint handleTimeouts visits only the connections with something due", () => {
  const endpoint = testEndpoint({ idleTimeoutMs: 60_000 }, "deadlines/many");
  for (let i = 0; i < 50; i++) {
    converse(endpoint, testClient(`many${i}`, T0 + i), `10.50.1.${i}:5000`, T0 + i);
  }
  // 50 idle connections: a handshake done moves its deadline from the
  // retransmission to the idle timeout at once (no early wake-up for it),
  // so the next deadline is the first one's idle timeout.
  assert.equal(endpoint.pollTimeout(), T0 + 60_000);
  assert.deepEqual(endpoint.handleTimeouts(T0 + 59_999), []);
  const touched = endpoint.handleTimeouts(T0 + 60_009);
  assert.equal(touched.length, 10);
  assert.equal(endpoint.pollTimeout(), T0 + 60_010);
});

Deno.test("endpoint deadlines: one heap entry per connection, whatever it receives, and none once it is removed", () => {
  const endpoint = testEndpoint({}, "deadlines/one-each");
  const peers = Array.from({ length: 4 }, (_, i) => `10.50.2.${i}:5000`);
  const clients = peers.map((peer, i) => {
    const c = testClient(`one-each${i}`, T0);
    converse(endpoint, c, peer, T0);
    return c;
  });
  // A record every 1.5 s for five minutes: each one moves the buffer
  // release earlier than the idle timeout, and the release fires in between.
  for (let now = T0 + 1_500; now < T0 + 300_000; now += 1_500) {
    clients.forEach((c, i) => deliver(endpoint, c, peers[i]!, new Uint8Array([1]), now));
    endpoint.handleTimeouts(now + 1_000);
    assert.ok(endpoint.deadlineCount <= peers.length, `${endpoint.deadlineCount} deadlines`);
  }
  // A connection that ends and is removed leaves nothing behind to keep it alive.
  const server = endpoint.get(peers[0]!)!;
  clients[0]!.close();
  for (let d = clients[0]!.pollTransmit(); d; d = clients[0]!.pollTransmit()) {
    endpoint.handleDatagram(d, peers[0]!, T0 + 300_000);
  }
  assert.equal(server.isClosed, true);
  endpoint.remove(peers[0]!, server);
  assert.equal(endpoint.deadlineCount, peers.length - 1);
});
