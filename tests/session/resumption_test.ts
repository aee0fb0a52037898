/**
 * Session resumption on virtual time, our client against our server
 * endpoint: by ticket and by session ID, each abbreviated flight lost,
 * duplicated and reordered, fragmented to a small MTU, and every reason a
 * session is not resumed.
 */
import assert from "node:assert/strict";
import type { SavedSession } from "../../src/handshake/driver.ts";
import type { ResumptionPolicy } from "../../src/session/resumption.ts";
import { PSK_SUITES, suiteByName } from "../../src/record/suites.ts";
import { type Fate, KEY, Pair, sentAlert } from "../helpers/sim.ts";
import { completed, DAY, saved, SECRET_A, testResumption } from "../helpers/resumption.ts";

type PairOptions = NonNullable<ConstructorParameters<typeof Pair>[0]>;

const SECRET_B = new Uint8Array(32).fill(0xb2);

/** A first, full handshake against `resumption`; returns what the client saved. */
function fullHandshake(
  resumption: ResumptionPolicy,
  client: PairOptions["client"] = {},
): { pair: Pair; session: SavedSession } {
  const pair = new Pair({ seed: "first", server: { resumption }, client });
  pair.run(120_000, true);
  assert.equal(pair.server?.isEstablished, true);
  assert.equal(completed(pair.serverEvents)?.resumed, undefined, "a full handshake");
  return { pair, session: saved(pair) };
}

/** A second connection offering `session`, later, from the same client. */
function reconnect(
  resumption: ResumptionPolicy,
  session: SavedSession,
  options: PairOptions = {},
): Pair {
  const pair = new Pair({
    seed: "second",
    start: 1_000_000 + 60_000,
    ...options,
    server: { resumption, ...options.server },
    client: { resume: session, ...options.client },
  });
  pair.run(120_000, true);
  return pair;
}

function assertExchangesData(pair: Pair): void {
  pair.client.send(new TextEncoder().encode("ping"));
  pair.pump();
  const got = pair.serverEvents.filter((e) => e.type === "data");
  assert.equal(got.length, 1, "the server read the client's record once");
  pair.server!.send(new TextEncoder().encode("pong"));
  pair.pump();
  assert.equal(pair.clientEvents.filter((e) => e.type === "data").length, 1);
}

Deno.test("a ticket resumes with an abbreviated handshake: same suite and identity, new keys", () => {
  const resumption = testResumption();
  const { pair: first, session } = fullHandshake(resumption);
  assert.ok(session.ticket !== undefined && session.sessionId.length === 0);
  assert.equal(resumption.cache!.size, 0, "a ticketed session takes no cache entry");
  const second = reconnect(resumption, session);
  const server = completed(second.serverEvents);
  assert.equal(server?.resumed, "ticket");
  assert.equal(completed(second.clientEvents)?.resumed, "ticket");
  assert.equal(server?.suite, completed(first.serverEvents)?.suite);
  assert.equal(server?.identity, "Qt DTLS example client");
  assertExchangesData(second);
});

Deno.test("a client without tickets resumes by session ID from the cache", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption, { tickets: false });
  assert.equal(session.ticket, undefined);
  assert.equal(session.sessionId.length, 32);
  assert.equal(resumption.cache!.size, 1);
  const second = reconnect(resumption, session, { client: { tickets: false } });
  assert.equal(completed(second.serverEvents)?.resumed, "session_id");
  assert.equal(completed(second.clientEvents)?.resumed, "session_id");
  assertExchangesData(second);
});

Deno.test("a resumed ticket is renewed, sealed under the current first key", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption);
  resumption.tickets!.setSecrets([SECRET_B, SECRET_A]);
  const second = reconnect(resumption, session);
  assert.equal(completed(second.serverEvents)?.resumed, "ticket");
  const renewed = saved(second);
  assert.notDeepEqual(renewed.ticket, session.ticket);
  // Only B now: the renewed ticket resumes, the old one does not.
  resumption.tickets!.setSecrets([SECRET_B]);
  const third = reconnect(resumption, renewed, { seed: "third" });
  assert.equal(completed(third.serverEvents)?.resumed, "ticket");
  const fourth = reconnect(resumption, session, { seed: "fourth" });
  assert.equal(completed(fourth.serverEvents)?.resumed, undefined);
  const refused = fourth.serverEvents.find((e) => e.type === "ticket_refused");
  assert.equal(refused?.type === "ticket_refused" && refused.reason, "unknown_key");
});

