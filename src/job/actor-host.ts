// The job that hosts a cluster context's actor: constructs the remote class
// by reference and serves it under its name until the job is stopped.
import { ActorServer } from "../actor/server.js";
import { currentCluster } from "../cluster/client/current.js";
import { FlusterError } from "../core/errors.js";
import { isRemoteClass, remote, resolveRemote, type RemoteRef } from "../core/remote.js";

export const hostActor = remote(import.meta.url, async function hostActor(ref: RemoteRef, args: unknown[], name: string) {
  const cls: unknown = await resolveRemote(ref);
  if (!isRemoteClass(cls)) throw new FlusterError(`${ref.name} in ${ref.module} is not a class marked with remote()`, "invalid_argument");
  const server = new ActorServer(await currentCluster());
  await server.register(name, new (cls as unknown as new (...a: unknown[]) => object)(...args));
  const stop = () => void server.shutdown();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  await server.serve();
});
