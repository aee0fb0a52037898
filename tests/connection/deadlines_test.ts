/**
 * The endpoint's one timer: the deadline heap, and `pollTimeout` saying
 * when each kind of deadline (retransmission, idle timeout, buffer release)
 * is due, with only due connections visited.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DeadlineHeap } from "../../src/connection/deadlines.ts";
import { converse, deliver, drain, testClient, testEndpoint } from "../helpers/drive.ts";

const T0 = 1_000_000;

Deno.test("DeadlineHeap: pops in time order whatever the order of pushes (property)", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 1_000 })), (times) => {
      const heap = new DeadlineHeap<number>();
      times.forEach((t, i) => heap.push(t, i));
      assert.equal(heap.size, times.length);
      const popped: number[] = [];
      for (let d = heap.pop(); d !== undefined; d = heap.pop()) {
        assert.equal(times[d.item], d.at);
        popped.push(d.at);
      }
      assert.deepEqual(popped, [...times].sort((a, b) => a - b));
      assert.equal(heap.peek(), undefined);
    }),
  );
});

Deno.test("endpoint pollTimeout: a half-open handshake's retransmission, then an idle connection's buffer release and idle timeout", () => {
  const endpoint = testEndpoint({ idleTimeoutMs: 5_000 }, "deadlines");
  assert.equal(endpoint.pollTimeout(), undefined, "nothing pending without connections");
  const peer = "10.50.0.1:5000";
  const client = testClient("deadlines", T0);
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
  // A deadline that moved later is found out when its entry fires: the
  // timer may wake early, never late.
  assert.ok(endpoint.pollTimeout()! <= later + 1_000);
  endpoint.handleTimeouts(later + 999);
  assert.equal(endpoint.pollTimeout(), later + 1_000);
  endpoint.handleTimeouts(later + 1_000);
  assert.equal(server.holdsIdleMemory, false);
  assert.equal(endpoint.pollTimeout(), later + 5_000);
  assert.deepEqual(endpoint.handleTimeouts(later + 4_999), []);
  const touched = endpoint.handleTimeouts(later + 5_000);
  assert.deepEqual(touched.map(([p]) => p), [peer]);
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
  // 50 idle connections: once the handshakes' timers have been found out,
  // the next deadline is the first one's idle timeout.
  assert.deepEqual(endpoint.handleTimeouts(T0 + 59_999), []);
  assert.equal(endpoint.pollTimeout(), T0 + 60_000);
  const touched = endpoint.handleTimeouts(T0 + 60_009);
  assert.equal(touched.length, 10);
  assert.equal(endpoint.pollTimeout(), T0 + 60_010);
});