Deno.test("a ticket from before a restart resumes on a server with the same ticket keys", () => {
  const { session } = fullHandshake(testResumption({ secrets: [SECRET_A] }));
  const restarted = testResumption({ secrets: [SECRET_A] });
  assert.equal(completed(reconnect(restarted, session).serverEvents)?.resumed, "ticket");
  const otherKeys = testResumption({ secrets: [SECRET_B] });
  assert.equal(completed(reconnect(otherKeys, session).serverEvents)?.resumed, undefined);
});

// Datagram indices per direction of an abbreviated handshake:
// c2s: 0 = ClientHello, 1 = ClientHello with cookie, 2 = ChangeCipherSpec + Finished;
// s2c: 0 = HelloVerifyRequest, 1 = ServerHello, NewSessionTicket, ChangeCipherSpec, Finished.
const FLIGHTS = [
  { name: "the ClientHello", direction: "c2s", index: 0 },
  { name: "the HelloVerifyRequest", direction: "s2c", index: 0 },
  { name: "the ClientHello with its cookie", direction: "c2s", index: 1 },
  { name: "the server's flight", direction: "s2c", index: 1 },
  { name: "the client's final flight", direction: "c2s", index: 2 },
] as const;

for (const kind of ["ticket", "session_id"] as const) {
  for (const fate of ["drop", "duplicate", "delay"] as Fate[]) {
    for (const flight of FLIGHTS) {
      Deno.test(`resumption by ${kind} completes when ${flight.name} is ${fate === "delay" ? "reordered" : fate + "ped"}`, () => {
        const resumption = testResumption();
        const tickets = kind === "ticket";
        const { session } = fullHandshake(resumption, { tickets });
        const pair = reconnect(resumption, session, {
          seed: `${kind}/${fate}/${flight.name}`,
          client: { tickets },
          script: (direction, index) =>
            direction === flight.direction && index === flight.index ? fate : "deliver",
        });
        assert.equal(pair.client.isEstablished, true, "client established");
        assert.equal(pair.server?.isEstablished, true, "server established");
        assert.equal(completed(pair.serverEvents)?.resumed, kind);
        assertExchangesData(pair);
      });
    }
  }
}

Deno.test("resumption completes with every second datagram lost", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption);
  const pair = reconnect(resumption, session, {
    script: (_d, index) => (index % 2 === 1 ? "drop" : "deliver"),
  });
  assert.equal(pair.server?.isEstablished, true);
  assert.equal(completed(pair.serverEvents)?.resumed, "ticket");
});

Deno.test("the abbreviated flight is fragmented to a small MTU and reassembled", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption);
  // The ClientHello, which a server takes only whole, keeps the default MTU.
  const pair = reconnect(resumption, session, { serverMtu: 100 });
  assert.equal(completed(pair.serverEvents)?.resumed, "ticket");
  const fromServer = pair.wire.filter((w) => w.direction === "s2c");
  for (const { datagram } of fromServer) assert.ok(datagram.length <= 100, `${datagram.length} B`);
  assert.ok(fromServer.length > 3, "the flight was split");
  assertExchangesData(pair);
});

Deno.test("an identity removed from the key store makes its ticket and session ID full handshakes", () => {
  for (const tickets of [true, false]) {
    const resumption = testResumption();
    const { session } = fullHandshake(resumption, { tickets });
    const pair = reconnect(resumption, session, {
      client: { tickets },
      server: { lookupPsk: () => undefined },
    });
    assert.equal(completed(pair.serverEvents), undefined, "no key: the full handshake fails too");
    if (tickets) {
      const refused = pair.serverEvents.find((e) => e.type === "ticket_refused");
      assert.equal(refused?.type === "ticket_refused" && refused.reason, "identity_unknown");
    } else {
      assert.equal(resumption.cache!.size, 0, "the stale session is forgotten");
    }
  }
});

