import type { Database } from "../chatlog/database.js";
import { CliError, ExitCode } from "./exit-codes.js";

/** `chatrelay log prune`: not built yet (issue #13). */
export async function runPrune(_db: Database, _args: string[]): Promise<number> {
  throw new CliError("log prune is not available yet", ExitCode.software);
}
