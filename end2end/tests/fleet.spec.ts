// The fleet in a real browser: a server of its own, two real watchpost-agent processes (the release binary)
// pushing to it as hosts of two environments, the Hosts page, and choosing a host on the dashboard.
import { test, expect } from './fixtures/dashboard';
import { addUser, freePort, signIn, startServer, Server } from './fixtures/server';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');
const watchpost = process.env.WATCHPOST_BIN ?? path.join(root, 'target/release/watchpost');
const agentBin = process.env.WATCHPOST_AGENT_BIN ?? path.join(root, 'target/release/watchpost-agent');
const artifacts = path.join(__dirname, '..', 'artifacts');

/** Adds a host with the real CLI, as an admin would; the token file's path. */
function addHost(data: string, name: string, environment: string): string {
  const run = spawnSync(watchpost, ['token', 'add', name, '--role', 'agent', '--environment', environment], {
    env: { ...process.env, WATCHPOST_DATA_DIR: data },
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`watchpost token add ${name} failed: ${run.stderr}`);
  expect(run.stderr).toContain(`watchpost-agent --hub`);
  const file = path.join(data, `${name}.token`);
  writeFileSync(file, run.stdout.trim());
  return file;
}

function startAgent(server: Server, name: string, environment: string, token: string, extra: string[] = []): ChildProcess {
  return spawn(
    agentBin,
    ['--hub', server.url, '--token-file', token, '--name', name, '--environment', environment, '--interval', '1s',
      '--spool-dir', mkdtempSync(path.join(tmpdir(), `spool-${name}-`)), ...extra],
    { stdio: 'ignore', env: { ...process.env, RUST_LOG: 'info' } },
  );
}

/** web-1's own commands: a check that prints a line, waits, and prints another, so the output is seen live. */
function webCommands(data: string): string[] {
  const script = path.join(data, 'check.sh');
  writeFileSync(script, '#!/bin/sh\necho "checking $1"\nsleep 2\necho "$1 is active"\n');
  chmodSync(script, 0o755);
  const file = path.join(data, 'web-1-commands.toml');
  writeFileSync(file, `[[commands]]\nname = "check"\ntitle = "Check"\nprogram = "${script}"\nargs = ["{target}"]\ntargets = ["nginx"]\n`);
  return ['--commands', file];
}

test.describe('the fleet', () => {
  let server: Server;
  const agents: Record<string, ChildProcess> = {};

  test.beforeAll(async () => {
    const data = mkdtempSync(path.join(tmpdir(), 'watchpost-fleet-'));
    const web = addHost(data, 'web-1', 'prod');
    const db = addHost(data, 'db-1', 'staging');
    addHost(data, 'cache-1', 'prod'); // added, never started: offline
    server = await startServer(await freePort(), data, '', {
      WATCHPOST_ENVIRONMENT: 'ops',
      WATCHPOST_OFFLINE_AFTER: '4s',
    });
    agents.web = startAgent(server, 'web-1', 'prod', web, webCommands(data));
    agents.db = startAgent(server, 'db-1', 'staging', db);
  });

  test.afterAll(async () => {
    for (const a of Object.values(agents)) a.kill();
    await server?.stop();
  });

  test('the Hosts page lists every host with its state, and narrows by environment and state', async ({ page }) => {
    await signIn(page.context(), server.url);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${server.url}/hosts`);
    const rows = page.getByTestId('host-row');
    await expect(rows).toHaveCount(4);
    await expect(page.locator('[data-testid=host-row][data-host=web-1]')).toHaveAttribute('data-state', 'live', { timeout: 15_000 });
    await expect(page.locator('[data-testid=host-row][data-host=db-1]')).toHaveAttribute('data-state', 'live');
    await expect(page.locator('[data-testid=host-row][data-host=cache-1]')).toHaveAttribute('data-state', 'offline');
    await expect(page.locator('[data-testid=host-row][data-host=cache-1]')).toContainText('never');
    // A reading's figures, and the hub's own host marked as such.
    await expect(page.locator('[data-host=web-1] [data-testid=host-cpu]')).toContainText('%');
    await expect(page.locator('[data-testid=host-row]', { hasText: '· hub' })).toHaveCount(1);
    // Rendered by the server and taken over by the browser: its age reads the same way as a row added live.
    await expect(page.locator('[data-testid=host-row]', { hasText: '· hub' }).locator('td').nth(2)).toHaveText(/^\d+[smh] ago$/);
    await expect(page.locator('[data-testid=host-row][data-host=web-1] td').nth(2)).toHaveText(/^\d+[smh] ago$/);
    await expect(page.locator('[data-testid=env-total][data-env=prod]')).toContainText('2 hosts · 1 live · 0 stale · 1 offline');
    // The five-minute sparkline draws once a host has two readings: a line, not a dot.
    await expect(page.locator('[data-host=web-1] .sparkline polyline')).toHaveAttribute('points', /^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$/, { timeout: 10_000 });
    await page.screenshot({ path: path.join(artifacts, 'fleet-1440.png'), fullPage: true });

    await page.getByTestId('fleet-env').selectOption('staging');
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toHaveAttribute('data-host', 'db-1');
    await page.getByTestId('fleet-env').selectOption('');
    await page.getByTestId('fleet-state').selectOption('offline');
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toHaveAttribute('data-host', 'cache-1');
    await page.getByTestId('fleet-state').selectOption('');

    // Sorting by a column, both ways.
    await page.getByRole('button', { name: /^Host/ }).click();
    const names = async () => rows.evaluateAll((rs) => rs.map((r) => r.getAttribute('data-host')));
    const descending = await names();
    expect(descending).toEqual([...descending].sort().reverse());
    await page.getByRole('button', { name: /^Host/ }).click();
    expect(await names()).toEqual([...descending].sort());

    await page.setViewportSize({ width: 360, height: 800 });
    await page.screenshot({ path: path.join(artifacts, 'fleet-360.png'), fullPage: true });
  });

  test('a row opens that host\'s dashboard, and the environment selector narrows the host selector', async ({ page, dashboard }) => {
    await signIn(page.context(), server.url);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${server.url}/hosts`);
    await page.locator('[data-host=db-1] [data-testid=host-link]').click();
    await expect(page).toHaveURL(/\/\?env=staging&host=db-1$/);
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
    await expect(page.getByTestId('host-meta')).toContainText('db-1');
    await expect(dashboard.cpuValue).toContainText('%');
    await expect(page.getByTestId('host-select')).toHaveValue('db-1');
    await expect(page.getByTestId('host-select').locator('option')).toHaveCount(1);
    await page.screenshot({ path: path.join(artifacts, 'fleet-dashboard-db-1.png') });

    // All environments: every host to choose from; choosing web-1 shows its gauges, keeping the range.
    await page.getByTestId('env-select').selectOption('');
    await expect(page.getByTestId('host-select').locator('option')).toHaveCount(4);
    await page.goto(`${server.url}/?range=1h&env=prod`);
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
    await page.getByTestId('host-select').selectOption('web-1');
    await expect(page).toHaveURL(/range=1h/);
    await expect(page).toHaveURL(/host=web-1/);
    await expect(page.getByTestId('host-meta')).toContainText('web-1');
  });

  test.describe('adding a host', () => {
  // The bad name on purpose: Chromium logs the 400 answer as an error.
  test.use({ allowedErrors: /status of 400/ });
  test('an admin adds a host on the Users & tokens page and is shown its token and start command once', async ({ page }) => {
    await signIn(page.context(), server.url);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${server.url}/admin`);
    const hosts = page.getByTestId('admin-hosts');
    await expect(hosts.locator('[data-testid=enrolled-host][data-name=web-1]')).toContainText('prod');
    await hosts.getByLabel("New host's name").fill('api 9');
    await hosts.getByLabel("New host's environment").fill('prod');
    await hosts.getByRole('button', { name: 'Add host' }).click();
    await expect(page.getByTestId('host-error')).toContainText('letters, digits and . _ - only');
    await hosts.getByLabel("New host's name").fill('api-9');
    await hosts.getByRole('button', { name: 'Add host' }).click();
    await expect(page.getByTestId('new-host-token')).toContainText('wpa_');
    await expect(page.getByTestId('new-host-command')).toHaveText(
      `watchpost-agent --hub ${server.url} --token-file /etc/watchpost/agent.token --name api-9 --environment prod`,
    );
    await expect(hosts.locator('[data-testid=enrolled-host][data-name=api-9]')).toContainText('never');
    await page.screenshot({ path: path.join(artifacts, 'fleet-add-host.png'), fullPage: true });
    // The new host is in the fleet at once, offline until its agent calls.
    await page.goto(`${server.url}/hosts`);
    await expect(page.locator('[data-testid=host-row][data-host=api-9]')).toHaveAttribute('data-state', 'offline');
  });
  });

  test('an admin takes prod away from a viewer on the Users & tokens page; the viewer\'s tab reloads without it', async ({ page, browser }) => {
    const sam = { name: 'sam', password: 'sam e2e password' };
    addUser(server.data, sam.name, 'viewer', sam.password);
    // Sam's own tab, on the Hosts page: every host, prod's too.
    const samContext = await browser.newContext();
    await signIn(samContext, server.url, sam);
    const samPage = await samContext.newPage();
    await samPage.goto(`${server.url}/hosts`);
    const samRows = samPage.getByTestId('host-row');
    await expect(samPage.locator('[data-testid=host-row][data-host=web-1]')).toBeVisible();
    const before = await samRows.count();

    await signIn(page.context(), server.url);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${server.url}/admin`);
    const row = page.locator('[data-testid=user-row][data-name=sam]');
    await row.getByLabel('Environment for sam').fill('prod');
    await row.getByLabel('Role of sam there').selectOption('none');
    await row.getByRole('button', { name: 'Set' }).click();
    await expect(row.locator('[data-testid=env-role][data-env=prod]')).toHaveAttribute('data-role', 'none');
    await page.screenshot({ path: path.join(artifacts, 'fleet-env-roles-1440.png'), fullPage: true });

    // Sam's tab reloads by itself and shows no prod host any more; staging stays.
    await expect(samPage.locator('[data-testid=host-row][data-host=web-1]')).toHaveCount(0, { timeout: 15_000 });
    await expect(samPage.locator('[data-testid=host-row][data-host=db-1]')).toBeVisible();
    expect(await samRows.count()).toBeLessThan(before);
    await expect(samPage.getByTestId('fleet-env').locator('option[value=prod]')).toHaveCount(0);

    // Back to the account's role: prod is Sam's to see again after the reload.
    await row.getByRole('button', { name: 'Reset the role in prod' }).click();
    await expect(row.locator('[data-testid=env-role]')).toHaveCount(0);
    await expect(samPage.locator('[data-testid=host-row][data-host=web-1]')).toBeVisible({ timeout: 15_000 });
    await page.setViewportSize({ width: 360, height: 800 });
    await page.screenshot({ path: path.join(artifacts, 'fleet-env-roles-360.png'), fullPage: true });
    await samContext.close();
  });

  test('an operator puts a host in maintenance from its row and ends it', async ({ page }) => {
    await signIn(page.context(), server.url);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${server.url}/hosts`);
    const cache = page.locator('[data-testid=host-row][data-host=cache-1]');
    await expect(cache).toHaveAttribute('data-state', 'offline');
    await cache.getByTestId('maintain').selectOption('4h');
    await expect(cache).toHaveAttribute('data-state', 'maintenance');
    await expect(cache).toContainText(/maintenance until \d\d-\d\d \d\d:\d\d:\d\d UTC/);
    await expect(page.locator('[data-testid=env-total][data-env=prod]')).toContainText('1 in maintenance');
    // The hub's own host is never expected offline: no menu in its row.
    await expect(page.locator('[data-testid=host-row]', { hasText: '· hub' }).getByTestId('maintain')).toHaveCount(0);
    await page.screenshot({ path: path.join(artifacts, 'fleet-maintenance-1440.png'), fullPage: true });
    await cache.getByTestId('maintain').selectOption('end');
    await expect(cache).toHaveAttribute('data-state', 'offline');
  });

  test('an operator sets a host\'s sampling interval from its row; its agent takes it without a restart', async ({ page }) => {
    await signIn(page.context(), server.url);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${server.url}/hosts`);
    const db = page.locator('[data-testid=host-row][data-host=db-1]');
    await expect(db).toHaveAttribute('data-state', 'live');
    const cell = db.getByTestId('host-interval');
    await expect(cell).toContainText('1s');
    await cell.getByTestId('configure-interval').selectOption('5000ms');
    // The agent reports the new interval with the reading it takes at once: the cell reads 5s, not "1s → 5s".
    await expect(cell.locator('span')).toHaveText('5s');
    await expect(cell.locator('span')).toHaveAttribute('title', 'set on the hub by admin');
    await expect(db).toHaveAttribute('data-state', 'live');
    // The hub's own interval is its flag: no menu in its row.
    await expect(page.locator('[data-testid=host-row]', { hasText: '· hub' }).getByTestId('configure-interval')).toHaveCount(0);
    await page.screenshot({ path: path.join(artifacts, 'fleet-interval-1440.png'), fullPage: true });
    // A reload shows the setting chosen in the menu, from the server.
    await page.reload();
    await expect(db.getByTestId('configure-interval')).toHaveValue('5000ms');
    await db.getByTestId('configure-interval').selectOption('own');
    await expect(cell.locator('span')).toHaveText('1s');
    await expect(cell.locator('span')).not.toHaveAttribute('title', /.+/);
  });

  test('a command web-1 declares runs there from the Controls panel, its output live', async ({ page, dashboard }) => {
    await signIn(page.context(), server.url);
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.goto(`${server.url}/?env=prod&host=web-1`);
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
    const panel = page.getByTestId('panel-controls');
    await expect(panel.getByTestId('controls-host')).toContainText('on web-1');
    const row = panel.locator('[data-testid=control-row][data-target=nginx]');
    const button = row.getByTestId('run-check');
    await expect(button).toBeEnabled({ timeout: 15_000 });
    await button.click();
    await expect(button).toHaveText('Checking…');
    await expect(panel.getByTestId('run-output')).toContainText('checking nginx');
    await expect(panel.getByTestId('run-output')).not.toContainText('nginx is active');
    await panel.screenshot({ path: path.join(artifacts, 'fleet-controls-running.png') });
    await expect(row.getByTestId('run-status')).toHaveAttribute('data-state', 'succeeded', { timeout: 15_000 });
    await expect(panel.getByTestId('run-output')).toContainText('nginx is active');
    await expect(panel.getByTestId('run-output-title')).toContainText('check on nginx (web-1) — Succeeded');
    await expect(button).toHaveText('Check');
    await panel.screenshot({ path: path.join(artifacts, 'fleet-controls-1440.png') });
    await page.setViewportSize({ width: 360, height: 800 });
    await panel.screenshot({ path: path.join(artifacts, 'fleet-controls-360.png') });

    // db-1 declares nothing; the hub's own host has its own (here: none) — the panel follows the choice.
    await page.goto(`${server.url}/?env=staging&host=db-1`);
    await expect(page.getByTestId('controls-empty')).toContainText('db-1 declares no commands.');
  });

  test('the error log follows the chosen host', async ({ page, dashboard }) => {
    await signIn(page.context(), server.url);
    await page.goto(`${server.url}/?env=staging&host=db-1`);
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
    await expect(page.getByTestId('log-host')).toHaveValue('db-1');
    await page.getByTestId('log-host').selectOption('');
    await expect(page.getByTestId('log-host')).toHaveValue('');
  });

  test('a stopped agent turns its host offline on the page, live again when it comes back', async ({ page }) => {
    await signIn(page.context(), server.url);
    await page.goto(`${server.url}/hosts`);
    const web = page.locator('[data-testid=host-row][data-host=web-1]');
    await expect(web).toHaveAttribute('data-state', 'live', { timeout: 15_000 });
    agents.web.kill();
    await expect(web).toHaveAttribute('data-state', 'offline', { timeout: 15_000 });
    const token = path.join(server.data, 'web-1.token');
    agents.web = startAgent(server, 'web-1', 'prod', token, webCommands(server.data));
    await expect(web).toHaveAttribute('data-state', 'live', { timeout: 15_000 });
  });
});
