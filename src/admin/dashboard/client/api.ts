// Calls to the admin API with the operator's token, which lives in sessionStorage and never in a URL.

const TOKEN_KEY = 'veer.admin.token';

export const token = {
  get(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(value: string): void {
    sessionStorage.setItem(TOKEN_KEY, value);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** A refusal as the API worded it: the page shows status, code and message as they came. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** One line per problem, when the API lists them (an invalid config on reload). */
    readonly problems: string[] = [],
  ) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const t = token.get();
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ApiError(res.status, 'bad_response', `HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; problems?: unknown } }).error;
    const problems = Array.isArray(e?.problems)
      ? e.problems.map((p) => (typeof p === 'string' ? p : JSON.stringify(p)))
      : [];
    throw new ApiError(res.status, e?.code ?? 'error', e?.message ?? `HTTP ${res.status}`, problems);
  }
  return json as T;
}
