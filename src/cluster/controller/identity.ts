// The controller's identities when auth is on: the operator token, and the
// Ed25519 key (kept in the state database, so a restarted or restored
// controller accepts what it issued) that signs worker, job and namespace
// credentials. It tells who a bearer token stands for.
import { timingSafeEqual } from "node:crypto";
import { FlusterError } from "../../core/errors.js";
import { CredentialIssuer, CredentialVerifier, looksLikeCredential } from "../../rpc/credentials.js";
import type { Caller } from "./access.js";
import type { StateStore } from "./store.js";

const SIGNING_KEY = "signing_key";
/** Lifetime of a namespace credential; clients ask for a new one halfway. */
export const NAMESPACE_CREDENTIAL_TTL_SECONDS = 3600;

/** An attempt's liveness, for refusing the credentials of attempts that ended. */
export type AttemptLiveness = (attemptId: string) => { state: string; active: boolean } | undefined;

export class ControllerIdentity {
  private readonly operator: Buffer;

  private constructor(
    operatorToken: string,
    private readonly issuer: CredentialIssuer,
    private readonly verifier: CredentialVerifier,
  ) {
    this.operator = Buffer.from(operatorToken);
  }

  /** The identity of a controller with this operator token; its signing key is loaded from `store`, or made and stored there once. */
  static async open(operatorToken: string, store: StateStore): Promise<ControllerIdentity> {
    const stored = store.getMeta(SIGNING_KEY);
    let issuer: CredentialIssuer;
    if (stored !== undefined) {
      issuer = await CredentialIssuer.fromPrivateJwk(stored);
    } else {
      issuer = await CredentialIssuer.generate();
      store.setMeta(SIGNING_KEY, issuer.privateJwk);
    }
    return new ControllerIdentity(operatorToken, issuer, new CredentialVerifier(issuer.publicJwk));
  }

  /** The public key (a JSON Web Key) that verifies every credential this controller issues. */
  get publicKey(): string {
    return this.issuer.publicJwk;
  }

  /**
   * Who `token` stands for, or undefined when it is neither the operator
   * token nor a credential this controller signed. A job's credential is
   * refused once its attempt has ended: an orphaned process must not keep
   * acting for the job.
   */
  async authenticate(token: string, attempt: AttemptLiveness): Promise<Caller | undefined> {
    const given = Buffer.from(token);
    if (given.length === this.operator.length && timingSafeEqual(given, this.operator)) return { kind: "operator" };
    if (!looksLikeCredential(token)) return undefined;
    const claims = await this.verifier.verify(token);
    if (!claims) return undefined;
    if (claims.kind === "job") {
      const live = attempt(claims.attemptId);
      if (!live?.active) {
        throw new FlusterError(
          `credential of job ${claims.jobId} refused: its attempt ${claims.attemptId} ${live ? `has ended (${live.state})` : "is unknown to this controller"}`,
          "unauthenticated",
        );
      }
    }
    return claims;
  }

  /** A worker's own credential (no expiry: it survives controller restarts, as the key does). */
  workerCredential(workerId: string): Promise<string> {
    return this.issuer.issue({ kind: "worker", workerId });
  }

  /** One attempt's credential, given to its process as FLUSTER_TOKEN. */
  jobCredential(jobId: string, attemptId: string, namespace: string): Promise<string> {
    return this.issuer.issue({ kind: "job", jobId, attemptId, namespace });
  }

  /** A credential for calling the namespace's servers (actor servers), valid for {@link NAMESPACE_CREDENTIAL_TTL_SECONDS}. */
  namespaceCredential(namespace: string): Promise<string> {
    return this.issuer.issue({ kind: "namespace", namespace }, NAMESPACE_CREDENTIAL_TTL_SECONDS);
  }
}
