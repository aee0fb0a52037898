/**
 * Session encoding, the session cache's bounds, and ticket sealing and
 * opening (RFC 5077): every way a ticket is refused.
 */
import assert from "node:assert/strict";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { decodeSession, encodeSession, type Session } from "../../src/session/session.ts";
import { SessionCache } from "../../src/session/session_cache.ts";
import { parseTicketKeyFile, TicketSealer } from "../../src/session/tickets.ts";
import { seededRandom } from "../helpers/random.ts";

const T0 = 1_800_000_000_000;
const DAY = 86_400_000;

function session(overrides: Partial<Session> = {}): Session {
  return {
    issuedAt: T0,
    suiteId: 0xc0a8,
    masterSecret: new Uint8Array(48).fill(7),
    extendedMasterSecret: true,
    encryptThenMac: false,
    identityBytes: new TextEncoder().encode("device-17"),
    pskCheck: new Uint8Array(16).fill(3),
    serverSpkiSha256: new Uint8Array(0),
    ...overrides,
  };
}

function sealer(secrets: Uint8Array[], seed = "tickets"): TicketSealer {
  return new TicketSealer({
    provider: nobleProvider,
    random: seededRandom(seed),
    lifetimeMs: DAY,
    secrets,
  });
}

const KEY_A = new Uint8Array(32).fill(0xa1);
const KEY_B = new Uint8Array(32).fill(0xb2);

Deno.test("a session encodes and decodes to itself, with and without a client certificate", () => {
  for (
    const s of [
      session(),
      session({
        identityBytes: new Uint8Array(0),
        pskCheck: new Uint8Array(0),
        encryptThenMac: true,
        serverSpkiSha256: new Uint8Array(32).fill(9),
        peerCertificate: {
          subject: "CN=client, O=Ümlaut",
          spkiSha256: "ab".repeat(32),
          notAfter: 1_900_000_000_000,
          policyId: new Uint8Array(32).fill(5),
        },
      }),
    ]
  ) {
    assert.deepEqual(decodeSession(encodeSession(s)), s);
  }
});

Deno.test("every truncation or extension of an encoded session is refused", () => {
  const bytes = encodeSession(session({
    peerCertificate: {
      subject: "CN=x",
      spkiSha256: "cd".repeat(32),
      notAfter: 0,
      policyId: new Uint8Array(0),
    },
  }));
  for (let n = 0; n < bytes.length; n++) {
    assert.equal(decodeSession(bytes.subarray(0, n)), undefined, `cut at ${n}`);
  }
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assert.equal(decodeSession(longer), undefined);
  const otherFormat = bytes.slice();
  otherFormat[0] = 2;
  assert.equal(decodeSession(otherFormat), undefined);
});

Deno.test("a ticket opens to its session under the key that sealed it", () => {
  const tickets = sealer([KEY_A]);
  const opened = tickets.open(tickets.seal(session()), T0 + 1000);
  assert.ok("session" in opened);
  assert.deepEqual(opened.session, session());
});

Deno.test("two tickets of one session differ (a fresh nonce each) and carry no plaintext", () => {
  const tickets = sealer([KEY_A]);
  const a = tickets.seal(session());
  const b = tickets.seal(session());
  assert.notDeepEqual(a, b);
  const text = new TextDecoder("latin1").decode(a);
  assert.ok(!text.includes("device-17"), "identity readable in the ticket");
  const master = new Uint8Array(48).fill(7);
  for (let i = 0; i + 8 <= a.length; i++) {
    assert.notDeepEqual(a.subarray(i, i + 8), master.subarray(0, 8));
  }
});

Deno.test("a ticket past its lifetime is refused as expired", () => {
  const tickets = sealer([KEY_A]);
  const ticket = tickets.seal(session());
  assert.ok("session" in tickets.open(ticket, T0 + DAY - 1));
  assert.deepEqual(tickets.open(ticket, T0 + DAY), { refused: "expired" });
});

Deno.test("a ticket from a key we do not hold is refused as unknown_key", () => {
  const ticket = sealer([KEY_B]).seal(session());
  assert.deepEqual(sealer([KEY_A]).open(ticket, T0), { refused: "unknown_key" });
});

Deno.test("every single-bit change of a ticket is refused", () => {
  const tickets = sealer([KEY_A]);
  const ticket = tickets.seal(session());
  for (let i = 0; i < ticket.length; i++) {
    const tampered = ticket.slice();
    tampered[i]! ^= 1 << (i % 8);
    const opened = tickets.open(tampered, T0);
    assert.ok("refused" in opened, `byte ${i}`);
    // The name bytes pick the key: a changed name is a key we do not hold.
    assert.equal(opened.refused, i < 16 ? "unknown_key" : "invalid", `byte ${i}`);
  }
});

