// The console's browser test: drives Debian's Chromium through playwright-core against a
// running demo server (`bulkhost serve --dev` with the bundled plugins synthetic, erp_datasets
// and catalog in its plugins directory) and checks what a person sees on each page.
//
//   node tests/browser/console.test.mjs <base-url> <screenshot-dir>
//
// BULKHOST_OPERATOR_TOKEN, when set, signs in to the operator's page too; without it the page
// must refuse a wrong token. Exits non-zero, naming the step, on the first failure.

import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, shots] = process.argv.slice(2).map((arg) => arg?.replace(/\/$/, ''));
if (!base || !shots) {
  console.error('usage: node tests/browser/console.test.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}

const USER = 'demo.admin';
const PASSWORD = 'demo';
const VIEWPORT = { width: 1280, height: 800 };
const TIMEOUT = 15_000;
// Each run writes a new value, so the change feed always sees a change.
const RUN = Date.now().toString(36);

const started = Date.now();
await mkdir(shots, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--no-first-run', '--disable-sync', '--disable-quic'],
});

/** Uncaught errors of the pages' scripts: any of them fails the step it happened in. */
const pageErrors = [];
async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: VIEWPORT, acceptDownloads: true, ...options });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  return page;
}

let passed = 0;
let current = null; // the page a failure's screenshot shows

async function step(name, body) {
  const begun = Date.now();
  try {
    await body();
    if (pageErrors.length) throw new Error(`the page's script failed: ${pageErrors.join('; ')}`);
    passed += 1;
    console.log(`ok   ${name} (${Date.now() - begun} ms)`);
  } catch (error) {
    console.error(`FAIL ${name}: ${error.message.split('\n')[0]}`);
    await current?.screenshot({ path: join(shots, 'failure.png') }).catch(() => {});
    console.error(`     (the page at the failure: ${join(shots, 'failure.png')})`);
    console.log(`${passed} passed, 1 failed`);
    await browser.close();
    process.exit(1);
  }
}

// ---- Expectations: poll what the page shows until it matches or the time is up. -----------

