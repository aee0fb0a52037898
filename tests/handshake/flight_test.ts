import assert from "node:assert/strict";
import { DEFAULT_RETRANSMIT, FlightTimer } from "../../src/handshake/flight.ts";
import { seededRandom } from "../helpers/random.ts";

const FLIGHT = [{ kind: "change_cipher_spec", epoch: 0 }] as const;

/** The intervals between a timer's firings until it gives up, from `now` = 0. */
function schedule(timer: FlightTimer): number[] {
  timer.start(FLIGHT, 0, true);
  const intervals: number[] = [];
  let last = 0;
  for (let i = 0; i < 20; i++) {
    const at = timer.deadline;
    if (at === undefined) break;
    assert.equal(timer.poll(at - 1), "none", "never before its deadline");
    const verdict = timer.poll(at);
    intervals.push(at - last);
    last = at;
    if (verdict === "give_up") break;
    assert.equal(verdict, "resend");
  }
  return intervals;
}

Deno.test("flight timer: 1 s, doubling, capped at 60 s, given up after the last try (RFC 6347 §4.2.4.1)", () => {
  const policy = { ...DEFAULT_RETRANSMIT, maxRetransmits: 8, jitter: 0 };
  assert.deepEqual(
    schedule(new FlightTimer(policy)),
    [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000],
  );
  const timer = new FlightTimer(policy);
  schedule(timer);
  assert.equal(timer.deadline, undefined, "disarmed after giving up");
  // A new flight starts the schedule over.
  timer.start(FLIGHT, 500, true);
  assert.equal(timer.deadline, 1_500);
});

Deno.test("flight timer: jitter takes up to a quarter off each interval, never adds", () => {
  const lowest = new FlightTimer(DEFAULT_RETRANSMIT, (n) => new Uint8Array(n).fill(0xff));
  assert.deepEqual(schedule(lowest), [750, 1_500, 3_000, 6_000, 12_000, 24_000, 45_000]);
  const none = new FlightTimer(DEFAULT_RETRANSMIT, (n) => new Uint8Array(n));
  assert.deepEqual(
    schedule(none),
    [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000].map((ms) => Math.min(ms, 60_000)),
  );
  const random = seededRandom("jitter");
  const nominal = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000];
  for (let run = 0; run < 50; run++) {
    const got = schedule(new FlightTimer(DEFAULT_RETRANSMIT, random));
    assert.equal(got.length, nominal.length);
    got.forEach((ms, i) => assert.ok(ms <= nominal[i]! && ms >= 0.75 * nominal[i]!, `${ms}`));
  }
});

Deno.test("flight timer: peers that lost their flights together come back spread out", () => {
  const random = seededRandom("herd");
  const firstRetry = new Set<number>();
  for (let peer = 0; peer < 100; peer++) {
    const timer = new FlightTimer(DEFAULT_RETRANSMIT, random);
    timer.start(FLIGHT, 0, true);
    firstRetry.add(timer.deadline!);
  }
  // 100 peers over a 250 ms window: most land on different milliseconds.
  assert.ok(firstRetry.size > 60, `${firstRetry.size} distinct instants`);
  assert.ok(Math.max(...firstRetry) - Math.min(...firstRetry) > 150);
});
