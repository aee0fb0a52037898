/**
 * The TLS 1.3 key schedule against RFC 8448's traces (§3, a full
 * handshake; §4, a resumption's binder), under the "tls13 " label prefix
 * those traces use, on both providers; and the DTLS 1.3 prefix "dtls13"
 * (RFC 9147 §5.9) against HKDF-Expand-Label computed here by hand with
 * node:crypto's HMAC.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { nobleProvider } from "../../src/crypto/noble.ts";
import { nodeProvider } from "../../src/crypto/node.ts";
import {
  derivedSecret,
  deriveSecret,
  DTLS13_LABEL_PREFIX,
  emptyHash,
  finishedKey,
  finishedMac,
  hkdfExpand,
  hkdfExpandLabel,
  hkdfExtract,
  nextTrafficSecret,
  TLS13_LABEL_PREFIX,
  trafficKeys,
} from "../../src/handshake/tls13_keys.ts";
import { hex, toHex } from "../crypto/hex.ts";

const TLS13 = TLS13_LABEL_PREFIX;
const EMPTY = new Uint8Array(0);

Deno.test("tls13 keys: a secret changed in place is keyed afresh, not from the HMAC kept for its old bytes", () => {
  const secret = new Uint8Array(32).fill(1);
  const before = deriveSecret(nobleProvider, "sha256", secret, "x", EMPTY);
  secret.fill(2);
  const after = deriveSecret(nobleProvider, "sha256", secret, "x", EMPTY);
  assert.deepEqual(
    after,
    deriveSecret(nobleProvider, "sha256", new Uint8Array(32).fill(2), "x", EMPTY),
  );
  assert.notDeepEqual(after, before);
});

for (const [name, provider] of [["node", nodeProvider], ["noble", nobleProvider]] as const) {
  Deno.test(`tls13 keys (${name}): RFC 8448 §3, the full handshake's secrets and keys`, () => {
    const zeros = new Uint8Array(32);
    const early = hkdfExtract(provider, "sha256", EMPTY, zeros);
    assert.equal(toHex(early), "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a");
    // The empty hashes are constants: the provider's own hash of nothing agrees.
    for (const h of ["sha256", "sha384"] as const) {
      assert.deepEqual(emptyHash(provider, h), provider.hash(h, EMPTY));
    }
    assert.equal(
      toHex(emptyHash(provider, "sha256")),
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    const derived = derivedSecret(provider, "sha256", early, TLS13);
    assert.equal(
      toHex(derived),
      "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba",
    );
    const shared = hex("8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d");
    const handshake = hkdfExtract(provider, "sha256", derived, shared);
    assert.equal(
      toHex(handshake),
      "1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac",
    );
    const helloHash = hex("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8");
    const clientHs = deriveSecret(provider, "sha256", handshake, "c hs traffic", helloHash, TLS13);
    const serverHs = deriveSecret(provider, "sha256", handshake, "s hs traffic", helloHash, TLS13);
    assert.equal(
      toHex(clientHs),
      "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21",
    );
    assert.equal(
      toHex(serverHs),
      "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38",
    );
    const serverKeys = trafficKeys(provider, "sha256", serverHs, 16, TLS13);
    assert.equal(toHex(serverKeys.key), "3fce516009c21727d0f2e4e86ee403bc");
    assert.equal(toHex(serverKeys.iv), "5d313eb2671276ee13000b30");
    const clientKeys = trafficKeys(provider, "sha256", clientHs, 16, TLS13);
    assert.equal(toHex(clientKeys.key), "dbfaa693d1762c5b666af5d950258d01");
    assert.equal(toHex(clientKeys.iv), "5bd3c71b836e0b76bb73265f");

    const master = hkdfExtract(
      provider,
      "sha256",
      derivedSecret(provider, "sha256", handshake, TLS13),
      zeros,
    );
    assert.equal(toHex(master), "18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919");
    const serverFinishedHash = hex(
      "9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13",
    );
    const clientAp = deriveSecret(
      provider,
      "sha256",
      master,
      "c ap traffic",
      serverFinishedHash,
      TLS13,
    );
    const serverAp = deriveSecret(
      provider,
      "sha256",
      master,
      "s ap traffic",
      serverFinishedHash,
      TLS13,
    );
    assert.equal(
      toHex(clientAp),
      "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5",
    );
    assert.equal(
      toHex(serverAp),
      "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643",
    );
    assert.equal(
      toHex(trafficKeys(provider, "sha256", serverAp, 16, TLS13).key),
      "9f02283b6c9c07efc26bb9f2ac92e356",
    );
    assert.equal(
      toHex(trafficKeys(provider, "sha256", clientAp, 16, TLS13).iv),
      "5b78923dee08579033e523d9",
    );
    const clientFinishedHash = hex(
      "209145a96ee8e2a122ff810047cc952684658d6049e86429426db87c54ad143d",
    );
    const resumptionMaster = deriveSecret(
      provider,
      "sha256",
      master,
      "res master",
      clientFinishedHash,
      TLS13,
    );
    assert.equal(
      toHex(resumptionMaster),
      "7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c",
    );
    // The ticket's PSK: HKDF-Expand-Label(res master, "resumption", ticket_nonce 0000, 32).
    assert.equal(
      toHex(
        hkdfExpandLabel(provider, "sha256", resumptionMaster, "resumption", hex("0000"), 32, TLS13),
      ),
      "4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3",
    );
  });

  Deno.test(`tls13 keys (${name}): RFC 8448 §4, the PSK binder`, () => {
    const psk = hex("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3");
    const early = hkdfExtract(provider, "sha256", EMPTY, psk);
    assert.equal(toHex(early), "9b2188e9b2fc6d64d71dc329900e20bb41915000f678aa839cbb797cb7d8332c");
    const binderKey = deriveSecret(
      provider,
      "sha256",
      early,
      "res binder",
      emptyHash(provider, "sha256"),
      TLS13,
    );
    assert.equal(
      toHex(binderKey),
      "69fe131a3bbad5d63c64eebcc30e395b9d8107726a13d074e389dbc8a4e47256",
    );
    const key = finishedKey(provider, "sha256", binderKey, TLS13);
    assert.equal(toHex(key), "5588673e72cb59c87d220caffe94f2dea9a3b1609f7d50e90a48227db9ed7eaa");
    const partialHelloHash = hex(
      "63224b2e4573f2d3454ca84b9d009a04f6be9e05711a8396473aefa01e924a14",
    );
    assert.equal(
      toHex(finishedMac(provider, "sha256", key, partialHelloHash)),
      "3add4fb2d8fdf822a0ca3cf7678ef5e88dae990141c5924d57bb6fa31b9e5f9d",
    );
  });
}

/** HKDF-Expand-Label computed here from RFC 8446 §7.1's definition, with node:crypto's HMAC. */
function expandLabelByHand(
  hash: "sha256" | "sha384",
  secret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): string {
  const fullLabel = Buffer.from(`dtls13${label}`, "ascii");
  const info = Buffer.concat([
    Buffer.from([length >> 8, length & 0xff, fullLabel.length]),
    fullLabel,
    Buffer.from([context.length]),
    Buffer.from(context),
  ]);
  let previous: Buffer = Buffer.alloc(0);
  let out: Buffer = Buffer.alloc(0);
  for (let i = 1; out.length < length; i++) {
    previous = createHmac(hash, secret).update(previous).update(info).update(Buffer.from([i]))
      .digest();
    out = Buffer.concat([out, previous]);
  }
  return out.subarray(0, length).toString("hex");
}

