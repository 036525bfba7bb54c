// Walks UCP's sample A2A chat client (served, built, in front of agentd) in headless
// Chromium the way a person does, and prints a JSON report for tests/e2e/test_sample_client.py.
//
//   node sample_client.mjs --url http://127.0.0.1:PORT/ --screenshot FILE [--chromium PATH]
//
// Search → Add to Checkout → Start Payment → buyer details typed in one message →
// Complete Payment → pick a card → Confirm Purchase → the page shows "Order ID: …".
// Every wait is bounded; on failure the page is screenshotted to FILE and the report says
// which step failed. Requests leaving 127.0.0.1 (the page's CDN scripts) are refused: the
// test machine is offline and the client works without them.

import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    search: { type: 'string', default: 'cookies' },
    buyer: {
      type: 'string',
      default: 'my email is ann@example.com, ship to Ann Lee, 5 Oak Ave, Austin, TX 78701, US',
    },
  },
});
if (!opts.url || !opts.screenshot) {
  console.error('usage: node sample_client.mjs --url URL --screenshot FILE [--chromium PATH]');
  process.exit(2);
}

const STEP_MS = 20000;
// a browser's first start on a cold, busy machine (a fresh CI clone, two
// cores) can take longer than a step: it gets its own, larger bound
const LAUNCH_MS = 90000;
const DEADLINE_MS = 90000; // the whole walk: past it the page is screenshotted and reported
const report = { steps: [], failed: null, orderId: null, orderConfirmed: false, exchanges: [],
  consoleErrors: [], blocked: [], screenshot: null, pageText: null };

const browser = await chromium.launch({
  executablePath: opts.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  timeout: LAUNCH_MS,
});
const page = await browser.newPage();
page.setDefaultTimeout(STEP_MS);

await page.route('**/*', (route) => {
  const u = new URL(route.request().url());
  if (u.hostname === '127.0.0.1' || u.hostname === 'localhost') return route.continue();
  report.blocked.push(u.origin);
  return route.abort('blockedbyclient');
});
page.on('console', (m) => {
  if (m.type() === 'error') report.consoleErrors.push(m.text().slice(0, 300));
});
// Every JSON-RPC exchange the client makes: what it sent, what came back.
page.on('response', async (res) => {
  if (!new URL(res.url()).pathname.startsWith('/api')) return;
  const ex = { status: res.status(), request: null, result: null, error: null };
  try {
    const req = JSON.parse(res.request().postData() || 'null');
    ex.request = { method: req?.method, message: req?.params?.message };
    const body = await res.json();
    ex.error = body.error || null;
    const r = body.result;
    if (r) {
      const parts = r.parts || r.status?.message?.parts || [];
      const checkout = parts.map((p) => p.data?.['a2a.ucp.checkout']).filter(Boolean).pop();
      ex.result = { kind: r.kind, id: r.id, contextId: r.contextId, state: r.status?.state,
        checkoutStatus: checkout?.status || null, orderId: checkout?.order?.id || null,
        parts: parts.map((p) => (p.text !== undefined
          ? { text: p.text.slice(0, 300) } : { dataKeys: Object.keys(p.data || {}) })) };
    }
  } catch (e) {
    ex.error = ex.error || { parse: String(e).slice(0, 200) };
  }
  report.exchanges.push(ex);
});

const input = page.getByPlaceholder('Type your message...');

// The client disables its input while a request is in flight.
async function waitIdle() {
  await input.waitFor({ state: 'visible' });
  await page.waitForFunction(() => {
    const el = document.querySelector('input[placeholder="Type your message..."]');
    return el && !el.disabled;
  }, null, { timeout: STEP_MS });
}

async function say(text) {
  await waitIdle();
  await input.fill(text);
  await input.press('Enter');
  await waitIdle();
}

const STEPS = ['open', 'search', 'add to checkout', 'start payment', 'buyer details',
  'complete payment', 'choose card', 'confirm purchase'];

async function step(name, fn) {
  const started = Date.now();
  await fn();
  report.steps.push({ name, ms: Date.now() - started });
}

const deadline = new Promise((_, reject) => {
  setTimeout(() => reject(new Error(`the walk exceeded ${DEADLINE_MS} ms`)), DEADLINE_MS).unref();
});
deadline.catch(() => {});

try {
  await Promise.race([deadline, walk()]);
} catch (e) {
  report.failed = { step: STEPS[report.steps.length],
    // eslint-disable-next-line no-control-regex
    error: String(e?.message || e).replace(/\u001b\[[0-9;]*m/g, '').split('\n').slice(0, 4).join(' | ') };
  try {
    await page.screenshot({ path: opts.screenshot, fullPage: true, timeout: 5000 });
    report.screenshot = opts.screenshot;
  } catch (se) {
    report.screenshotError = String(se).slice(0, 200);
  }
}

async function walk() {
  await step('open', async () => {
    await page.goto(opts.url, { waitUntil: 'domcontentloaded' });
    await waitIdle();
  });
  await step('search', async () => {
    await say(opts.search);
    await page.getByRole('button', { name: 'Add to Checkout' }).first().waitFor();
  });
  await step('add to checkout', async () => {
    const enabled = page.locator('button:has-text("Add to Checkout"):not([disabled])');
    await enabled.first().click();
    await waitIdle();
    await page.getByRole('button', { name: 'Start Payment' }).last().waitFor();
  });
  await step('start payment', async () => {
    await page.getByRole('button', { name: 'Start Payment' }).last().click();
    await waitIdle();
  });
  await step('buyer details', async () => {
    await say(opts.buyer);
    await page.getByRole('button', { name: 'Complete Payment' }).last().waitFor();
  });
  await step('complete payment', async () => {
    await page.getByRole('button', { name: 'Complete Payment' }).last().click();
    await page.locator('input[name="paymentMethod"]').first().waitFor();
  });
  await step('choose card', async () => {
    await page.locator('input[name="paymentMethod"]').first().check();
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Confirm Purchase' }).waitFor();
  });
  await step('confirm purchase', async () => {
    await page.getByRole('button', { name: 'Confirm Purchase' }).click();
    const order = page.getByText(/Order ID:/).last();
    await order.waitFor();
    report.orderId = ((await order.textContent()) || '').replace(/^.*Order ID:\s*/, '').trim();
    report.orderConfirmed = await page.getByText('Order Confirmed').last().isVisible();
  });
}

try {
  report.pageText = (await page.locator('main').innerText({ timeout: 3000 })).slice(-4000);
} catch {
  // the page may be gone; the report still says which step failed
}
report.blocked = [...new Set(report.blocked)];
await browser.close();
process.stdout.write(`${JSON.stringify(report, null, 1)}\n`);
process.exit(report.failed ? 1 : 0);
