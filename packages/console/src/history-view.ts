import type { HistoryPage, RoomStatus } from "@chatrelay/client";
import { byId, el, fields, row, time } from "./dom.js";

/** History with paging (newest first, moderation events included) and the room's status. */
export function historyView(origin: string): void {
  const form = byId<HTMLFormElement>("history-form");
  const older = byId<HTMLButtonElement>("older");
  const tbody = byId<HTMLTableElement>("history-items").tBodies[0] as HTMLTableSectionElement;
  const status = byId("room-status");
  const error = byId("history-error");
  let next: { roomId: number; token: string; limit: number; before: number } | undefined;

  const get = async <T>(path: string, token: string): Promise<T> => {
    const res = await fetch(`${origin}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json().catch(() => ({}))) as T & { code?: string; detail?: string };
    if (!res.ok) throw new Error(`${res.status} ${body.code ?? ""} ${body.detail ?? ""}`.trim());
    return body;
  };

  const showStatus = (s: RoomStatus) => {
    status.replaceChildren(
      el("span", `room ${s.roomId}`),
      el("span", s.state, `room-${s.state}`),
      el("span", `presenter node: ${s.presenterNode ?? "-"}`),
      el("span", `last seq: ${s.lastSeq}`),
    );
  };

  const load = async (roomId: number, token: string, limit: number, before?: number) => {
    error.textContent = "";
    try {
      const query = `limit=${limit}&kinds=all${before === undefined ? "" : `&before=${before}`}`;
      const [page, s] = await Promise.all([
        get<HistoryPage>(`/v1/rooms/${roomId}/messages?${query}`, token),
        get<RoomStatus>(`/v1/rooms/${roomId}/status`, token),
      ]);
      showStatus(s);
      if (before === undefined) tbody.replaceChildren();
      for (const m of page.items) {
        const kind = m.kind ?? "message";
        const text = kind === "message" ? m.text : JSON.stringify(m.data ?? {});
        const tr = row([String(m.seq), kind, `${m.nickname} (${m.senderId})`, text, time(m.sentAt)]);
        if (m.deleted) tr.classList.add("deleted");
        if (kind !== "message") tr.classList.add("event");
        (tr.cells[3] as HTMLTableCellElement).className = "text";
        tbody.append(tr);
      }
      next = page.nextBefore === null ? undefined : { roomId, token, limit, before: page.nextBefore };
      older.disabled = next === undefined;
    } catch (err) {
      error.textContent = err instanceof Error ? err.message : String(err);
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = fields(form);
    void load(Number(values.roomId), values.token ?? "", Number(values.limit || 50));
  });
  older.addEventListener("click", () => {
    if (next) void load(next.roomId, next.token, next.limit, next.before);
  });
}
