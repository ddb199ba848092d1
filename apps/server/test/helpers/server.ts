import { type Config, loadConfig } from "../../src/config.js";
import type { Relay } from "../../src/core/relay.js";
import { type RunningServer, startServer } from "../../src/server.js";
import { RATE_LIMITS_OFF, TEST_JWT_SECRET } from "./tokens.js";

/** Environment for an in-process test node: random port, embedded in-memory log unless overridden. */
export function testEnv(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    JWT_SECRET: TEST_JWT_SECRET,
    PGLITE_DATA_DIR: "memory://",
    TRUSTED_PROXIES: "127.0.0.1,::1",
    OPS_PORT: "0",
    // Limits are tested on purpose (rate-limits tests); elsewhere a test posts as fast as it likes.
    ...RATE_LIMITS_OFF,
    ...overrides,
  };
}

export interface TestServer extends RunningServer {
  http: string;
  ws: string;
  /** The ops listener: /healthz, /readyz, /metrics. */
  ops: string;
}

/** Starts a real listening node in this process. */
export async function startTestServer(overrides: Record<string, string | undefined> = {}): Promise<TestServer> {
  const config: Config = loadConfig(testEnv(overrides));
  const server = await startServer(config);
  const http = server.url.replace("[::1]", "127.0.0.1");
  return { ...server, http, ws: http.replace(/^http/, "ws"), ops: server.opsUrl.replace("[::1]", "127.0.0.1") };
}

/** Resolves when the relay holds a started presenter session for the room (event-driven, bounded). */
export function waitAttached(relay: Relay, roomId: number, timeoutMs = 10_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAttached = (room: number) => {
      if (room !== roomId) return;
      clearTimeout(timer);
      relay.events.off("attached", onAttached);
      resolve();
    };
    const timer = setTimeout(() => {
      relay.events.off("attached", onAttached);
      reject(new Error(`room ${roomId}: no presenter attached within ${timeoutMs} ms`));
    }, timeoutMs);
    relay.events.on("attached", onAttached);
  });
}
