import { type ChatMessageView, type ModerationEventView, PresenterClient } from "@chatrelay/client";
import { byId, el, fields, logLine, row, time } from "./dom.js";

/** The presenter view: connect as a room's presenter, watch messages arrive with their seqs, moderate. */
export function presenterView(origin: string): void {
  const form = byId<HTMLFormElement>("presenter-form");
  const connect = byId<HTMLButtonElement>("connect");
  const disconnect = byId<HTMLButtonElement>("disconnect");
  const stop = byId<HTMLButtonElement>("stop");
  const state = byId("state");
  const reconnects = byId("reconnects");
  const lastSeq = byId("last-seq");
  const connId = byId("conn-id");
  const count = byId("count");
  const tbody = byId<HTMLTableElement>("messages").tBodies[0] as HTMLTableSectionElement;
  const connectionLog = byId("connection-log");
  const rows = new Map<number, HTMLTableRowElement>();
  let client: PresenterClient | undefined;
  let received = 0;

  const setConnected = (on: boolean) => {
    connect.disabled = on;
    disconnect.disabled = !on;
    stop.disabled = !on;
  };

  const moderate = (frame: Record<string, unknown>) => {
    if (!client?.sendFrame({ type: "moderate", ...frame }))
      logLine(connectionLog, "not connected: action not sent", "bad");
  };

  const showMessage = (m: ChatMessageView) => {
    const actions = el("span");
    const del = el("button", "delete");
    del.type = "button";
    del.addEventListener("click", () => moderate({ action: "delete", targetSeq: m.seq }));
    const ban = el("button", "ban");
    ban.type = "button";
    ban.addEventListener("click", () => moderate({ action: "ban", userId: m.senderId }));
    actions.append(del, " ", ban);
    const tr = row([String(m.seq), `${m.nickname} (${m.senderId})`, m.text, time(m.sentAt), actions]);
    (tr.cells[0] as HTMLTableCellElement).className = "seq";
    (tr.cells[2] as HTMLTableCellElement).className = "text";
    tr.dataset.seq = String(m.seq);
    tr.dataset.sender = String(m.senderId);
    rows.set(m.seq, tr);
    tbody.prepend(tr);
    received++;
    count.textContent = String(received);
  };

  const showEvent = (e: ModerationEventView) => {
    const detail = Object.entries(e.data)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(" ");
    const tr = row([String(e.seq), `by ${e.by}`, `${e.action} ${detail}`, time(e.sentAt), ""], "event");
    tbody.prepend(tr);
    if (e.action === "delete" && typeof e.data.targetSeq === "number")
      rows.get(e.data.targetSeq)?.classList.add("deleted");
    if (e.action === "clear" && typeof e.data.upToSeq === "number") {
      for (const [seq, r] of rows) if (seq <= (e.data.upToSeq as number)) r.classList.add("deleted");
    }
    // An operator erased this user's messages: their rows shown so far are struck, name and text removed.
    if (e.action === "erase" && typeof e.data.userId === "number") {
      for (const r of rows.values()) {
        if (r.dataset.sender !== String(e.data.userId)) continue;
        r.classList.add("deleted");
        const who = r.cells[1];
        if (who) who.textContent = `(${e.data.userId})`;
        const text = r.cells[2];
        if (text) text.textContent = "";
      }
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = fields(form);
    const roomId = Number(values.roomId);
    const resume = values.lastSeq === "" || values.lastSeq === undefined ? undefined : Number(values.lastSeq);
    client?.close();
    client = new PresenterClient({
      url: origin,
      roomId,
      token: values.token ?? "",
      ...(resume === undefined ? {} : { lastSeq: resume }),
    });
    client.on("state", (s) => {
      state.textContent = s;
      state.dataset.state = s;
      reconnects.textContent = String(client?.reconnects ?? 0);
      if (s === "closed") setConnected(false);
    });
    client.on("ready", (info) => {
      connId.textContent = info.connId;
      logLine(
        connectionLog,
        `ready: room ${info.roomId}, last seq ${info.lastSeq}, resumed from ${info.resumeFrom ?? "live"}`,
        "ok",
      );
    });
    client.on("close", (info) => {
      const next = info.reconnecting ? `reconnecting in ${info.delayMs} ms` : "not reconnecting";
      logLine(connectionLog, `closed ${info.code}${info.reason ? ` (${info.reason})` : ""}: ${next}`, "bad");
    });
    client.on("error", (err) => logLine(connectionLog, err.message, "bad"));
    client.on("gone", (g) => {
      logLine(connectionLog, `gone: seqs ${g.fromSeq}..${g.toSeq} were pruned by retention before delivery`, "bad");
      lastSeq.textContent = String(g.toSeq);
    });
    client.on("message", (m) => {
      showMessage(m);
      lastSeq.textContent = String(m.seq);
    });
    client.on("moderation", (e) => {
      showEvent(e);
      lastSeq.textContent = String(e.seq);
    });
    setConnected(true);
    client.connect();
  });
  disconnect.addEventListener("click", () => client?.close());
  stop.addEventListener("click", () => client?.stop());
}
