// Signed credentials (EdDSA JWTs over Ed25519): the controller issues them
// with its private key; anyone holding its public key verifies them offline.
// A worker proves which worker it is, a job attempt which job and namespace
// it acts for, a namespace credential that its holder may call that
// namespace's servers (actor servers in jobs).
import { SignJWT, exportJWK, generateKeyPair, importJWK, jwtVerify, type JWK } from "jose";
import { FlusterError } from "../core/errors.js";

const ALGORITHM = "EdDSA";
const ISSUER = "fluster";

type KeyLike = Awaited<ReturnType<typeof importJWK>>;

/** What a credential says about its holder. */
export type CredentialClaims =
  /** A worker daemon: Heartbeat and bundle downloads for this worker id. */
  | { kind: "worker"; workerId: string }
  /** One attempt of a job: acts inside the job's namespace and subtree. */
  | { kind: "job"; jobId: string; attemptId: string; namespace: string }
  /** A caller of a namespace's servers (actor servers), e.g. an operator's client. */
  | { kind: "namespace"; namespace: string };

/** Claim names in the token (short: a credential travels with every call). */
interface WireClaims {
  flk?: unknown;
  wkr?: unknown;
  job?: unknown;
  att?: unknown;
  ns?: unknown;
}

/** Signs credentials; the controller holds one. */
export class CredentialIssuer {
  private constructor(
    private readonly privateKey: KeyLike,
    /** The private key as a JSON Web Key, to store. */
    readonly privateJwk: string,
    /** The public key as a JSON Web Key, for verifiers. */
    readonly publicJwk: string,
  ) {}

  /** A new Ed25519 key pair. */
  static async generate(): Promise<CredentialIssuer> {
    const { privateKey, publicKey } = await generateKeyPair("Ed25519", { extractable: true });
    const priv = await exportJWK(privateKey);
    return new CredentialIssuer(privateKey, JSON.stringify(priv), JSON.stringify(await exportJWK(publicKey)));
  }

  /** The issuer of a stored private key (a JSON Web Key). */
  static async fromPrivateJwk(json: string): Promise<CredentialIssuer> {
    const jwk = parseJwk(json, "stored signing key");
    if (typeof jwk.d !== "string") throw new FlusterError("stored signing key is not a private key (no \"d\")", "internal");
    const { d: _private, ...pub } = jwk;
    return new CredentialIssuer(await importJWK(jwk, ALGORITHM), json, JSON.stringify(pub));
  }

  /** A signed credential with these claims; it expires after `ttlSeconds` when given. */
  async issue(claims: CredentialClaims, ttlSeconds?: number): Promise<string> {
    const wire: Record<string, string> = { flk: claims.kind };
    if (claims.kind === "worker") wire.wkr = claims.workerId;
    if (claims.kind === "job") Object.assign(wire, { job: claims.jobId, att: claims.attemptId, ns: claims.namespace });
    if (claims.kind === "namespace") wire.ns = claims.namespace;
    const jwt = new SignJWT(wire).setProtectedHeader({ alg: ALGORITHM }).setIssuer(ISSUER).setIssuedAt();
    if (ttlSeconds !== undefined) jwt.setExpirationTime(`${Math.round(ttlSeconds)}s`);
    return jwt.sign(this.privateKey);
  }
}

/** How many verified credentials a verifier remembers (a verification costs about a millisecond). */
const CACHE_LIMIT = 10_000;

/**
 * Checks credentials against the controller's public key, offline. A
 * credential checked before is answered from a cache until it expires, so
 * the hot path of an actor call costs a map lookup.
 */
export class CredentialVerifier {
  private readonly key: Promise<KeyLike>;
  private readonly cache = new Map<string, { claims: CredentialClaims; expiresAtMs: number }>();

  constructor(publicJwk: string) {
    const jwk = parseJwk(publicJwk, "cluster key");
    if (jwk.d !== undefined) throw new FlusterError("the cluster key must be the public key, not the private one", "invalid_argument");
    this.key = importJWK(jwk, ALGORITHM);
    // A key that does not import fails each verify; it must not be an unhandled rejection meanwhile.
    this.key.catch(() => undefined);
  }

  /** The claims of a valid credential, or undefined (not signed by this key, expired, malformed). */
  async verify(token: string): Promise<CredentialClaims | undefined> {
    const cached = this.cache.get(token);
    if (cached && cached.expiresAtMs > Date.now()) return cached.claims;
    if (cached) this.cache.delete(token);
    if (!looksLikeCredential(token)) return undefined;
    let payload;
    try {
      ({ payload } = await jwtVerify(token, await this.key, { algorithms: [ALGORITHM], issuer: ISSUER }));
    } catch {
      return undefined;
    }
    const claims = claimsOf(payload as WireClaims);
    if (!claims) return undefined;
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(token, { claims, expiresAtMs: typeof payload.exp === "number" ? payload.exp * 1000 : Number.POSITIVE_INFINITY });
    return claims;
  }
}

/** Whether a bearer token has a credential's form (a JWT: three dot-separated parts), not an operator token's. */
export function looksLikeCredential(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

function claimsOf(wire: WireClaims): CredentialClaims | undefined {
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  switch (wire.flk) {
    case "worker": {
      const workerId = str(wire.wkr);
      return workerId ? { kind: "worker", workerId } : undefined;
    }
    case "job": {
      const jobId = str(wire.job);
      const attemptId = str(wire.att);
      const namespace = str(wire.ns);
      return jobId && attemptId && namespace ? { kind: "job", jobId, attemptId, namespace } : undefined;
    }
    case "namespace": {
      const namespace = str(wire.ns);
      return namespace ? { kind: "namespace", namespace } : undefined;
    }
    default:
      return undefined;
  }
}

function parseJwk(json: string, what: string): JWK {
  let jwk: unknown;
  try {
    jwk = JSON.parse(json);
  } catch {
    throw new FlusterError(`${what} is not a JSON Web Key`, "invalid_argument");
  }
  if (typeof jwk !== "object" || jwk === null || (jwk as JWK).kty !== "OKP" || (jwk as JWK).crv !== "Ed25519") {
    throw new FlusterError(`${what} is not an Ed25519 JSON Web Key (kty OKP, crv Ed25519)`, "invalid_argument");
  }
  return jwk as JWK;
}
