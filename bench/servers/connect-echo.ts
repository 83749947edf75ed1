// Baseline server for bench/actor.bench.ts: ActorService over Connect/h2c
// whose Call answers with the request's argument bytes, unchanged.
import { create } from "@bufbuild/protobuf";
import { ActorService, CallResponseSchema } from "../../src/rpc/gen/fluster/actor/v1/actor_pb.js";
import { startRpcServer } from "../../src/rpc/transport.js";
import { announce } from "./ready.js";

const server = await startRpcServer({
  routes: (router) =>
    router.service(ActorService, {
      call: (req) => create(CallResponseSchema, { result: { case: "value", value: req.args } }),
    }),
});
announce(server.url, () => server.shutdown());
