/**
 * No state before the cookie (RFC 6347 §4.2.1): floods of ClientHellos from
 * spoofed addresses, and ClientHellos with cookies that must not verify, each
 * earn one HelloVerifyRequest no larger than themselves and leave nothing
 * behind, while a legitimate client connects as usual.
 */
import assert from "node:assert/strict";
import { COOKIE_LENGTH } from "../../src/cookie/cookie.ts";
import { parseHandshakeFragments } from "../../src/handshake/fragments.ts";
import { decodeHelloVerifyRequest } from "../../src/handshake/messages.ts";
import { parseRecords } from "../../src/record/header.ts";
import { converse, testClient, testEndpoint } from "../helpers/drive.ts";

const FLOOD = 5_000;

/** A spoofed source: distinct address and port per index. */
function spoofed(i: number): string {
  return `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}:${1024 + (i % 60_000)}`;
}

/** The cookie a HelloVerifyRequest carries. */
function cookieOf(hvr: Uint8Array): Uint8Array {
  const record = parseRecords(hvr).records[0]!;
  return decodeHelloVerifyRequest(parseHandshakeFragments(record.fragment)[0]!.body).cookie;
}

/** A client's first ClientHello, and the one it sends with the cookie of `peer`. */
function hellos(seed: string, peer: string, now: number) {
  const endpoint = testEndpoint({}, `${seed}/minter`);
  const client = testClient(seed, now);
  const first = client.pollTransmit()!;
  const hvr = endpoint.handleDatagram(first, peer, now);
  assert.equal(hvr.kind, "hello_verify_request");
  return { endpoint, client, first, hvr: hvr.datagram };
}

Deno.test("flood: 5,000 spoofed ClientHellos keep no state; a legitimate client completes meanwhile", () => {
  const endpoint = testEndpoint();
  const now = 1_000_000;
  const attacker = testClient("attacker", now, {});
  const hello = attacker.pollTransmit()!;
  const legit = testClient("legit", now);
  let answered = 0;
  for (let i = 0; i < FLOOD; i++) {
    const out = endpoint.handleDatagram(hello, spoofed(i), now + i);
    assert.equal(out.kind, "hello_verify_request");
    assert.ok(out.datagram.length <= hello.length, "no amplification");
    answered++;
    if (i === FLOOD / 2) {
      // Half way through the flood, a real client connects.
      converse(endpoint, legit, "192.0.2.7:4000", now + i);
      assert.equal(legit.isEstablished, true);
    }
    assert.ok(endpoint.size <= 1, "only the legitimate client holds state");
  }
  assert.equal(answered, FLOOD, "one HelloVerifyRequest per ClientHello");
  assert.equal(endpoint.size, 1);
  assert.equal(endpoint.halfOpen, 0);
  assert.equal(endpoint.rateSources, 1, "the rate limit tracks only verified sources");
  assert.equal(endpoint.reassemblyBytes, 0);
});

Deno.test("flood: a datagram of many ClientHellos earns one HelloVerifyRequest, no larger", () => {
  const endpoint = testEndpoint();
  const hello = testClient("many", 0).pollTransmit()!;
  const datagram = new Uint8Array(hello.length * 5);
  for (let i = 0; i < 5; i++) datagram.set(hello, i * hello.length);
  const out = endpoint.handleDatagram(datagram, "10.0.0.1:1", 0);
  assert.equal(out.kind, "hello_verify_request");
  assert.ok(out.datagram.length <= hello.length);
  assert.equal(parseRecords(out.datagram).records.length, 1);
  assert.equal(endpoint.size, 0);
});

Deno.test("flood: a cookie minted for another address gets a new HelloVerifyRequest", () => {
  const now = 5_000_000;
  const { endpoint, client, hvr } = hellos("moved", "10.0.0.1:1000", now);
  client.handleDatagram(hvr, now);
  const withCookie = client.pollTransmit()!;
  for (const other of ["10.0.0.2:1000", "10.0.0.1:1001"]) {
    const out = endpoint.handleDatagram(withCookie, other, now);
    assert.equal(out.kind, "hello_verify_request");
    assert.equal(out.cookie, "invalid");
    assert.ok(out.datagram.length <= withCookie.length);
  }
  assert.equal(endpoint.size, 0);
  // The address it was minted for is let in.
  assert.equal(endpoint.handleDatagram(withCookie, "10.0.0.1:1000", now).kind, "connection");
});

Deno.test("flood: an expired cookie gets a new HelloVerifyRequest", () => {
  const now = 5_000_000;
  const { endpoint, client, hvr } = hellos("expired", "10.0.0.1:1000", now);
  client.handleDatagram(hvr, now);
  const withCookie = client.pollTransmit()!;
  const out = endpoint.handleDatagram(withCookie, "10.0.0.1:1000", now + 3 * 60_000);
  assert.equal(out.kind, "hello_verify_request");
  assert.equal(out.cookie, "expired");
  assert.equal(endpoint.size, 0);
});

Deno.test("flood: a cookie made with a retired secret gets a new HelloVerifyRequest", () => {
  const now = 5_000_000;
  const { endpoint, client, hvr } = hellos("retired", "10.0.0.1:1000", now);
  client.handleDatagram(hvr, now);
  const withCookie = client.pollTransmit()!;
  endpoint.rotateCookieSecret(now);
  endpoint.rotateCookieSecret(now);
  const out = endpoint.handleDatagram(withCookie, "10.0.0.1:1000", now);
  assert.equal(out.kind, "hello_verify_request");
  assert.equal(out.cookie, "expired");
  assert.equal(endpoint.size, 0);
});

Deno.test("flood: a cookie of the previous secret still verifies after one rotation", () => {
  const now = 5_000_000;
  const { endpoint, client, hvr } = hellos("rotated", "10.0.0.1:1000", now);
  client.handleDatagram(hvr, now);
  const withCookie = client.pollTransmit()!;
  endpoint.rotateCookieSecret(now);
  assert.equal(endpoint.handleDatagram(withCookie, "10.0.0.1:1000", now).kind, "connection");
});

Deno.test("flood: forged cookies of the right length never verify", () => {
  const now = 5_000_000;
  const { endpoint, client, hvr } = hellos("forged", "10.0.0.1:1000", now);
  const cookie = cookieOf(hvr);
  assert.equal(cookie.length, COOKIE_LENGTH);
  client.handleDatagram(hvr, now);
  const withCookie = client.pollTransmit()!;
  const at = indexOf(withCookie, cookie);
  assert.ok(at > 0);
  for (let i = 0; i < COOKIE_LENGTH; i++) {
    const forged = withCookie.slice();
    forged[at + i]! ^= 0x01;
    const out = endpoint.handleDatagram(forged, "10.0.0.1:1000", now);
    assert.equal(out.kind, "hello_verify_request", `cookie byte ${i} flipped`);
  }
  assert.equal(endpoint.size, 0);
});

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
