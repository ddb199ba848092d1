import { type ParseArgsConfig, parseArgs } from "node:util";
import { usageError } from "./exit-codes.js";

/** What parseArgs gives for string and boolean options (each command narrows it to its own shape). */
export type CommandValues = Record<string, string | boolean | undefined>;

/**
 * A command's options, parsed strictly (no positionals, no unknown option), with `--help`/`-h`
 * added. undefined when help was asked for: the usage text is printed, and the command ends with 0.
 * A bad option is a usage error in our own words: parseArgs' message repeats the argument as given.
 */
export function commandArgs(
  args: string[],
  options: NonNullable<ParseArgsConfig["options"]>,
  usage: string,
): CommandValues | undefined {
  let values: CommandValues;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: { ...options, help: { type: "boolean", short: "h" } },
    }) as { values: CommandValues });
  } catch {
    throw usageError(`unknown or incomplete option (see --help)\n${usage}`);
  }
  if (values.help === true) {
    process.stdout.write(`${usage}\n`);
    return undefined;
  }
  return values;
}
