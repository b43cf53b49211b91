import { test, expect } from './fixtures/dashboard';
import { freePort, signIn, startServer, Server } from './fixtures/server';
import { createServer, IncomingMessage, Server as HttpServer } from 'node:http';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

// Refusing a bad rule is a 400, which the browser logs as a failed resource.
test.use({ allowedErrors: /status of 400/ });

/** A webhook receiver on 127.0.0.1: keeps every JSON body POSTed to it. */
async function receiver(): Promise<{ port: number; bodies: any[]; server: HttpServer }> {
  const bodies: any[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      try {
        bodies.push(JSON.parse(text));
      } catch {
        bodies.push({ unparsed: text });
      }
      res.writeHead(200).end('ok');
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { port, bodies, server };
}

test.describe('the Alerts page', () => {
  let server: Server;
  let hook: Awaited<ReturnType<typeof receiver>>;

  test.beforeAll(async () => {
    hook = await receiver();
    server = await startServer(
      await freePort(),
      undefined,
      `
[notify]
group_wait = "1s"
group_interval = "2s"

[[channels]]
name = "e2e-hook"
kind = "webhook"
url = "http://127.0.0.1:${hook.port}/hook"
`,
    );
  });

  test.afterAll(async () => {
    await server?.stop();
    hook?.server.close();
  });

  test('an admin adds a rule; it fires as a toast and in the list of both tabs, is acknowledged in one and seen in the other, and reaches the webhook', async ({ page, context }) => {
    await signIn(context, server.url);
    const other = await context.newPage();
    // One tab comes from the dashboard by its link: the dashboard's own build of the app lacks this page, so
    // the page is loaded from the server with the whole app, and works as when opened directly (the other).
    await page.goto(`${server.url}/`);
    await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'live');
    await page.getByTestId('alerts-link').click();
    await expect(page).toHaveURL(/\/alerts$/);
    await other.goto(`${server.url}/alerts`);
    for (const p of [page, other]) {
      await expect(p.getByTestId('rule-form')).toBeVisible();
      await expect(p.getByTestId('connection')).toHaveAttribute('data-state', 'live');
    }
    // The channel is listed, idle.
    const channel = page.locator('[data-testid="channel-row"][data-channel="e2e-hook"]');
    await expect(channel).toHaveAttribute('data-state', 'idle');

    // A bad threshold is refused with the reason.
    const form = page.getByTestId('rule-form');
    await form.getByTestId('rule-name').fill('e2e-page-errors');
    await form.getByTestId('rule-metric').selectOption('log_errors_per_minute');
    await form.getByTestId('rule-subject').fill('e2e-page');
    await form.getByTestId('rule-threshold').fill('lots');
    await form.getByTestId('rule-severity').selectOption('critical');
    await form.getByTestId('rule-labels').fill('team=e2e');
    await form.getByTestId('rule-message').fill('{subject}: {value} errors');
    await form.getByTestId('rule-save').click();
    await expect(page.getByTestId('rule-error')).toContainText('threshold must be a number');
    await form.getByTestId('rule-threshold').fill('1');
    await form.getByTestId('rule-save').click();
    // Both tabs list the new rule (the other one through the stream).
    for (const p of [page, other]) {
      await expect(p.locator('[data-testid="rule-row"][data-rule="e2e-page-errors"]')).toHaveAttribute('data-source', 'dashboard');
    }
    // The form starts afresh for the next rule.
    await expect(page.getByTestId('rule-name')).toHaveValue('');

    // Two errors in a minute are more than one: the rule fires.
    const lines = [1, 2].map((i) => JSON.stringify({ level: 'error', service: 'e2e-page', message: `upload ${i} failed` }));
    const r = await page.request.post(`${server.url}/api/ingest/logs`, {
      headers: { 'content-type': 'application/x-ndjson' },
      data: lines.join('\n'),
    });
    expect(r.ok()).toBeTruthy();
    const row = (p: typeof page) => p.locator('[data-testid="alert-row"][data-rule="e2e-page-errors"]').first();
    for (const p of [page, other]) {
      await expect(p.getByTestId('alert-toast').filter({ hasText: 'e2e-page-errors' })).toBeVisible();
      await expect(row(p)).toHaveAttribute('data-state', 'firing');
      await expect(p.locator('[data-testid="history-row"][data-rule="e2e-page-errors"]').first()).toHaveAttribute('data-state', 'firing');
    }
    await expect(row(page)).toContainText('e2e-page: 2 errors');
    await page.screenshot({ path: path.join(artifacts, 'alerts-page-firing.png'), fullPage: true });

    await row(page).getByTestId('alert-acknowledge').click();
    await expect(row(other)).toHaveAttribute('data-acknowledged', 'true');
    await expect(other.locator('[data-testid="history-row"][data-rule="e2e-page-errors"]').first().getByTestId('history-ack')).toContainText('admin');

    // The webhook got one grouped message for it, and the channel says so.
    await expect.poll(() => hook.bodies.filter((b) => b.groupLabels?.alertname === 'e2e-page-errors').length, { timeout: 15_000 }).toBe(1);
    const message = hook.bodies.find((b) => b.groupLabels?.alertname === 'e2e-page-errors');
    expect(message.status).toBe('firing');
    expect(message.alerts[0].labels.team).toBe('e2e');
    await expect(channel).toHaveAttribute('data-state', 'ok');

    // The test button sends at once and shows where it went.
    await channel.getByTestId('channel-test').click();
    await expect(channel.getByTestId('channel-test-result')).toContainText(`sent to 127.0.0.1:${hook.port}`);
    await expect.poll(() => hook.bodies.some((b) => b.alerts?.[0]?.labels?.alertname === 'TestAlert')).toBeTruthy();

    // The history filters by state.
    await other.getByTestId('history-state').selectOption('resolved');
    await other.getByTestId('history-apply').click();
    await expect(other).toHaveURL(/state=resolved/);
    await expect(other.getByTestId('history-empty')).toBeVisible();
    await page.screenshot({ path: path.join(artifacts, 'alerts-page.png'), fullPage: true });

    // Changing the rule: the form takes its values, the name stays.
    const ruleRow = (p: typeof page) => p.locator('[data-testid="rule-row"][data-rule="e2e-page-errors"]');
    await ruleRow(page).getByTestId('rule-edit').click();
    await expect(page.getByTestId('rule-name')).toHaveValue('e2e-page-errors');
    await expect(page.getByTestId('rule-threshold')).toHaveValue('1');
    await expect(page.getByTestId('rule-severity')).toHaveValue('critical');
    await page.getByTestId('rule-threshold').fill('10');
    await page.getByTestId('rule-save').click();
    await expect(ruleRow(other)).toContainText('> 10');
    // Removing it resolves its alert in every tab.
    await ruleRow(page).getByTestId('rule-delete').click();
    await expect(ruleRow(other)).toHaveCount(0);
    await expect(row(other)).toHaveAttribute('data-state', 'resolved');
    await page.setViewportSize({ width: 360, height: 800 });
    await page.screenshot({ path: path.join(artifacts, 'alerts-page-360.png'), fullPage: true });
    await other.close();
  });
});
