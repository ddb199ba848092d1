import type { BusEvent } from "../core/ports.js";

/** Bus payloads are JSON; dates travel as ISO strings. */
export function encodeBusEvent(event: BusEvent): string {
  return JSON.stringify(event);
}

export function decodeBusEvent(payload: string): BusEvent {
  const event = JSON.parse(payload) as BusEvent;
  if (event.kind === "message") {
    event.message.sentAt = new Date(event.message.sentAt as unknown as string);
  } else if (event.kind !== "takeover") {
    throw new Error(`unknown bus event kind ${(event as { kind: unknown }).kind}`);
  }
  return event;
}
