import { test, expect } from './fixtures/dashboard';
import { signIn } from './fixtures/server';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

test('Restart in one tab: both tabs show Restarting… then Succeeded, the output streams, the audit row appears', async ({ page, context }) => {
  const other = await context.newPage();
  for (const p of [page, other]) {
    await p.goto('/');
    await expect(p.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  }
  const row = (p: typeof page) => p.locator('[data-testid="control-row"][data-target="billing"]');
  const button = (p: typeof page) => row(p).getByTestId('run-restart');
  await expect(button(page)).toHaveText('Restart');
  await expect(button(page)).toBeEnabled();

  await button(page).click();
  // The server's events move both tabs: Restarting… while it runs, then the end, with no reload.
  for (const p of [page, other]) {
    await expect(button(p)).toHaveText('Restarting…');
    await expect(button(p)).toBeDisabled();
    await expect(row(p).getByTestId('run-status')).toHaveAttribute('data-state', 'running');
  }
  await expect(page.getByTestId('run-output')).toContainText('stopping billing');
  await page.getByTestId('panel-controls').screenshot({ path: path.join(artifacts, 'controls-running.png') });
  for (const p of [page, other]) {
    await expect(row(p).getByTestId('run-status')).toHaveAttribute('data-state', 'succeeded', { timeout: 15_000 });
    await expect(button(p)).toHaveText('Restart');
    await expect(button(p)).toBeEnabled();
  }
  await expect(page.getByTestId('run-output')).toContainText('started billing');
  await expect(page.getByTestId('run-output-title')).toContainText('restart on billing — Succeeded: exit status 0');
  await page.getByTestId('panel-controls').screenshot({ path: path.join(artifacts, 'controls-done.png') });

  // The other tab opens the same run's output from the list: read back from the run's log.
  await other.locator('[data-testid="run-row"][data-command="restart"][data-target="billing"]').first().click();
  await expect(other.getByTestId('run-output')).toContainText('started billing');

  await page.getByTestId('audit-link').click();
  await expect(page).toHaveURL(/\/audit$/);
  const audit = page.locator('[data-testid="audit-row"][data-action="command.restart"]').first();
  await expect(audit).toContainText('billing');
  await expect(audit).toHaveAttribute('data-outcome', 'succeeded');
  await page.screenshot({ path: path.join(artifacts, 'audit.png'), fullPage: true });
  await other.close();
});

test.describe('refusals', () => {
  // The refused deploy is a 400 the browser logs; the panel shows its reason.
  test.use({ allowedErrors: /status of 400/ });

test('a deploy with a bad version is refused with the reason; a viewer sees the controls disabled', async ({ page, browser }) => {
  await page.goto('/');
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  const form = page.getByTestId('form-deploy');
  // The empty field shows an example of a version, not the pattern; the pattern is its hint.
  await expect(form.getByTestId('param-version')).toHaveAttribute('placeholder', 'e.g. v1.4.2');
  await expect(form.getByTestId('param-version')).toHaveAttribute('title', /^Must match v\?\[0-9\]\+/);
  await form.getByTestId('param-version').fill('1.2; rm -rf /');
  await form.getByTestId('submit-deploy').click();
  await expect(page.getByTestId('control-error')).toContainText("does not match the pattern");

  const name = `viewer${Date.now() % 100000}`;
  const url = process.env.WATCHPOST_BASE_URL!;
  // The shared server's data directory is not known here: the admin adds the viewer over the API.
  const r = await page.request.post(`${url}/api/add_user`, { form: { name, role: 'viewer', password: 'a viewer password' } });
  expect(r.ok()).toBeTruthy();
  const context = await browser.newContext({ baseURL: url });
  await signIn(context, url, { name, password: 'a viewer password' });
  const viewer = await context.newPage();
  await viewer.goto('/');
  await expect(viewer.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  await expect(viewer.getByTestId('controls-viewer')).toBeVisible();
  const controls = viewer.getByTestId('panel-controls');
  for (const testId of ['run-restart', 'run-logs', 'submit-deploy']) {
    const buttons = controls.getByTestId(testId);
    expect(await buttons.count()).toBeGreaterThan(0);
    for (const b of await buttons.all()) await expect(b).toBeDisabled();
  }
  await expect(viewer.getByTestId('audit-link')).toHaveCount(0);
  await controls.screenshot({ path: path.join(artifacts, 'controls-viewer.png') });
  await context.close();
});
});

test('a deploy from the form moves the indicator Queued → In progress → Success in two tabs', async ({ page, context }) => {
  const other = await context.newPage();
  for (const p of [page, other]) {
    await p.goto('/');
    await expect(p.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  }
  const card = (p: typeof page) =>
    p.locator('[data-testid="deploy-card"][data-service="shop"][data-environment="production"]');
  const form = page.getByTestId('form-deploy');
  await form.getByTestId('param-version').fill('2.4.1');
  await form.getByTestId('param-environment').selectOption('production');
  await form.getByTestId('submit-deploy').click();
  for (const p of [page, other]) {
    await expect(card(p)).toHaveAttribute('data-state', 'in_progress');
    await expect(card(p)).toContainText('2.4.1');
  }
  await expect(card(page).getByTestId('deploy-step')).toContainText(/deploying|step|In progress/);
  await page.getByTestId('panel-deployments').screenshot({ path: path.join(artifacts, 'deployment-in-progress.png') });
  for (const p of [page, other]) {
    await expect(card(p)).toHaveAttribute('data-state', 'success', { timeout: 15_000 });
  }
  await card(page).getByTestId('deploy-history').click();
  await expect(page.getByTestId('deploy-history-list').locator('[data-testid="deploy-history-row"]').first())
    .toHaveAttribute('data-state', 'success');
  await page.getByTestId('panel-deployments').screenshot({ path: path.join(artifacts, 'deployments.png') });
  // The open history follows the service's deployments: the next one shows in it, then how it ended.
  const newest = page.getByTestId('deploy-history-list').locator('[data-testid="deploy-history-row"]').first();
  await expect(newest).toContainText('2.4.1');
  await form.getByTestId('param-version').fill('2.4.2');
  await form.getByTestId('param-environment').selectOption('production');
  await form.getByTestId('submit-deploy').click();
  await expect(newest).toContainText('2.4.2');
  await expect(newest).toHaveAttribute('data-state', 'success', { timeout: 15_000 });
  await other.close();
});

test('a deployment CI reports shows on the API latency chart as a marker', async ({ page }) => {
  const url = process.env.WATCHPOST_BASE_URL!;
  await page.goto('/');
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'live');
  // Watchpost's own service is what the API panel shows first.
  const r = await page.request.post(`${url}/api/deployments`, {
    data: { service: 'watchpost', environment: 'e2e', version: 'v9.9.9', state: 'success' },
  });
  expect(r.status()).toBe(201);
  await expect(page.getByTestId('api-latency')).not.toHaveAttribute('data-marks', '0', { timeout: 15_000 });
  await expect(page.locator('[data-testid="deploy-card"][data-service="watchpost"]')).toHaveAttribute('data-state', 'success');
  // A few more intervals, so the marker sits inside the chart's time axis rather than at its edge.
  await page.waitForTimeout(3_000);
  await page.getByTestId('panel-api').screenshot({ path: path.join(artifacts, 'api-deploy-marker.png') });
});
