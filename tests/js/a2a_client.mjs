// Drives agentd with an official A2A JavaScript SDK client (1.x ClientFactory over JSON-RPC,
// or the 0.3.x A2AClient) and prints one JSON report on stdout for tests/e2e/test_a2a_sdk.py.
//
//   node a2a_client.mjs --sdk 1.x|0.3 --url http://127.0.0.1:PORT
//
// The report records what the server answered, normalized to one shape for both SDKs
// (states in 0.3 spelling, parts as {kind,text|data}); the pytest wrapper asserts on it.
// Every network wait is bounded; an unexpected exception ends the run with "fatal" set.

import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';

const UCP_EXTENSION = 'https://ucp.dev/specification/reference?v=2026-01-11';
const PAYMENT_KEY = 'a2a.ucp.checkout.payment_data';
const CHECKOUT_KEY = 'a2a.ucp.checkout';
const PRODUCTS_KEY = 'a2a.product_results';
const CALL_TIMEOUT_MS = 15000;

const DEMO = [
  { text: 'show me cookies' },
  { text: 'add 2 BISC-001' },
  { text: 'ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com' },
  { text: 'express shipping' },
  {
    text: 'pay',
    data: [{
      [PAYMENT_KEY]: {
        handler_id: 'mock_payment_handler',
        credential: { type: 'token', token: 'success_token' },
      },
    }],
  },
];

const { values: opts } = parseArgs({
  options: { sdk: { type: 'string' }, url: { type: 'string' } },
});
if (!['1.x', '0.3'].includes(opts.sdk) || !opts.url) {
  console.error('usage: node a2a_client.mjs --sdk 1.x|0.3 --url BASE_URL');
  process.exit(2);
}
const BASE = opts.url.replace(/\/+$/, '');

// Every request activates the UCP extension the card requires. The 1.x SDK does it its own
// way (withA2AExtensions: the 1.0 header A2A-Extensions); the 0.3 A2AClient has no such
// option, so the 0.3 run adds 0.3's X-A2A-Extensions (the sample client's header) here.
// What went out and the responses' echoes are recorded.
const http = { requests: 0, echoes: [], versions: [], extensionHeaders: [] };
async function ucpFetch(input, init = {}) {
  const headers = new Headers(init.headers || {});
  if (opts.sdk === '0.3') headers.set('X-A2A-Extensions', UCP_EXTENSION);
  http.requests++;
  http.versions.push(headers.get('A2A-Version'));
  for (const h of ['A2A-Extensions', 'X-A2A-Extensions']) {
    if (headers.get(h) !== null && !http.extensionHeaders.includes(h)) http.extensionHeaders.push(h);
  }
  const res = await fetch(input, { ...init, headers });
  const echo = res.headers.get('X-A2A-Extensions') || res.headers.get('A2A-Extensions');
  if (echo !== null) http.echoes.push(echo);
  return res;
}

// ---- normalization: one shape for both wire generations ----

function stateName(s) {
  if (s === undefined || s === null) return null;
  return String(s).replace(/^TASK_STATE_/, '').toLowerCase().replace(/_/g, '-');
}

function normParts(parts) {
  return (parts || []).map((p) => {
    if (typeof p.text === 'string') return { kind: 'text', text: p.text };
    if (p.data !== undefined) return { kind: 'data', data: p.data };
    if (p.kind === 'file' || p.file || p.url || p.raw) return { kind: 'file' };
    return { kind: 'unknown', raw: p };
  });
}

