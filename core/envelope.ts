/**
 * Encryption of what waits in Redis (queued and async request bodies): AES-256-GCM with a key ring. The first
 * key encrypts; every key decrypts, so keys rotate without losing queued work. Each sealed value carries its key
 * id, so a dump of Redis shows which key it needs but never the text.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

export interface KeyRing {
  /** Id of the key new values are sealed with. */
  readonly currentId: string;
  readonly keys: ReadonlyMap<string, Buffer>;
}

const PREFIX = "enc:v1:";

/**
 * Parse `AIORCH_ENCRYPTION_KEYS`: comma-separated `id:base64key` (32-byte keys), current key first.
 * @throws naming the entry and the fix
 */
export function parseKeyRing(text: string | undefined): KeyRing | undefined {
  if (!text?.trim()) return undefined;
  const keys = new Map<string, Buffer>();
  let currentId: string | undefined;
  for (const [i, entry] of text.split(",").entries()) {
    const [id, material] = entry.trim().split(":");
    if (!id || !/^[A-Za-z0-9_-]{1,32}$/.test(id) || !material) {
      throw new Error(
        `AIORCH_ENCRYPTION_KEYS entry ${i + 1} must be "id:base64key" with a short id; got "${entry.trim().slice(0, 12)}…"`,
      );
    }
    const key = Buffer.from(material, "base64");
    if (key.length !== 32) {
      throw new Error(
        `AIORCH_ENCRYPTION_KEYS key "${id}" must be 32 bytes (openssl rand -base64 32); got ${key.length}`,
      );
    }
    if (keys.has(id)) throw new Error(`AIORCH_ENCRYPTION_KEYS key id "${id}" appears twice`);
    keys.set(id, key);
    currentId ??= id;
  }
  return { currentId: currentId!, keys };
}

/** A new random key in the ring's text form, for the runbook and tests. */
export const newKeyRingEntry = (id: string): string => `${id}:${randomBytes(32).toString("base64")}`;

/** Seal a value with the ring's current key (`enc:v1:<id>:<iv>:<tag>:<ciphertext>`, base64 parts). */
export function seal(ring: KeyRing, plaintext: string, associated = ""): string {
  const key = ring.keys.get(ring.currentId)!;
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  // The associated data binds a sealed value to its place (e.g. the job id): moving it elsewhere fails to open.
  cipher.setAAD(Buffer.from(associated));
  const data = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return `${PREFIX}${ring.currentId}:${iv.toString("base64")}:${cipher.getAuthTag().toString("base64")}:${data.toString("base64")}`;
}

export const isSealed = (value: string): boolean => value.startsWith(PREFIX);

/**
 * Open a sealed value. Plain values pass through only when `ring` is undefined (encryption off); with a ring, a
 * plain value is refused, so a downgrade cannot slip text past the stack's setting.
 */
export function open(ring: KeyRing | undefined, value: string, associated = ""): string {
  if (!isSealed(value)) {
    if (ring) throw new Error("a value that should be encrypted is stored in plain text");
    return value;
  }
  if (!ring) throw new Error("an encrypted value was found but no AIORCH_ENCRYPTION_KEYS is configured");
  const [id, iv, tag, data] = value.slice(PREFIX.length).split(":");
  const key = id ? ring.keys.get(id) : undefined;
  if (!key || !iv || !tag || data === undefined)
    throw new Error(
      `no key "${id ?? "?"}" in the key ring to open this value (was it rotated out too early?)`,
    );
  const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64"));
  decipher.setAAD(Buffer.from(associated));
  decipher.setAuthTag(Buffer.from(tag, "base64"));
  return Buffer.concat([decipher.update(Buffer.from(data, "base64")), decipher.final()]).toString("utf8");
}
