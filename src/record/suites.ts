/**
 * The cipher suites we implement, as data: what the record layer and the key
 * schedule need to know about each.
 *
 * @module
 */

import type { AeadName, HashName } from "../crypto/provider.ts";

/**
 * Key exchange family: a pre-shared key (RFC 4279), ECDHE with one
 * (RFC 5489), or ECDHE signed by a certificate's ECDSA or RSA key (RFC 8422).
 */
export type KeyExchange = "psk" | "ecdhe_psk" | "ecdhe_ecdsa" | "ecdhe_rsa";

/** A cipher suite's parameters (RFC 5246 §6.3 key block sizes). */
export interface CipherSuite {
  /** IANA code point. */
  readonly id: number;
  /** IANA name. */
  readonly name: string;
  /** Key exchange. */
  readonly kx: KeyExchange;
  /** PRF hash (also the HMAC hash of CBC suites). */
  readonly prfHash: HashName;
  /** Bulk cipher. */
  readonly cipher:
    | { readonly kind: "aead"; readonly aead: AeadName; readonly explicitNonce: boolean }
    | { readonly kind: "cbc"; readonly macHash: HashName; readonly macLength: number };
  /** enc_key_length. */
  readonly keyLength: number;
  /** fixed_iv_length (AEAD salt / ChaCha IV); 0 for CBC (its IV is per record). */
  readonly fixedIvLength: number;
  /** mac_key_length; 0 for AEAD. */
  readonly macKeyLength: number;
}

const gcm = (
  id: number,
  name: string,
  keyLength: number,
  prfHash: HashName,
  kx: KeyExchange = "psk",
): CipherSuite => ({
  id,
  name,
  kx,
  prfHash,
  cipher: { kind: "aead", aead: "aes-gcm", explicitNonce: true },
  keyLength,
  fixedIvLength: 4,
  macKeyLength: 0,
});

const ccm = (
  id: number,
  name: string,
  keyLength: number,
  aead: AeadName,
  kx: KeyExchange = "psk",
): CipherSuite => ({
  id,
  name,
  kx,
  prfHash: "sha256",
  cipher: { kind: "aead", aead, explicitNonce: true },
  keyLength,
  fixedIvLength: 4,
  macKeyLength: 0,
});

const chacha = (id: number, name: string, kx: KeyExchange): CipherSuite => ({
  id,
  name,
  kx,
  prfHash: "sha256",
  cipher: { kind: "aead", aead: "chacha20-poly1305", explicitNonce: false },
  keyLength: 32,
  fixedIvLength: 12,
  macKeyLength: 0,
});

const cbc = (id: number, name: string, kx: KeyExchange): CipherSuite => ({
  id,
  name,
  kx,
  prfHash: "sha256",
  cipher: { kind: "cbc", macHash: "sha256", macLength: 32 },
  keyLength: 16,
  fixedIvLength: 0,
  macKeyLength: 32,
});

/**
 * Every suite, in server preference order: AEAD with forward secrecy first,
 * then plain-PSK AEADs (faster ones first: ChaCha20-Poly1305 costs a quarter
 * of node:crypto's AES-GCM per short record, both in constant time), then
 * the certificate suites, then CBC.
 */
export const CIPHER_SUITES: readonly CipherSuite[] = [
  chacha(0xccac, "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256", "ecdhe_psk"),
  chacha(0xccab, "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256", "psk"),
  gcm(0x00a8, "TLS_PSK_WITH_AES_128_GCM_SHA256", 16, "sha256"),
  gcm(0x00a9, "TLS_PSK_WITH_AES_256_GCM_SHA384", 32, "sha384"),
  ccm(0xc0a4, "TLS_PSK_WITH_AES_128_CCM", 16, "aes-ccm"),
  ccm(0xc0a5, "TLS_PSK_WITH_AES_256_CCM", 32, "aes-ccm"),
  ccm(0xc0a8, "TLS_PSK_WITH_AES_128_CCM_8", 16, "aes-ccm-8"),
  ccm(0xc0a9, "TLS_PSK_WITH_AES_256_CCM_8", 32, "aes-ccm-8"),
  // Certificate suites (RFC 5289, RFC 7905, RFC 7251), usable only with a
  // certificate of their key type; after the PSK ones, so that a client
  // offering both, which has a key, is served with it.
  gcm(0xc02b, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 16, "sha256", "ecdhe_ecdsa"),
  gcm(0xc02c, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", 32, "sha384", "ecdhe_ecdsa"),
  chacha(0xcca9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ecdhe_ecdsa"),
  ccm(0xc0ac, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM", 16, "aes-ccm", "ecdhe_ecdsa"),
  ccm(0xc0ae, "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", 16, "aes-ccm-8", "ecdhe_ecdsa"),
  gcm(0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 16, "sha256", "ecdhe_rsa"),
  gcm(0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", 32, "sha384", "ecdhe_rsa"),
  chacha(0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ecdhe_rsa"),
  cbc(0xc037, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256", "ecdhe_psk"),
  cbc(0x00ae, "TLS_PSK_WITH_AES_128_CBC_SHA256", "psk"),
];

/** The suites a pre-shared key authenticates, in the same order. */
export const PSK_SUITES: readonly CipherSuite[] = CIPHER_SUITES.filter((s) =>
  s.kx === "psk" || s.kx === "ecdhe_psk"
);

/** The suites a certificate authenticates (ECDHE_ECDSA, ECDHE_RSA), in the same order. */
export const CERTIFICATE_SUITES: readonly CipherSuite[] = CIPHER_SUITES.filter((s) =>
  s.kx === "ecdhe_ecdsa" || s.kx === "ecdhe_rsa"
);

const byId = new Map(CIPHER_SUITES.map((s) => [s.id, s]));

/** The suite with this code point, if we implement it. */
export function suiteById(id: number): CipherSuite | undefined {
  return byId.get(id);
}

/** The suite with this IANA name; throws for an unknown name (a configuration error). */
export function suiteByName(name: string): CipherSuite {
  const s = CIPHER_SUITES.find((c) => c.name === name);
  if (!s) throw new TypeError(`Cannot find cipher suite: ${name}`);
  return s;
}
