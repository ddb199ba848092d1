import type { Database } from "../chatlog/database.js";
import { CliError, ExitCode } from "./exit-codes.js";

/** `chatrelay log stats`: not built yet (issue #13). */
export async function runStats(_db: Database, _args: string[]): Promise<number> {
  throw new CliError("log stats is not available yet", ExitCode.software);
}