async function until(what, probe, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await probe().catch((error) => `(${error.message.split('\n')[0]})`);
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`${what}; last saw: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function expectText(locator, pattern, what, timeout) {
  await until(`${what} should match ${pattern}`, async () => {
    const text = (await locator.first().innerText({ timeout: 1000 })).trim();
    return pattern.test(text) || text;
  }, timeout);
}

async function expectCount(locator, count, what) {
  await until(`${what} should number ${count}`, async () => {
    const n = await locator.count();
    return n === count || n;
  });
}

async function expectAttribute(locator, name, value, what, timeout) {
  await until(`${what}: ${name} should be ${value}`, async () => {
    const seen = await locator.first().getAttribute(name, { timeout: 1000 });
    return seen === value || seen;
  }, timeout);
}

const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** "Page 2 of 3" → [2, 3] */
async function pageIndicator(page) {
  const text = await byTestId(page, 'page-indicator').innerText();
  const [, at, of] = /Page (\d+) of (\d+)/.exec(text) ?? [];
  return [Number(at), Number(of)];
}

async function columnTexts(page, column) {
  await page.locator('[data-testid="results"]').waitFor();
  const headers = await page.locator('[data-testid="results"] thead th').allInnerTexts();
  const index = headers.findIndex((text) => text.trim().replace(/ [▲▼]$/, '') === column);
  if (index < 0) throw new Error(`no column ${column} among ${headers.join(', ')}`);
  return page.locator(`[data-testid="results"] tbody tr td:nth-child(${index + 1})`).allInnerTexts();
}

async function shoot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

// ---- The console ---------------------------------------------------------------------------

const page = await newPage();
current = page;
const nav = (id) => byTestId(page, `nav-${id}`).click();

await step('sign-in refuses a wrong password', async () => {
  await page.goto(`${base}/console/`);
  await byTestId(page, 'login-user').fill(USER);
  await byTestId(page, 'login-password').fill('not-the-password');
  await byTestId(page, 'login-submit').click();
  await expectText(byTestId(page, 'login-error'), /Wrong user name or password/, 'the sign-in error');
  await shoot(page, 'signin');
});

await step('sign in as demo.admin and see the overview', async () => {
  await byTestId(page, 'login-password').fill(PASSWORD);
  await byTestId(page, 'login-submit').click();
  await expectText(byTestId(page, 'tenant'), /^demo$/, 'the tenant in the top bar');
  await expectText(page.locator('h1'), /Overview/, 'the heading');
  await expectText(byTestId(page, 'stat-collections'), /Collections\s+\d+/i, 'the collections card');
});

await step('list the collections with their counts', async () => {
  await nav('collections');
  await expectText(byTestId(page, 'collection-link-stock-taking-documents'), /stock-taking-documents/, 'the stock-taking link');
  await expectText(byTestId(page, 'count-products'), /^\d[\d,]*$/, 'the products count');
  await shoot(page, 'collections');
});

let pages;
await step('browse products page by page', async () => {
  await byTestId(page, 'collection-link-products').click();
  await expectText(page.locator('h1'), /Product List/, 'the collection title');
  await byTestId(page, 'page-size').selectOption('10');
  await expectText(byTestId(page, 'page-indicator'), /Page 1 of [2-9]/, 'the page indicator at 10 per page');
  await expectCount(page.locator('[data-testid="result-row"]'), 10, 'the rows of page 1');
  [, pages] = await pageIndicator(page);
  const firstIds = await columnTexts(page, 'product_id');
  await byTestId(page, 'page-next').click();
  await expectText(byTestId(page, 'page-indicator'), new RegExp(`Page 2 of ${pages}`), 'the indicator after Next');
  const secondIds = await columnTexts(page, 'product_id');
  if (secondIds.some((id) => firstIds.includes(id))) throw new Error(`page 2 repeats page 1: ${secondIds}`);
  await byTestId(page, 'page-last').click();
  await expectText(byTestId(page, 'page-indicator'), new RegExp(`Page ${pages} of ${pages}`), 'the indicator after Last');
  if (!(await byTestId(page, 'page-next').evaluate((el) => el.tagName === 'SPAN'))) throw new Error('Next is still a link on the last page');
  await byTestId(page, 'page-first').click();
  await expectText(byTestId(page, 'page-indicator'), /Page 1 of/, 'the indicator after First');
});

await step('search products', async () => {
  await byTestId(page, 'search').fill('coffee');
  await byTestId(page, 'search-submit').click();
  await expectText(byTestId(page, 'request-line'), /search=coffee/, 'the request line');
  const names = await columnTexts(page, 'name');
  if (!names.length || names.some((name) => !/coffee/i.test(name))) throw new Error(`results do not all match: ${names}`);
  await shoot(page, 'collection');
});

await step('a shop with errors shows them beside the fields, then is accepted', async () => {
  await nav('collections');
  await byTestId(page, 'collection-link-shops').click();
  await expectText(page.locator('h1'), /Shop List/, 'the collection title');
  await byTestId(page, 'field-shop_id').fill('');
  await byTestId(page, 'field-name').fill('x'.repeat(250));
  await byTestId(page, 'post-submit').click();
  await expectText(byTestId(page, 'error-shop_id'), /This field is required/, 'the shop_id error');
  await expectText(byTestId(page, 'error-name'), /no more than 200 characters/, 'the name error');
  await expectText(byTestId(page, 'form-errors'), /400/, 'the form summary');
  await byTestId(page, 'post-panel').scrollIntoViewIfNeeded();
  await shoot(page, 'post-errors');
  await byTestId(page, 'field-shop_id').fill('T-BROWSER');
  await byTestId(page, 'field-name').fill('Browser test shop');
  await byTestId(page, 'post-submit').click();
  await expectText(byTestId(page, 'post-result'), /Saved: .* inserted, \d+ updated/, 'the saved message');
  if (await byTestId(page, 'error-name').isVisible()) throw new Error('the name error is still shown');
  await expectText(byTestId(page, 'results'), /T-BROWSER/, 'the refreshed list');
});

await step('queue an export of synthetic with count 5000, see it reach OK and download it', async () => {
  await nav('exports');
  await byTestId(page, 'export-dataset').selectOption('synthetic');
  await byTestId(page, 'param-count').fill('5000');
  await byTestId(page, 'export-queue').click();
  const queued = byTestId(page, 'export-queued');
  await expectText(queued, /Queued request/, 'the queued message');
  const id = await queued.getAttribute('data-request');
  const row = page.locator(`[data-testid="export-row"][data-request="${id}"]`);
  await expectAttribute(row, 'data-state', 'OK', 'the export row', 60_000);
  await expectAttribute(row.locator('[data-testid="export-progress"]'), 'aria-valuenow', '5000', 'the progress bar');
  await expectText(row.locator('[data-testid="export-records"]'), /5,000 records/, 'the record count');
  await shoot(page, 'exports');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    row.locator('[data-testid="export-download"]').click(),
  ]);
  const records = JSON.parse(await readFile(await download.path(), 'utf8'));
  if (!Array.isArray(records) || records.length !== 5000) throw new Error(`the download holds ${records.length} records`);
  if (!download.suggestedFilename().endsWith('.json')) throw new Error(`the download is named ${download.suggestedFilename()}`);
});

await step('the change feed shows a new write live', async () => {
  await nav('changes');
  await expectAttribute(byTestId(page, 'feed-status'), 'data-state', 'live', 'the feed status');
  const status = await page.evaluate(async ({ user, password, run }) => {
    const response = await fetch('/api/v1/cashiers/', {
      method: 'POST',
      headers: { Authorization: `Basic ${btoa(`${user}:${password}`)}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ cashier_id: 'C-BROWSER', name: `Browser run ${run}` }),
    });
    return response.status;
  }, { user: USER, password: PASSWORD, run: RUN });
  if (status !== 201) throw new Error(`posting the cashier answered ${status}`);
  await expectText(byTestId(page, 'feed-count'), /^1 change since/, 'the live counter');
  await expectText(page.locator('[data-testid="change-row"]'), /cashiers[\s\S]*code:C-BROWSER/, 'the newest change row');
  await shoot(page, 'changes');
});