// What the agent said in a task or message. The turn's own answer (the status message,
// or the message itself) comes first; a task's artifacts (every turn's answer) are the
// fallback for the checkout and products, and are listed apart.
function summarize(obj) {
  if (!obj) return null;
  const isTask = obj.status !== undefined || obj.kind === 'task';
  const own = normParts(isTask ? obj.status?.message?.parts : obj.parts);
  const art = isTask ? (obj.artifacts || []).flatMap((x) => normParts(x.parts)) : [];
  const datas = (parts) => parts.filter((p) => p.kind === 'data' && p.data).map((p) => p.data);
  const pick = (key) => {
    const found = [...datas(own), ...datas(art)].filter((d) => d[key]).map((d) => d[key]);
    const mine = datas(own).filter((d) => d[key]).map((d) => d[key]);
    return mine.length ? mine[mine.length - 1] : found.length ? found[found.length - 1] : null;
  };
  const keys = (parts) => [...new Set(datas(parts).flatMap((d) => Object.keys(d)))];
  const checkout = pick(CHECKOUT_KEY);
  const products = pick(PRODUCTS_KEY);
  return {
    type: isTask ? 'task' : 'message',
    id: isTask ? obj.id : obj.messageId,
    taskId: isTask ? obj.id : obj.taskId || null,
    contextId: obj.contextId || null,
    state: isTask ? stateName(obj.status?.state) : null,
    texts: own.filter((p) => p.kind === 'text').map((p) => p.text),
    dataKeys: keys(own),
    artifactDataKeys: keys(art),
    checkoutStatus: checkout ? checkout.status || null : null,
    lineItems: checkout ? (checkout.line_items || []).map((l) => [l.item?.id, l.quantity]) : [],
    orderId: checkout?.order?.id || null,
    handlers: checkout ? (checkout.payment?.handlers || []).map((h) => h.id) : [],
    productIds: products ? (products.results || []).map((r) => r.productID) : [],
    artifactCount: isTask ? (obj.artifacts || []).length : 0,
    historyLength: isTask ? (obj.history || []).length : 0,
  };
}

// A stream frame: which kind, which task, which state.
function frameOf(ev) {
  const kind = ev.kind || (ev.status && ev.taskId ? 'status-update'
    : ev.artifact ? 'artifact-update' : ev.status ? 'task' : 'message');
  const f = { kind };
  if (kind === 'task') {
    Object.assign(f, { taskId: ev.id, contextId: ev.contextId, state: stateName(ev.status?.state) });
  }
  if (kind === 'status-update') {
    Object.assign(f, { taskId: ev.taskId, contextId: ev.contextId, state: stateName(ev.status?.state) });
    if (ev.final !== undefined) f.final = ev.final;
    const s = summarize({ status: ev.status, id: ev.taskId });
    f.orderId = s.orderId;
    f.dataKeys = s.dataKeys;
  }
  if (kind === 'artifact-update') {
    const s = summarize({ status: {}, artifacts: [ev.artifact], id: ev.taskId });
    Object.assign(f, { taskId: ev.taskId, dataKeys: s.artifactDataKeys, orderId: s.orderId });
  }
  return f;
}

function errorOf(e) {
  // SDK errors carry the JSON-RPC code in different places per version.
  const code = e?.envelopeCode ?? e?.code ?? e?.error?.code ?? e?.cause?.code ?? null;
  const m = /(-32\d{3})/.exec(String(e?.message || ''));
  return { name: e?.name || 'Error', code: code ?? (m ? Number(m[1]) : null),
           message: String(e?.message || e).slice(0, 300) };
}

function timeout() {
  return AbortSignal.timeout(CALL_TIMEOUT_MS);
}

// ---- the two SDK adapters: same operations, wire JSON out ----

