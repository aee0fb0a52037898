/**
 * Record protection per suite, size and crypto provider: the per-datagram
 * crypto cost. `deno task bench`
 */
import { nobleProvider } from "../src/crypto/noble.ts";
import { nodeProvider } from "../src/crypto/node.ts";
import { createProtection } from "../src/record/protection.ts";
import { CIPHER_SUITES } from "../src/record/suites.ts";
import { ContentType, DTLS_1_2, parseRecords } from "../src/record/header.ts";
import { Dtls13Protection } from "../src/record/protection13.ts";
import { SUITES_13 } from "../src/record/suites13.ts";

/** The header shape our connections write: 16-bit sequence numbers, with the length. */
const SHAPE = { seqLength: 2, withLength: true } as const;

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

for (const provider of [nobleProvider, nodeProvider]) {
  for (const suite of CIPHER_SUITES) {
    const keys = {
      key: random(suite.keyLength),
      fixedIv: random(suite.fixedIvLength),
      macKey: random(suite.macKeyLength),
    };
    const options = { encryptThenMac: true, random };
    const sender = createProtection(suite, keys, provider, options);
    const receiver = createProtection(suite, keys, provider, options);
    for (const size of [64, 1200]) {
      const plaintext = random(size);
      let seq = 0;
      Deno.bench({
        name: `protect ${suite.name} ${size} B: ${provider.name}`,
        group: `protect ${size} B`,
        fn: () => {
          sender.protect(ContentType.ApplicationData, DTLS_1_2, 1, seq++, plaintext);
        },
      });
      const sealed = sender.protect(ContentType.ApplicationData, DTLS_1_2, 1, 7, plaintext);
      Deno.bench({
        name: `unprotect ${suite.name} ${size} B: ${provider.name}`,
        group: `unprotect ${size} B`,
        fn: () => {
          if (receiver.unprotect(ContentType.ApplicationData, DTLS_1_2, 1, 7, sealed) === null) {
            throw new Error("bench record did not authenticate");
          }
        },
      });
    }
  }
}

// DTLS 1.3 records (RFC 9147): the unified header with its record number encrypted, beside 1.2's.
for (const provider of [nobleProvider, nodeProvider]) {
  for (const suite of SUITES_13) {
    const keys = { iv: random(12), snKey: random(suite.keyLength) };
    const key = random(suite.keyLength);
    const sender = new Dtls13Protection(
      provider,
      provider.aead(suite.aead, key),
      keys,
      suite.snCipher,
    );
    for (const size of [64, 1200]) {
      const plaintext = random(size);
      let seq = 0;
      Deno.bench({
        name: `protect13 ${suite.name} ${size} B: ${provider.name}`,
        group: `protect ${size} B`,
        fn: () => {
          sender.seal(ContentType.ApplicationData, plaintext, 3, seq++ % 65536, SHAPE);
        },
      });
    }
  }
}

// Parsing a datagram: views into it, no copies.
const datagram = new Uint8Array(13 + 64 + 24);
datagram.set([23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 0, 88]);
Deno.bench({
  name: "parseRecords: one 88-byte record",
  group: "parse",
  fn: () => {
    if (parseRecords(datagram).records.length !== 1) throw new Error("bench parse failed");
  },
});
