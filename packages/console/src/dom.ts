/** DOM helpers. Text only ever goes in through textContent: nothing a client sent becomes markup. */

export function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing from the page`);
  return el as T;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  className?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className !== undefined) node.className = className;
  return node;
}

export function row(cells: (string | Node)[], className?: string): HTMLTableRowElement {
  const tr = el("tr", undefined, className);
  for (const cell of cells) {
    const td = el("td");
    if (typeof cell === "string") td.textContent = cell;
    else td.append(cell);
    tr.append(td);
  }
  return tr;
}

/** A line in one of the page's logs, newest first, the log kept to `max` lines. */
export function logLine(list: HTMLElement, text: string, kind?: "ok" | "bad", max = 200): void {
  const item = el("li", `${new Date().toLocaleTimeString()}  ${text}`, kind);
  list.prepend(item);
  while (list.childElementCount > max) list.lastElementChild?.remove();
}

/** A form's named field values, trimmed. */
export function fields(form: HTMLFormElement): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of new FormData(form)) if (typeof value === "string") out[name] = value.trim();
  return out;
}

export function time(iso: string): string {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString();
}
