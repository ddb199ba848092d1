import type { Database } from "../chatlog/database.js";
import { CliError, ExitCode } from "./exit-codes.js";

/** `chatrelay log export`: not built yet (issue #13). */
export async function runExport(_db: Database, _args: string[]): Promise<number> {
  throw new CliError("log export is not available yet", ExitCode.software);
}