Deno.test("an identity whose key changed does not resume its session", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption);
  const newKey = KEY.map((b) => b ^ 0xff);
  const pair = reconnect(resumption, session, {
    server: { lookupPsk: () => newKey },
    client: { psk: newKey },
  });
  assert.equal(completed(pair.serverEvents)?.resumed, undefined, "a full handshake instead");
  assert.equal(pair.server?.isEstablished, true, "with the new key");
  const refused = pair.serverEvents.find((e) => e.type === "ticket_refused");
  assert.equal(refused?.type === "ticket_refused" && refused.reason, "identity_unknown");
});

Deno.test("a ticket resumes only its own identity, whatever the client now says", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption);
  const pair = reconnect(resumption, session, {
    client: { identity: new TextEncoder().encode("someone else") },
  });
  assert.equal(completed(pair.serverEvents)?.identity, "Qt DTLS example client");
});

Deno.test("a ticket resumes only its suite: one no longer offered makes a full handshake", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption);
  const other = PSK_SUITES.filter((s) => s.id !== session.suiteId);
  const pair = reconnect(resumption, session, { client: { suites: other } });
  const server = completed(pair.serverEvents);
  assert.equal(server?.resumed, undefined);
  assert.notEqual(suiteByName(server!.suite).id, session.suiteId);
  const refused = pair.serverEvents.find((e) => e.type === "ticket_refused");
  assert.equal(refused?.type === "ticket_refused" && refused.reason, "mismatch");
});

Deno.test("an expired ticket makes a full handshake", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption);
  const pair = reconnect(resumption, session, { start: 1_000_000 + DAY + 1 });
  assert.equal(completed(pair.serverEvents)?.resumed, undefined);
  const refused = pair.serverEvents.find((e) => e.type === "ticket_refused");
  assert.equal(refused?.type === "ticket_refused" && refused.reason, "expired");
});

Deno.test("a tampered ticket makes a full handshake, and the client does not resume", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption);
  const ticket = session.ticket!.slice();
  ticket[ticket.length - 1]! ^= 1;
  const pair = reconnect(resumption, { ...session, ticket });
  assert.equal(completed(pair.serverEvents)?.resumed, undefined);
  assert.equal(completed(pair.clientEvents)?.resumed, undefined);
  const refused = pair.serverEvents.find((e) => e.type === "ticket_refused");
  assert.equal(refused?.type === "ticket_refused" && refused.reason, "invalid");
});

Deno.test("a session with an extended master secret is not resumed without the extension (RFC 7627 §5.3)", () => {
  const resumption = testResumption();
  const { session } = fullHandshake(resumption);
  const pair = reconnect(resumption, session, { client: { extendedMasterSecret: false } });
  assert.equal(pair.server?.isEstablished ?? false, false);
  assert.equal(sentAlert(pair.serverEvents), "handshake_failure");
});

Deno.test("a handshake without extended master secret leaves nothing to resume", () => {
  const resumption = testResumption();
  const pair = new Pair({
    seed: "no ems",
    server: { resumption },
    client: { extendedMasterSecret: false, tickets: false },
  });
  pair.run(120_000, true);
  assert.equal(pair.server?.isEstablished, true);
  assert.equal(pair.clientEvents.find((e) => e.type === "resumable_session"), undefined);
  assert.equal(resumption.cache!.size, 0);
});

Deno.test("a session ID the server does not know makes a full handshake", () => {
  const resumption = testResumption({ tickets: false });
  const { session } = fullHandshake(resumption, { tickets: false });
  const pair = reconnect(testResumption({ tickets: false }), session, {
    client: { tickets: false },
  });
  assert.equal(completed(pair.serverEvents)?.resumed, undefined);
  assert.equal(pair.server?.isEstablished, true);
});

Deno.test("without resumption the server gives no session ID and no ticket", () => {
  const pair = new Pair({ seed: "off" });
  pair.run(120_000, true);
  assert.equal(pair.server?.isEstablished, true);
  assert.equal(pair.clientEvents.find((e) => e.type === "resumable_session"), undefined);
});
