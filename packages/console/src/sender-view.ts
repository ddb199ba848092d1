import { ChatSender } from "@chatrelay/client";
import { byId, fields, logLine } from "./dom.js";

/** The sender view: post as a viewer, through the SDK's sender (retries with one clientMsgId). */
export function senderView(origin: string): void {
  const form = byId<HTMLFormElement>("sender-form");
  const outcomes = byId("outcomes");
  const text = form.elements.namedItem("text") as HTMLInputElement;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = fields(form);
    const sender = new ChatSender({ url: origin, token: values.token ?? "" });
    const roomId = Number(values.roomId);
    const body = values.text ?? "";
    text.value = "";
    const outcome = await sender.send(roomId, body);
    if (outcome.ok) {
      const replay = outcome.replayed ? ", replayed" : "";
      logLine(
        outcomes,
        `sent to room ${roomId}: seq ${outcome.message.seq} (${outcome.attempts} attempt(s)${replay})`,
        "ok",
      );
    } else {
      const status = outcome.status === null ? "no answer" : String(outcome.status);
      logLine(outcomes, `refused: ${outcome.code} (${status}) ${outcome.detail}`, "bad");
    }
  });
}