await step('submit a batch of two operations, see the responses and retry the failed one', async () => {
  await nav('batches');
  await byTestId(page, 'batch-operations').fill([
    JSON.stringify({ operationId: 'shop', method: 'POST', endpoint: '/api/v1/shops/', body: { shop_id: 'B-BROWSER', name: 'Batch shop' } }),
    JSON.stringify({ operationId: 'broken', method: 'POST', endpoint: '/api/v1/shops/', body: {} }),
  ].join('\n'));
  await byTestId(page, 'batch-submit').click();
  const card = byTestId(page, 'batch').first();
  await expectText(card.locator('[data-testid="batch-status"]'), /^finished$/, 'the batch status');
  await expectCount(card.locator('[data-testid="batch-response-row"]'), 2, 'the responses');
  await expectText(card.locator('[data-operation="shop"]'), /201/, 'the first response');
  await expectText(card.locator('[data-operation="broken"]'), /400[\s\S]*This field is required/, 'the second response');
  await card.locator('[data-testid="batch-retry"]').click();
  await expectCount(byTestId(page, 'batch'), 2, 'the batches shown');
  const retried = byTestId(page, 'batch').first();
  await expectText(retried.locator('[data-testid="batch-status"]'), /^finished$/, 'the retried batch status');
  await expectCount(retried.locator('[data-testid="batch-response-row"]'), 1, 'the retried responses');
  await shoot(page, 'batches');
});

await step('plugins: the list shows, and a junk upload shows the 422 error', async () => {
  await nav('plugins');
  await byTestId(page, 'plugin-list').waitFor();
  await byTestId(page, 'plugin-name').fill(`junk-${RUN}`);
  await byTestId(page, 'plugin-file').setInputFiles({ name: 'junk.wasm', mimeType: 'application/wasm', buffer: Buffer.from('not a component') });
  await byTestId(page, 'plugin-upload').click();
  await expectText(byTestId(page, 'plugin-error'), /422[\s\S]*not a valid WebAssembly component/, 'the upload error');
  if (await page.locator(`[data-testid="plugin-row"][data-name="junk-${RUN}"]`).count()) throw new Error('the junk plugin is listed');
  await shoot(page, 'plugins');
});