async function adapter1x() {
  const sdk = await import('@a2a-js/sdk');
  const c = await import('@a2a-js/sdk/client');
  const factory = new c.ClientFactory(c.ClientFactoryOptions.createFrom(c.ClientFactoryOptions.default, {
    transports: [new c.JsonRpcTransportFactory({ fetchImpl: ucpFetch })],
    cardResolver: new c.DefaultAgentCardResolver({ fetchImpl: ucpFetch }),
  }));
  const client = await factory.createFromUrl(BASE);
  const o = (signal) => ({
    signal, serviceParameters: c.ServiceParameters.create(c.withA2AExtensions(UCP_EXTENSION)),
  });
  const toWire = (r) => (r && r.status !== undefined && r.artifacts !== undefined
    ? sdk.Task.toJSON(r) : r && r.parts !== undefined && r.role !== undefined
      ? sdk.Message.toJSON(r) : r);
  const frame = (sr) => {
    const w = sdk.StreamResponse.toJSON(sr);
    if (w.task) return { kind: 'task', ...w.task };
    if (w.message) return { kind: 'message', ...w.message };
    if (w.statusUpdate) return { kind: 'status-update', ...w.statusUpdate };
    if (w.artifactUpdate) return { kind: 'artifact-update', ...w.artifactUpdate };
    return { kind: 'unknown' };
  };
  const request = (msg, ctx, extra = {}) => sdk.SendMessageRequest.fromJSON({
    message: {
      messageId: randomUUID(),
      role: 'ROLE_USER',
      parts: [...(msg.text ? [{ text: msg.text }] : []), ...(msg.data || []).map((d) => ({ data: d }))],
      ...(ctx.contextId ? { contextId: ctx.contextId } : {}),
      ...(ctx.taskId ? { taskId: ctx.taskId } : {}),
    },
    configuration: { ...extra },
  });
  return {
    protocolVersion: client.protocolVersion,
    card: async () => sdk.AgentCard.toJSON(await client.getAgentCard(o(timeout()))),
    send: async (msg, ctx) => toWire(await client.sendMessage(request(msg, ctx), o(timeout()))),
    stream: async function* (msg, ctx, signal) {
      for await (const sr of client.sendMessageStream(request(msg, ctx), o(signal))) yield frame(sr);
    },
    resubscribe: async function* (taskId, signal) {
      for await (const sr of client.resubscribeTask({ id: taskId }, o(signal))) yield frame(sr);
    },
    getTask: async (id) => toWire(await client.getTask({ id, historyLength: 10 }, o(timeout()))),
    cancel: async (id) => toWire(await client.cancelTask({ id }, o(timeout()))),
    listTasks: async (contextId) => {
      const r = sdk.ListTasksResponse.toJSON(await client.listTasks(
        sdk.ListTasksRequest.fromJSON({ contextId }), o(timeout())));
      return (r.tasks || []).map((t) => ({ id: t.id, state: stateName(t.status?.state) }));
    },
  };
}

