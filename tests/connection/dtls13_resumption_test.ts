/**
 * DTLS 1.3 resumption (RFC 8446 §2.2, §4.6.1): a NewSessionTicket after the
 * handshake, sealed under the same ticket keys as 1.2's, and a later
 * handshake on its resumption PSK, with or without the certificate the
 * first one used; every ticket that cannot serve is refused with a reason
 * and the handshake falls back to what else the client offered.
 */

import assert from "node:assert/strict";
import type { SavedSession } from "../../src/handshake/driver.ts";
import { CERT_TIME, serverCertificate, trustingClient } from "../helpers/certificates.ts";
import { testPki } from "../helpers/pki.ts";
import { completed, DAY, saved, testResumption } from "../helpers/resumption.ts";
import { KEY, Pair, sentAlert } from "../helpers/sim.ts";

const pki = testPki();

function refusals(pair: Pair): string[] {
  return pair.serverEvents.flatMap((e) => e.type === "ticket_refused" ? [e.reason] : []);
}

/** Bytes the server sent. */
function serverBytes(pair: Pair): number {
  return pair.wire.filter((w) => w.direction === "s2c").reduce((n, w) => n + w.datagram.length, 0);
}

/** A full PSK handshake with tickets on, pumped until the client has its ticket. */
function pskTicket(resumption = testResumption()): { pair: Pair; session: SavedSession } {
  const pair = new Pair({ server: { resumption }, dtls13: {} });
  pair.run();
  pair.pump();
  return { pair, session: saved(pair) };
}

Deno.test("dtls13 resumption: an external PSK's handshake leaves a ticket; the next resumes on it", () => {
  const resumption = testResumption();
  const { pair: first, session } = pskTicket(resumption);
  assert.equal(completed(first.serverEvents)?.resumed, undefined);
  assert.ok(session.ticket !== undefined && session.masterSecret.length === 32);
  assert.ok(session.expiresAt! > first.now + DAY - 2000);
  // The client acknowledged the ticket: nothing of the server's is left to resend.
  assert.equal(
    first.server!.pollTimeout() === undefined || first.server!.pollTimeout()! > first.now + 60_000,
    true,
  );
  const second = new Pair({
    server: { resumption },
    dtls13: { identity: undefined, psk: undefined, resume: session },
  });
  second.now = first.now + 5_000;
  second.run();
  assert.ok(second.client.isEstablished && second.server?.isEstablished);
  const done = completed(second.serverEvents);
  assert.equal(done?.resumed, "ticket");
  assert.equal(done?.version, "DTLS 1.3");
  // The session is the external PSK's: its identity is reported.
  assert.equal(done?.identity, "Qt DTLS example client");
  assert.equal(completed(second.clientEvents)?.resumed, "ticket");
  // No key lookup: the PSK was in the ticket.
  assert.ok(!second.serverEvents.some((e) => e.type === "psk_identity"));
  // And a new ticket came.
  second.pump();
  assert.ok(saved(second).ticket !== undefined);
});

Deno.test("dtls13 resumption: a certificate handshake's ticket resumes without the certificate", () => {
  const resumption = testResumption();
  const server = { ...serverCertificate(pki.rsaCert, pki.rsaKey), resumption };
  const verifyServer = trustingClient().verifyServer!;
  const first = new Pair({
    start: CERT_TIME,
    server,
    dtls13: { identity: undefined, psk: undefined, verifyServer },
  });
  first.run();
  first.pump();
  assert.ok(first.client.isEstablished);
  const session = saved(first);
  const second = new Pair({
    start: CERT_TIME + 1000,
    server,
    dtls13: { identity: undefined, psk: undefined, verifyServer, resume: session },
  });
  second.run();
  assert.equal(completed(second.serverEvents)?.resumed, "ticket");
  assert.equal(completed(second.serverEvents)?.identity, "");
  // The RSA chain (over a kilobyte) and its signature were not sent again.
  assert.ok(
    2 * serverBytes(second) < serverBytes(first),
    `${serverBytes(second)} vs ${serverBytes(first)}`,
  );
});

Deno.test("dtls13 resumption: a ticket under a key we no longer hold is refused; the client's external PSK serves", () => {
  const { session } = pskTicket();
  const other = testResumption({ secrets: [new Uint8Array(32).fill(0xb2)] });
  const pair = new Pair({ server: { resumption: other }, dtls13: { resume: session } });
  pair.run();
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  assert.deepEqual(refusals(pair), ["unknown_key"]);
  const done = completed(pair.serverEvents);
  assert.equal(done?.resumed, undefined);
  assert.equal(done?.identity, "Qt DTLS example client");
});

