import { test, expect } from './fixtures/dashboard';
import { freePort, signIn, startServer, Server } from './fixtures/server';
import type { APIRequestContext, Page } from '@playwright/test';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

// One server of its own, so the counts below are exactly what this spec sent.
let server: Server;
test.beforeAll(async () => {
  server = await startServer(await freePort());
});
test.afterAll(async () => {
  await server?.stop();
});
// Signed in to this spec's server; `page.request` shares the page's cookies, so ingest is the admin's.
test.beforeEach(async ({ context }) => {
  await signIn(context, server.url);
});

async function ingest(request: APIRequestContext, entries: object[]) {
  const body = entries.map((e) => JSON.stringify(e)).join('\n');
  const r = await request.post(`${server.url}/api/ingest/logs`, {
    headers: { 'content-type': 'application/x-ndjson' },
    data: body,
  });
  expect(r.status(), await r.text()).toBe(200);
}

async function open(page: Page) {
  await page.goto(server.url);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  return page.getByTestId('panel-errors');
}

test.describe.configure({ mode: 'serial' });

test('a new error appears at the top, live and highlighted, as text', async ({ page }) => {
  const panel = await open(page);
  const message = `payment failed <img src=x onerror="window.__injected=1"> ${Date.now()}`;
  await ingest(page.request, [{ level: 'critical', service: 'payments', message, fields: { order: '42' } }]);
  const first = panel.getByTestId('log-entry').first();
  await expect(first).toContainText(message);
  await expect(first).toHaveAttribute('data-level', 'critical');
  await expect(first).toHaveClass(/level-critical/);
  await expect(first).toContainText('order=42');
  expect(await page.evaluate(() => (window as any).__injected)).toBeUndefined();
  expect(await first.locator('img').count()).toBe(0);
});

test('scrolling down loads older entries page by page until everything is shown', async ({ page }) => {
  // From the last hour (entries past the 30-day retention would be pruned at once).
  const start = Date.now() - 3_600_000;
  const older = Array.from({ length: 260 }, (_, i) => ({
    level: i % 5 === 0 ? 'error' : 'info',
    service: 'batch',
    message: `older entry ${i}`,
    timestamp: start + i * 1000,
  }));
  await ingest(page.request, older);
  const panel = await open(page);
  const entries = panel.getByTestId('log-entry');
  // Snapshot (newest 100) plus the first page from the store.
  await expect.poll(() => entries.count()).toBeGreaterThanOrEqual(50);
  const list = panel.getByTestId('log-list');
  for (let i = 0; i < 12; i++) {
    await list.evaluate((el) => el.scrollTo(0, el.scrollHeight));
    await page.waitForTimeout(150);
  }
  await expect(panel.getByText('That is everything stored.')).toBeVisible();
  await expect(entries).toHaveCount(261);
  await expect(entries.last()).toContainText('older entry 0');
});

test('filters narrow the list by level, service and text', async ({ page }) => {
  const panel = await open(page);
  await panel.getByTestId('log-level').selectOption('critical');
  await expect(panel.getByTestId('log-entry')).toHaveCount(1);
  await expect(panel.getByTestId('log-entry')).toContainText('payment failed');
  await panel.getByTestId('log-level').selectOption('');
  await panel.getByTestId('log-service').selectOption('batch');
  await panel.getByTestId('log-search').fill('older entry 25');
  // 25 and 250–259.
  await expect(panel.getByTestId('log-entry')).toHaveCount(11);
  await panel.getByTestId('log-level').selectOption('error');
  // Of those, every fifth is an error: 25, 250 and 255.
  await expect(panel.getByTestId('log-entry')).toHaveCount(3);
});

test('while reading older entries the list holds still and a badge counts new ones', async ({ page }) => {
  await page.setViewportSize({ width: 1440, height: 1000 });
  const panel = await open(page);
  const list = panel.getByTestId('log-list');
  await list.evaluate((el) => el.scrollTo(0, 200));
  const top = await panel.getByTestId('log-entry').first().getAttribute('data-id');
  await ingest(page.request, [{ level: 'error', service: 'api', message: 'arrived while reading' }]);
  await expect(panel.getByTestId('log-new')).toHaveText('1 new');
  expect(await panel.getByTestId('log-entry').first().getAttribute('data-id')).toBe(top);
  await page.screenshot({ path: path.join(artifacts, 'error-log.png'), fullPage: true });
  await panel.getByTestId('log-new').click();
  await expect(panel.getByTestId('log-entry').first()).toContainText('arrived while reading');
  await expect(panel.getByTestId('log-new')).toHaveCount(0);
});