await step('operator: health counters, the token sign-in, and the tenants', async () => {
  await nav('operator');
  await expectText(byTestId(page, 'metric-queue-depth'), /Export queue\s+\d+/i, 'the queue depth');
  await expectText(byTestId(page, 'metric-failures'), /Failures since the server started/, 'the failure counters');
  const token = process.env.BULKHOST_OPERATOR_TOKEN;
  await byTestId(page, 'operator-token').fill(token ?? 'not-a-token');
  await byTestId(page, 'operator-signin').click();
  if (token) {
    await expectText(byTestId(page, 'plugin-list'), /synthetic/, 'the operator plugins');
    const demo = page.locator('[data-testid="tenant-row"][data-name="demo"]');
    await expectText(demo, /demo[\s\S]*\d+(\.\d)? (KiB|MiB) \/ 10 GiB/, 'the demo tenant’s documents beside its quota');
    await byTestId(page, 'failure-list').waitFor();
    await byTestId(page, 'tenants-panel').scrollIntoViewIfNeeded();
  } else {
    await expectText(byTestId(page, 'operator-error'), /401/, 'the refused token');
  }
  await shoot(page, 'operator');
});

// ---- The browsable API: a `.api` page with the browser's own Basic credentials -------------

const browsable = await newPage({ httpCredentials: { username: USER, password: PASSWORD } });
current = browsable;

await step('the .api page of products is a browsable API with pagination', async () => {
  await browsable.goto(`${base}/api/v1/products/?format=api&page_size=5`);
  await expectText(browsable.locator('h1'), /Product List/, 'the title');
  await expectCount(browsable.locator('[data-testid="result-row"]'), 5, 'the rows');
  const [, last] = await pageIndicator(browsable);
  await byTestId(browsable, 'page-next').click();
  await browsable.waitForURL(/[?&]page=2\b/);
  await expectText(byTestId(browsable, 'page-indicator'), new RegExp(`Page 2 of ${last}`), 'the indicator after Next');
  if (!/format=api/.test(browsable.url())) throw new Error(`Next left the browsable form: ${browsable.url()}`);
  await byTestId(browsable, 'page-last').click();
  await expectText(byTestId(browsable, 'page-indicator'), new RegExp(`Page ${last} of ${last}`), 'the indicator after Last');
  await byTestId(browsable, 'page-prev').click();
  await expectText(byTestId(browsable, 'page-indicator'), new RegExp(`Page ${last - 1} of ${last}`), 'the indicator after Previous');
});

await step('the .api page searches, orders and shows OPTIONS', async () => {
  await byTestId(browsable, 'search').fill('coffee');
  await byTestId(browsable, 'search').press('Enter');
  await browsable.waitForURL(/search=coffee/);
  // A `.api` page renders its view after its OPTIONS request: wait for the new request line.
  await expectText(byTestId(browsable, 'request-line'), /search=coffee/, 'the request line');
  const names = await columnTexts(browsable, 'name');
  if (!names.length || names.some((name) => !/coffee/i.test(name))) throw new Error(`results do not all match: ${names}`);
  await byTestId(browsable, 'ordering').selectOption('-price');
  await browsable.waitForURL(/ordering=-price/);
  await expectText(byTestId(browsable, 'request-line'), /ordering=-price/, 'the request line');
  const prices = (await columnTexts(browsable, 'price')).map(Number);
  if (prices.some((price, i) => i && price > prices[i - 1])) throw new Error(`prices are not descending: ${prices}`);
  await byTestId(browsable, 'options-panel').locator('summary').click();
  await expectText(byTestId(browsable, 'options-json'), /"actions"[\s\S]*"POST"/, 'the OPTIONS metadata');
  await shoot(browsable, 'browsable');
});

await step('the .api page posts a document and shows its field errors', async () => {
  await byTestId(browsable, 'field-product_id').fill('P-BROWSER');
  await byTestId(browsable, 'post-submit').click();
  await expectText(byTestId(browsable, 'error-name'), /This field is required/, 'the name error');
  await byTestId(browsable, 'field-name').fill('Browser test product');
  await byTestId(browsable, 'post-submit').click();
  await expectText(byTestId(browsable, 'post-result'), /Saved/, 'the saved message');
});

// ---- The overview for the README -----------------------------------------------------------

current = page;
await step('the overview, after all that', async () => {
  await nav('overview');
  await expectText(byTestId(page, 'overview-changes'), /cashiers/, 'the latest changes');
  await expectText(byTestId(page, 'overview-exports'), /synthetic/, 'the latest exports');
  await shoot(page, 'console');
});

await browser.close();
console.log(`${passed} passed, 0 failed (${((Date.now() - started) / 1000).toFixed(1)} s); screenshots in ${shots}`);
