export interface HttpResult<T = unknown> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
}

/** A real HTTP request (Node's fetch) returning status, headers and parsed JSON when there is any. */
export async function request<T = Record<string, unknown>>(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | object | Buffer } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...init.headers };
  let body: string | Buffer | undefined;
  if (init.body !== undefined) {
    if (typeof init.body === "string" || Buffer.isBuffer(init.body)) body = init.body;
    else {
      body = JSON.stringify(init.body);
      headers["content-type"] ??= "application/json";
    }
  }
  const res = await fetch(url, { method: init.method ?? (body === undefined ? "GET" : "POST"), headers, body });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, body: parsed as T };
}

export function seedHeaders(
  userIdx: number | string,
  nickname = "viewer",
  email = "v@example.com",
): Record<string, string> {
  return {
    "x-forward-userIdx": String(userIdx),
    "x-forward-email": email,
    "x-forward-nickname": encodeURIComponent(nickname),
  };
}