Deno.test("truncated, empty and oversized tickets are refused as malformed or invalid", () => {
  const tickets = sealer([KEY_A]);
  const ticket = tickets.seal(session());
  assert.deepEqual(tickets.open(new Uint8Array(0), T0), { refused: "malformed" });
  assert.deepEqual(tickets.open(ticket.subarray(0, 43), T0), { refused: "malformed" });
  assert.deepEqual(tickets.open(ticket.subarray(0, ticket.length - 1), T0), {
    refused: "invalid",
  });
  assert.deepEqual(tickets.open(new Uint8Array(5000), T0), { refused: "malformed" });
});

Deno.test("keys rotate: the first seals, every key opens, a key taken out opens nothing", () => {
  const tickets = sealer([KEY_A]);
  const old = tickets.seal(session());
  tickets.setSecrets([KEY_B, KEY_A]);
  const fresh = tickets.seal(session());
  assert.ok("session" in tickets.open(old, T0), "old ticket still opens");
  assert.ok("session" in sealer([KEY_B]).open(fresh, T0), "new tickets are sealed under B");
  tickets.setSecrets([KEY_B]);
  assert.deepEqual(tickets.open(old, T0), { refused: "unknown_key" });
  assert.ok("session" in tickets.open(fresh, T0));
});

Deno.test("another process with the same key file opens the ticket (a restart)", () => {
  const file = `# ticket keys\n${"a1".repeat(32)}\n\n${"b2".repeat(32)}\n`;
  const first = sealer(parseTicketKeyFile(file), "first process");
  const ticket = first.seal(session());
  const second = sealer(parseTicketKeyFile(file), "second process");
  assert.ok("session" in second.open(ticket, T0));
});

Deno.test("a ticket key file: hex lines, comments and blanks; errors name the line, never the key", () => {
  assert.deepEqual(parseTicketKeyFile(`${"AB".repeat(32)}\r\n  # c\n${"cd".repeat(48)}\n`), [
    new Uint8Array(32).fill(0xab),
    new Uint8Array(48).fill(0xcd),
  ]);
  assert.throws(() => parseTicketKeyFile("# only a comment\n"), /no keys/);
  const short = "ab".repeat(16);
  assert.throws(
    () => parseTicketKeyFile(`${"ab".repeat(32)}\n${short}\n`),
    (e: Error) => /line 2: a key of 16 bytes/.test(e.message) && !e.message.includes(short),
  );
  assert.throws(() => parseTicketKeyFile("xyz\n"), /line 1: not an even number of hex digits/);
  assert.throws(() => parseTicketKeyFile(`${"ab".repeat(65)}\n`), /a key of 65 bytes/);
  assert.throws(() => parseTicketKeyFile(`${"ab".repeat(32)}\n`.repeat(65)), /more than 64/);
});

Deno.test("the session cache: found by ID within its lifetime, gone after", () => {
  const cache = new SessionCache({ maxEntries: 10, lifetimeMs: DAY });
  const id = new Uint8Array(32).fill(1);
  cache.set(id, session(), T0);
  assert.deepEqual(cache.get(id, T0 + DAY - 1), session());
  assert.equal(cache.get(new Uint8Array(32).fill(2), T0), undefined);
  assert.equal(cache.get(id, T0 + DAY), undefined);
  assert.equal(cache.size, 0, "an expired entry met is forgotten");
});

Deno.test("the session cache holds at most its bound, pushing out the least recently used", () => {
  const cache = new SessionCache({ maxEntries: 3, lifetimeMs: DAY });
  const id = (n: number) => new Uint8Array(32).fill(n);
  for (let n = 1; n <= 3; n++) cache.set(id(n), session({ suiteId: n }), T0);
  assert.ok(cache.get(id(1), T0), "1 used: now the most recent");
  cache.set(id(4), session({ suiteId: 4 }), T0);
  assert.equal(cache.size, 3);
  assert.equal(cache.get(id(2), T0), undefined, "2 was the least recently used");
  for (const n of [1, 3, 4]) assert.equal(cache.get(id(n), T0)?.suiteId, n);
  for (let n = 10; n < 1000; n++) cache.set(id(n % 256), session(), T0);
  assert.equal(cache.size, 3);
});

Deno.test("the session cache lets go of the expired sessions it meets on the way in", () => {
  const cache = new SessionCache({ maxEntries: 10, lifetimeMs: 1000 });
  const id = (n: number) => new Uint8Array(32).fill(n);
  cache.set(id(1), session({ issuedAt: T0 }), T0);
  cache.set(id(2), session({ issuedAt: T0 }), T0);
  cache.set(id(3), session({ issuedAt: T0 + 5000 }), T0 + 5000);
  assert.equal(cache.size, 1, "not full, yet the expired ones are gone");
  assert.ok(cache.get(id(3), T0 + 5000));
});

Deno.test("a session cache of 0 entries holds nothing", () => {
  const cache = new SessionCache({ maxEntries: 0, lifetimeMs: DAY });
  cache.set(new Uint8Array(32), session(), T0);
  assert.equal(cache.size, 0);
});