async function adapter03() {
  const { A2AClient } = await import('a2a-sdk-03/client');
  const client = await A2AClient.fromCardUrl(`${BASE}/.well-known/agent-card.json`, { fetchImpl: ucpFetch });
  const unwrap = (resp) => {
    if (resp && resp.error) {
      const e = new Error(`JSON-RPC error ${resp.error.code}: ${resp.error.message}`);
      e.code = resp.error.code;
      throw e;
    }
    return resp.result;
  };
  const params = (msg, ctx, extra = {}) => ({
    message: {
      kind: 'message',
      messageId: randomUUID(),
      role: 'user',
      parts: [...(msg.text ? [{ kind: 'text', text: msg.text }] : []),
        ...(msg.data || []).map((d) => ({ kind: 'data', data: d }))],
      ...(ctx.contextId ? { contextId: ctx.contextId } : {}),
      ...(ctx.taskId ? { taskId: ctx.taskId } : {}),
    },
    configuration: { blocking: true, ...extra },
  });
  // A2AClient takes no AbortSignal: a stream is bounded by racing each read with `signal`.
  async function* bounded(gen, signal) {
    const aborted = new Promise((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
    aborted.catch(() => {});
    try {
      for (;;) {
        const next = await Promise.race([gen.next(), aborted]);
        if (next.done) return;
        yield next.value;
      }
    } finally {
      gen.return?.().catch?.(() => {});
    }
  }
  const withTimeout = (p) => Promise.race([p, new Promise((_, rej) => {
    const t = setTimeout(() => rej(new Error(`timed out after ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS);
    t.unref();
  })]);
  return {
    protocolVersion: '0.3',
    card: async () => client.getAgentCard(),
    send: async (msg, ctx) => unwrap(await withTimeout(client.sendMessage(params(msg, ctx)))),
    stream: (msg, ctx, signal) => bounded(client.sendMessageStream(params(msg, ctx)), signal),
    resubscribe: (taskId, signal) => bounded(client.resubscribeTask({ id: taskId }), signal),
    getTask: async (id) => unwrap(await withTimeout(client.getTask({ id, historyLength: 10 }))),
    cancel: async (id) => unwrap(await withTimeout(client.cancelTask({ id }))),
    listTasks: null,
  };
}

// ---- the scenario ----

const ACTIVE = new Set(['submitted', 'working', 'input-required', 'auth-required']);

async function collect(iter, { stopWhen = () => false, onFrame = () => {} } = {}) {
  const out = { frames: [], ended: false, timedOut: false, error: null };
  try {
    for await (const ev of iter) {
      const f = frameOf(ev);
      out.frames.push(f);
      await onFrame(f, out);
      if (stopWhen(f, out)) return out;
    }
    out.ended = true;
  } catch (e) {
    if (e?.name === 'TimeoutError' || e?.name === 'AbortError') out.timedOut = true;
    else out.error = errorOf(e);
  }
  return out;
}

async function main(report) {
  const a = opts.sdk === '1.x' ? await adapter1x() : await adapter03();
  report.protocolVersion = a.protocolVersion;
  const card = await a.card();
  report.card = { name: card.name, url: card.url || null,
    interfaces: (card.supportedInterfaces || []).map((i) => i.protocolVersion),
    streaming: card.capabilities?.streaming ?? null,
    extensions: (card.capabilities?.extensions || []).map((e) => e.uri) };

  // 1. The demo purchase, blocking; contextId kept, taskId kept while the task is active.
  const ctx = { contextId: null, taskId: null };
  report.turns = [];
  for (const msg of DEMO) {
    const s = summarize(await a.send(msg, ctx));
    s.sent = msg.text;
    s.sentTaskId = ctx.taskId;
    report.turns.push(s);
    ctx.contextId = s.contextId || ctx.contextId;
    ctx.taskId = s.type === 'task' && ACTIVE.has(s.state) ? s.taskId : null;
  }
  const purchaseTask = report.turns[report.turns.length - 1].taskId;

  // 2. GetTask on the finished purchase.
  report.getTask = summarize(await a.getTask(purchaseTask));

  // 3. A message without taskId in the purchase's context starts a new task there: a
  //    search waits on the buyer (design: one task per shopping goal).
  report.nextTask = summarize(await a.send({ text: 'show me cookies' },
    { contextId: ctx.contextId, taskId: null }));

  // 4. A new conversation over sendMessageStream.
  const streamed = await collect(a.stream({ text: 'show me cookies' },
    { contextId: null, taskId: null }, timeout()));
  report.stream = streamed;
  const streamTask = streamed.frames.find((f) => f.taskId)?.taskId || null;
  const streamCtx = streamed.frames.find((f) => f.contextId)?.contextId || null;
  report.streamTaskId = streamTask;
  report.streamContextId = streamCtx;

  // 5. Re-attach to that (input-required) task, then continue it while attached: the
  //    first frame is the task as it is; live frames follow unless the server closes
  //    streams of interrupted tasks at once.
  const cont = () => a.send({ text: 'add 2 BISC-001' }, { contextId: streamCtx, taskId: streamTask })
    .then(summarize, (e) => ({ error: errorOf(e) }));
  let continued = null;
  report.resubscribe = await collect(a.resubscribe(streamTask, timeout()), {
    onFrame: async (f, out) => {
      if (out.frames.length === 1) continued = cont();
    },
    stopWhen: (f, out) => out.frames.length > 1 && f.kind === 'status-update' &&
      !['submitted', 'working'].includes(f.state),
  });
  report.continued = await (continued || cont());

  // 6. ListTasks (1.0 only): the purchase context's tasks.
  if (a.listTasks) report.listTasks = await a.listTasks(ctx.contextId);

  // 7. Cancel the input-required task; a second cancel is refused; GetTask agrees.
  report.cancel = summarize(await a.cancel(streamTask));
  try {
    report.cancelAgain = summarize(await a.cancel(streamTask));
  } catch (e) {
    report.cancelAgain = { error: errorOf(e) };
  }
  report.afterCancel = summarize(await a.getTask(streamTask));

  // 8. An unknown task id.
  try {
    report.unknownTask = summarize(await a.getTask(`no-such-task-${randomUUID()}`));
  } catch (e) {
    report.unknownTask = { error: errorOf(e) };
  }
}

// The whole run is bounded too: past the deadline the report so far is printed.
const DEADLINE_MS = 75000;
const report = { sdk: opts.sdk, base: BASE, fatal: null };
function finish() {
  report.http = http;
  process.stdout.write(`${JSON.stringify(report, null, 1)}\n`);
  process.exit(report.fatal ? 1 : 0);
}
setTimeout(() => {
  report.fatal = { name: 'Deadline', code: null, message: `run exceeded ${DEADLINE_MS} ms` };
  finish();
}, DEADLINE_MS).unref();
try {
  await main(report);
} catch (e) {
  report.fatal = { ...errorOf(e), stack: String(e?.stack || '').split('\n').slice(0, 6) };
}
finish();
