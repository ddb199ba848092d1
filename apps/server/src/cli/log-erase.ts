import type { Database } from "../chatlog/database.js";
import { CliError, ExitCode } from "./exit-codes.js";

/** `chatrelay log erase`: not built yet (issue #13). */
export async function runErase(_db: Database, _args: string[]): Promise<number> {
  throw new CliError("log erase is not available yet", ExitCode.software);
}
