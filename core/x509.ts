/**
 * Self-signed worker certificates, built by hand with node:crypto only: an ECDSA P-256 key pair and a minimal
 * X.509 v3 certificate, DER-encoded by the small ASN.1 writer below and signed with `crypto.sign`.
 *
 * The controller issues one per rented worker; the key goes to the worker (as a secret) and nowhere else, the
 * certificate and its fingerprint go into the worker record and the route. Clients pin the exact certificate
 * (`ca` = this certificate, `checkServerIdentity` = fingerprint comparison), never a hostname, so the subject
 * only needs to name the worker.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import type { PeerCertificate } from "node:tls";

export interface WorkerCertificate {
  /** The certificate, PEM. Public: stored in the worker record and published in the route. */
  readonly certPem: string;
  /** The private key, PKCS#8 PEM. A secret: only the worker gets it. */
  readonly keyPem: string;
  /** SHA-256 of the DER certificate, formatted like `X509Certificate.fingerprint256` (`AB:CD:…`). */
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** A certificate a client pins (the route's and the worker record's view: no key). */
export interface CertificatePin {
  readonly certPem: string;
  readonly fingerprint256: string;
}

export interface CertificateOptions {
  /** Clock for the validity window, epoch ms. @default Date.now() */
  readonly nowMs?: number;
  /** Days the certificate stays valid after now. @default 30 */
  readonly validityDays?: number;
}

/** Backdating of notBefore, so a worker whose clock runs a little behind accepts its own certificate. */
const BACKDATE_MS = 5 * 60_000;

// ── a minimal DER writer ──────────────────────────────────────────────────────────────────────────────────

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, ...items);
const set = (...items: Buffer[]): Buffer => tlv(0x31, ...items);
/** Context-specific, constructed: `[n] EXPLICIT`. */
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
const octetString = (content: Buffer): Buffer => tlv(0x04, content);
const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, "utf8"));
const bitString = (content: Buffer): Buffer => tlv(0x03, Buffer.from([0]), content);
const booleanTrue = (): Buffer => tlv(0x01, Buffer.from([0xff]));

/** INTEGER from unsigned big-endian bytes (minimal, positive). */
function unsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  const body = (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
  return tlv(0x02, body.length > 0 ? body : Buffer.from([0]));
}

function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split(".").map(Number);
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || arcs.some((a) => !Number.isInteger(a) || a < 0))
    throw new Error(`bad object identifier ${dotted}`);
  const bytes: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const groups: number[] = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) groups.unshift((n & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** UTCTime for 1950–2049, GeneralizedTime after (RFC 5280 §4.1.2.5), whole seconds, UTC. */
function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  return year >= 1950 && year < 2050
    ? tlv(0x17, Buffer.from(digits.slice(2), "ascii"))
    : tlv(0x18, Buffer.from(digits, "ascii"));
}

// ── the certificate ───────────────────────────────────────────────────────────────────────────────────────

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  basicConstraints: "2.5.29.19",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  serverAuth: "1.3.6.1.5.5.7.3.1",
} as const;

const name = (commonName: string): Buffer =>
  sequence(set(sequence(objectIdentifier(OID.commonName), utf8String(commonName))));

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return sequence(objectIdentifier(oid), ...(critical ? [booleanTrue()] : []), octetString(value));
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** `AB:CD:…`, the way Node formats `fingerprint256`. */
export function formatFingerprint(digest: Buffer): string {
  return digest.toString("hex").toUpperCase().match(/.{2}/g)?.join(":") ?? "";
}

/** Fingerprints compared without regard to case or separators; undefined/empty never matches. */
export function sameFingerprint(a: string | undefined, b: string | undefined): boolean {
  const norm = (f: string | undefined) => (f ?? "").replace(/[^0-9a-f]/gi, "").toUpperCase();
  const x = norm(a);
  return x.length === 64 && x === norm(b);
}

/** A worker id as a DNS name for the SAN (letters, digits, hyphens and dots; no empty labels). */
const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * A fresh key pair and a self-signed certificate for `workerId` (subject = issuer = CN workerId, SAN DNS
 * workerId, serverAuth), valid from 5 minutes ago for `validityDays`. No keyUsage extension: with one, it would
 * need keyCertSign for OpenSSL to treat the certificate as its own issuer (the trust anchor clients pin).
 */
export function createWorkerCertificate(
  workerId: string,
  options: CertificateOptions = {},
): WorkerCertificate {
  if (!DNS_NAME.test(workerId))
    throw new Error(`worker id "${workerId}" cannot name a certificate (DNS name)`);
  const now = options.nowMs ?? Date.now();
  const notBefore = new Date(Math.floor((now - BACKDATE_MS) / 1000) * 1000);
  const notAfter = new Date(Math.floor((now + (options.validityDays ?? 30) * 86_400_000) / 1000) * 1000);
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });

  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01; // positive, 16 bytes, never zero
  const signatureAlgorithm = sequence(objectIdentifier(OID.ecdsaWithSha256)); // no parameters for ECDSA
  const tbs = sequence(
    explicit(0, unsignedInteger(Buffer.from([2]))), // v3
    unsignedInteger(serial),
    signatureAlgorithm,
    name(workerId),
    sequence(time(notBefore), time(notAfter)),
    name(workerId),
    publicKey.export({ type: "spki", format: "der" }),
    explicit(
      3,
      sequence(
        extension(OID.basicConstraints, true, sequence()), // cA FALSE (the default, so empty)
        extension(OID.extKeyUsage, false, sequence(objectIdentifier(OID.serverAuth))),
        extension(OID.subjectAltName, false, sequence(tlv(0x82, Buffer.from(workerId, "ascii")))), // dNSName
      ),
    ),
  );
  const signature = sign("sha256", tbs, privateKey); // DER ECDSA-Sig-Value, as X.509 wants
  const der = sequence(tbs, signatureAlgorithm, bitString(signature));
  return {
    certPem: toPem("CERTIFICATE", der),
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    fingerprint256: formatFingerprint(createHash("sha256").update(der).digest()),
    notBefore,
    notAfter,
  };
}

/**
 * TLS client options that trust exactly one certificate: it is the only CA (so the chain check fails for any
 * other), and the peer's fingerprint must equal the pin (so a certificate that merely chains to it fails too).
 * Hostnames are not checked — the pin is stronger, and workers are reached by IP.
 */
export function pinnedTlsOptions(pin: CertificatePin): {
  ca: string;
  rejectUnauthorized: true;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
} {
  return {
    ca: pin.certPem,
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      if (sameFingerprint(cert.fingerprint256, pin.fingerprint256)) return undefined;
      const error = new Error("the server's certificate is not the pinned one") as Error & { code: string };
      error.code = "ERR_TLS_CERT_PIN_MISMATCH";
      return error;
    },
  };
}
