import type { FastifyPluginAsync } from "fastify";
import type { Metrics } from "../ops/metrics.js";

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

interface OpsRoutesOptions {
  metrics: Metrics;
  readiness: ReadinessCheck[];
  isDraining: () => boolean;
}

const CHECK_TIMEOUT_MS = 2000;

/** Liveness, readiness (every store answers) and Prometheus metrics: served on the ops listener only. */
export const opsRoutes: FastifyPluginAsync<OpsRoutesOptions> = async (app, { metrics, readiness, isDraining }) => {
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_request, reply) => {
    const results = await Promise.all(
      readiness.map(async ({ name, check }) => {
        try {
          await withTimeout(check(), CHECK_TIMEOUT_MS);
          return [name, "ok"] as const;
        } catch (err) {
          // The store's own error text (hosts, users, driver details) goes to the log, never to the caller.
          app.log.warn({ err, check: name }, "readiness check failed");
          return [name, err instanceof CheckTimeout ? "timeout" : "unavailable"] as const;
        }
      }),
    );
    const checks = Object.fromEntries(results);
    const ready = !isDraining() && results.every(([, r]) => r === "ok");
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? "ready" : isDraining() ? "draining" : "unavailable", checks });
  });

  app.get("/metrics", async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CheckTimeout()), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

class CheckTimeout extends Error {}
