/** The operator CLI's exit codes (sysexits.h where one fits). */
export const ExitCode = {
  ok: 0,
  /** The work ran and failed (a statement error, a partial export). */
  failed: 1,
  /** Bad arguments: the usage line is printed. */
  usage: 2,
  /** The chat log could not be reached. */
  unavailable: 69,
  /** A bug. */
  software: 70,
  /** A configuration error (the server's own rules: loadStoreConfig). */
  config: 78,
} as const;

/** A failure with the exit code it ends the CLI with, and a message in our own words. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, ExitCode.usage);
}
