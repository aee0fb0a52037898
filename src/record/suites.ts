/**
 * The cipher suites we implement, as data: what the record layer and the key
 * schedule need to know about each.
 *
 * @module
 */

import type { AeadName, HashName } from "../crypto/provider.ts";

/** Key exchange family. */
export type KeyExchange = "psk" | "ecdhe_psk";

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

const gcm = (id: number, name: string, keyLength: number, prfHash: HashName): CipherSuite => ({
  id,
  name,
  kx: "psk",
  prfHash,
  cipher: { kind: "aead", aead: "aes-gcm", explicitNonce: true },
  keyLength,
  fixedIvLength: 4,
  macKeyLength: 0,
});

const ccm = (id: number, name: string, keyLength: number, aead: AeadName): CipherSuite => ({
  id,
  name,
  kx: "psk",
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
 * CBC.
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
  cbc(0xc037, "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256", "ecdhe_psk"),
  cbc(0x00ae, "TLS_PSK_WITH_AES_128_CBC_SHA256", "psk"),
];

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