Deno.test("dtls13 resumption: a refused ticket falls back to the certificate for a client that checks it", () => {
  const resumption = testResumption();
  const server = { ...serverCertificate(pki.ecCert, pki.ecKey), resumption };
  const verifyServer = trustingClient().verifyServer!;
  const first = new Pair({
    start: CERT_TIME,
    server,
    dtls13: { identity: undefined, psk: undefined, verifyServer },
  });
  first.run();
  first.pump();
  const session = saved(first);
  // The operator rotated the ticket keys away.
  const rotated = {
    ...server,
    resumption: testResumption({ secrets: [new Uint8Array(32).fill(7)] }),
  };
  const pair = new Pair({
    start: CERT_TIME + 1000,
    server: rotated,
    dtls13: { identity: undefined, psk: undefined, verifyServer, resume: session },
  });
  pair.run();
  assert.ok(pair.client.isEstablished && pair.server?.isEstablished);
  assert.deepEqual(refusals(pair), ["unknown_key"]);
  assert.equal(completed(pair.serverEvents)?.resumed, undefined);
  assert.equal(completed(pair.clientEvents)?.resumed, undefined);
});

Deno.test("dtls13 resumption: a key replaced in the key file ends its sessions; with nothing else offered, handshake_failure", () => {
  const resumption = testResumption();
  const { session } = pskTicket(resumption);
  const replaced = new Uint8Array(KEY.length).fill(0x55);
  const pair = new Pair({
    server: { resumption, lookupPsk: () => replaced },
    dtls13: { identity: undefined, psk: undefined, resume: session },
  });
  pair.run();
  assert.ok(!pair.client.isEstablished);
  // Refused before any state: the endpoint answers with the alert alone, and says why.
  assert.equal(pair.server, undefined);
  const outcome = pair.lastOutcome;
  assert.equal(outcome?.kind, "alert");
  assert.match(outcome?.kind === "alert" ? outcome.reason ?? "" : "", /identity_unknown/);
  assert.ok(
    pair.clientEvents.some((e) =>
      e.type === "alert" && e.direction === "received" && e.description === "handshake_failure"
    ),
  );
});

Deno.test("dtls13 resumption: a binder made with the wrong resumption PSK is decrypt_error", () => {
  const resumption = testResumption();
  const { session } = pskTicket(resumption);
  const forged = { ...session, masterSecret: session.masterSecret.map((b) => b ^ 1) };
  const pair = new Pair({
    server: { resumption },
    dtls13: { identity: undefined, psk: undefined, resume: forged },
  });
  pair.run(60_000, true);
  assert.ok(!pair.client.isEstablished);
  assert.equal(sentAlert(pair.serverEvents), "decrypt_error");
});

Deno.test("dtls13 resumption: a DTLS 1.2 session's ticket is not resumed by 1.3 (mismatch), nor a 1.3 ticket by 1.2", () => {
  const resumption = testResumption();
  const sealer = resumption.tickets!;
  const { session } = pskTicket(resumption);
  const ticket12 = sealer.seal({
    issuedAt: 1_000_000,
    suiteId: 0xc0a4,
    masterSecret: new Uint8Array(48).fill(3),
    extendedMasterSecret: true,
    encryptThenMac: false,
    identityBytes: new TextEncoder().encode("Qt DTLS example client"),
    pskCheck: new Uint8Array(16),
    serverSpkiSha256: new Uint8Array(0),
  });
  const pair = new Pair({
    server: { resumption },
    dtls13: { resume: { ...session, ticket: ticket12 } },
  });
  pair.run();
  assert.deepEqual(refusals(pair), ["mismatch"]);
  assert.equal(completed(pair.serverEvents)?.resumed, undefined);
  // The 1.2 client offering the 1.3 ticket: a full handshake.
  const twelve = new Pair({
    server: { resumption },
    client: { resume: { ...session, masterSecret: new Uint8Array(48) } },
  });
  twelve.run();
  assert.ok(twelve.client.isEstablished);
  assert.equal(completed(twelve.serverEvents)?.resumed, undefined);
  assert.deepEqual(refusals(twelve), ["mismatch"]);
});
