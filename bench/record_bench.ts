/**
 * Record protection per suite and size: the per-datagram crypto cost.
 * `deno task bench`
 */
import { nobleProvider } from "../src/crypto/noble.ts";
import { createProtection } from "../src/record/protection.ts";
import { CIPHER_SUITES } from "../src/record/suites.ts";
import { ContentType, DTLS_1_2 } from "../src/record/header.ts";

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

for (const suite of CIPHER_SUITES) {
  const keys = {
    key: random(suite.keyLength),
    fixedIv: random(suite.fixedIvLength),
    macKey: random(suite.macKeyLength),
  };
  const options = { encryptThenMac: true, random };
  const sender = createProtection(suite, keys, nobleProvider, options);
  const receiver = createProtection(suite, keys, nobleProvider, options);
  for (const size of [64, 1200]) {
    const plaintext = random(size);
    let seq = 0;
    Deno.bench({
      name: `protect ${suite.name} ${size} B`,
      group: `protect ${size} B`,
      fn: () => {
        sender.protect(ContentType.ApplicationData, DTLS_1_2, 1, seq++, plaintext);
      },
    });
    const sealed = sender.protect(ContentType.ApplicationData, DTLS_1_2, 1, 7, plaintext);
    Deno.bench({
      name: `unprotect ${suite.name} ${size} B`,
      group: `unprotect ${size} B`,
      fn: () => {
        if (receiver.unprotect(ContentType.ApplicationData, DTLS_1_2, 1, 7, sealed) === null) {
          throw new Error("bench record did not authenticate");
        }
      },
    });
  }
}
