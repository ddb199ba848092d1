import { ConfigError, loadConfig } from "./config.js";
import { startServer } from "./server.js";

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`chatrelay: ${err.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  throw err;
}

let server: Awaited<ReturnType<typeof startServer>>;
try {
  server = await startServer(config);
} catch (err) {
  // A store that cannot be reached, a migration that fails, a port in use: say which, and stop.
  process.stderr.write(`chatrelay: cannot start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
// A crash must be visible: the error and its stack go to the log (flushed) before the process exits non-zero.
for (const event of ["uncaughtException", "unhandledRejection"] as const) {
  process.on(event, (err: unknown) => {
    server.logger.fatal({ err, event }, "fatal error; exiting");
    setTimeout(() => process.exit(1), 1000).unref();
    server.logger.flush(() => process.exit(1));
  });
}

let signals = 0;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (++signals > 1) process.exit(1);
    server.logger.info({ signal }, "shutting down");
    const force = setTimeout(() => {
      server.logger.error("shutdown timed out; exiting");
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    server.shutdown().then(
      () => process.exit(0),
      (err) => {
        server.logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}
