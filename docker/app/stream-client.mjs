// The example application of docker/compose.yaml: streams chat completions through its veer sidecar and logs each.
//
// Plain Node (no dependencies) so it runs in the stock node image. Settings from the environment:
//   VEER_URL      veer's proxy listener (default http://127.0.0.1:8080: the sidecar on loopback)
//   USERS         distinct x-user-id values to draw from (default 50), so the split is by user
//   RATE          requests started per second (default 5)
//   MAX_REQUESTS  stop after this many and exit 0 if all succeeded, else 1 (default 0: run until SIGTERM)

const base = (process.env.VEER_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const users = Math.max(1, Number(process.env.USERS ?? 50));
const rate = Math.max(0.1, Number(process.env.RATE ?? 5));
const max = Math.max(0, Number(process.env.MAX_REQUESTS ?? 0));

const totals = { requests: 0, ok: 0, failed: 0, by_upstream: {} };
let inflight = 0;
let stopping = false;

const log = (line) => process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...line })}\n`);

async function streamOne(n) {
  const user = `user-${Math.floor(Math.random() * users)}`;
  const started = performance.now();
  let ttfbMs;
  let tokens = 0;
  try {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-user-id': user },
      body: JSON.stringify({ model: 'demo', stream: true, messages: [{ role: 'user', content: `hello ${n}` }] }),
      signal: AbortSignal.timeout(60_000),
    });
    const upstream = res.headers.get('x-veer-upstream') ?? 'unknown';
    const decoder = new TextDecoder();
    let text = '';
    for await (const chunk of res.body) {
      ttfbMs ??= performance.now() - started;
      text += decoder.decode(chunk, { stream: true });
    }
    // An SSE event per token, then a final event and [DONE]; a JSON error body has none.
    tokens = text.split('\n\n').filter((e) => e.startsWith('data: {') && e.includes('"content"')).length;
    const ok = res.status === 200 && text.includes('data: [DONE]');
    totals[ok ? 'ok' : 'failed']++;
    totals.by_upstream[upstream] = (totals.by_upstream[upstream] ?? 0) + 1;
    log({
      msg: ok ? 'completion' : 'completion failed',
      user,
      upstream,
      status: res.status,
      ttfb_ms: Math.round(ttfbMs ?? 0),
      duration_ms: Math.round(performance.now() - started),
      tokens,
      ...(ok ? {} : { body: text.slice(0, 200) }),
    });
  } catch (err) {
    totals.failed++;
    log({ msg: 'completion failed', user, error: err.cause?.code ?? err.message });
  }
}

function launch() {
  if (stopping || (max > 0 && totals.requests >= max)) return finishWhenIdle();
  totals.requests++;
  inflight++;
  streamOne(totals.requests).finally(() => {
    inflight--;
    if (stopping || (max > 0 && totals.requests >= max)) finishWhenIdle();
  });
}

let timer;
function finishWhenIdle() {
  clearInterval(timer);
  if (inflight > 0) return;
  log({ msg: 'summary', ...totals });
  process.exit(totals.failed > 0 ? 1 : 0);
}

// Stop starting streams, let the open ones finish (as an app behind a draining sidecar should).
process.on('SIGTERM', () => {
  stopping = true;
  finishWhenIdle();
});
process.on('SIGINT', () => {
  stopping = true;
  finishWhenIdle();
});

log({ msg: 'streaming completions', veer: base, users, rate, max_requests: max });
timer = setInterval(launch, 1000 / rate);
launch();