Deno.test('tls13 keys: the DTLS 1.3 prefix is "dtls13", checked against HKDF-Expand-Label by hand', () => {
  assert.equal(DTLS13_LABEL_PREFIX, "dtls13");
  const secret = hex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
  for (const provider of [nodeProvider, nobleProvider]) {
    assert.equal(
      toHex(trafficKeys(provider, "sha256", secret, 16).key),
      expandLabelByHand("sha256", secret, "key", EMPTY, 16),
    );
    assert.equal(
      toHex(trafficKeys(provider, "sha256", secret, 16).snKey),
      expandLabelByHand("sha256", secret, "sn", EMPTY, 16),
    );
    // A length over one hash block, and SHA-384.
    assert.equal(
      toHex(hkdfExpandLabel(provider, "sha384", secret, "c e traffic", hex("0102"), 100)),
      expandLabelByHand("sha384", secret, "c e traffic", hex("0102"), 100),
    );
    assert.equal(
      toHex(nextTrafficSecret(provider, "sha256", secret)),
      expandLabelByHand("sha256", secret, "traffic upd", EMPTY, 32),
    );
    // And differs from TLS 1.3's.
    assert.notEqual(
      toHex(trafficKeys(provider, "sha256", secret, 16).key),
      toHex(trafficKeys(provider, "sha256", secret, 16, TLS13).key),
    );
  }
});

Deno.test("tls13 keys: HKDF-Expand refuses lengths it cannot make; a label or context over 255 bytes is refused", () => {
  const prk = new Uint8Array(32).fill(1);
  assert.throws(() => hkdfExpand(nodeProvider, "sha256", prk, EMPTY, 0), RangeError);
  assert.throws(() => hkdfExpand(nodeProvider, "sha256", prk, EMPTY, 255 * 32 + 1), RangeError);
  assert.equal(hkdfExpand(nodeProvider, "sha256", prk, EMPTY, 255 * 32).length, 255 * 32);
  assert.throws(
    () => hkdfExpandLabel(nodeProvider, "sha256", prk, "x".repeat(250), EMPTY, 32),
    RangeError,
  );
  assert.throws(
    () => hkdfExpandLabel(nodeProvider, "sha256", prk, "key", new Uint8Array(256), 32),
    RangeError,
  );
});
