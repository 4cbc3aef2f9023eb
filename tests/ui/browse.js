// Drives the registry's web UI in Debian's headless Chromium, as two users:
// ADMIN (may delete) browses to an image, reads its layers, and deletes a tag
// through the confirmation page; READER (browse-only) sees no delete button
// and is refused when it forges the delete request. Screenshots of every page
// on a laptop and a phone viewport go to ARTIFACTS. Run by tests/e2e_ui.rs;
// exits non-zero with a message on the first failed expectation.
"use strict";
const { chromium } = require("playwright-core");
const fs = require("fs");
const path = require("path");

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing environment variable ${k}`);
  return v;
};
const URL_BASE = env("UI_URL");
const REPO = env("UI_REPO");
const DELETE_TAG = env("UI_DELETE_TAG");
const KEEP_TAG = env("UI_KEEP_TAG");
const LAYERS = env("UI_LAYERS").split(",");
const REFERRER_TYPE = env("UI_REFERRER_TYPE");
const ADMIN = { username: env("UI_ADMIN_USER"), password: env("UI_ADMIN_PASSWORD") };
const READER = { username: env("UI_READER_USER"), password: env("UI_READER_PASSWORD") };
const ARTIFACTS = env("UI_ARTIFACTS");
const BROWSER = process.env.CHROMIUM || "/usr/bin/chromium";

const VIEWPORTS = {
  laptop: { viewport: { width: 1366, height: 850 } },
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
};

function expect(cond, msg) {
  if (!cond) throw new Error(`expectation failed: ${msg}`);
}

const problems = [];
async function open(browser, who, kind, extra = {}) {
  const ctx = await browser.newContext({ ...VIEWPORTS[kind], httpCredentials: who, ...extra });
  const page = await ctx.newPage();
  // A CSP violation or a script error shows up here: there must be none.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[34]/.test(m.text())) problems.push(`${kind}: console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${kind}: page error: ${e.message}`));
  return { ctx, page };
}

async function shot(page, name, kind) {
  const file = path.join(ARTIFACTS, `${name}-${kind}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}

async function adminFlow(browser) {
  const { ctx, page } = await open(browser, ADMIN, "laptop");
  // Log in (Basic credentials answer the 401 challenge) and land on the list.
  const resp = await page.goto(`${URL_BASE}/`);
  expect(resp.status() === 200, `GET / ends with ${resp.status()}`);
  expect(new URL(page.url()).pathname === "/ui/", `/ redirects to /ui/, got ${page.url()}`);
  await page.getByRole("heading", { name: "Repositories" }).waitFor();
  await page.locator(`a[href="/ui/r/${REPO}"]`).waitFor();
  await shot(page, "1-repositories", "laptop");

  // Filter as you type, without reloading the page.
  const marker = await page.evaluate(() => (window.__marker = Math.random()));
  await page.getByRole("searchbox").pressSequentially("no-such-repo", { delay: 20 });
  await page.locator("#results .empty").waitFor();
  await page.getByRole("searchbox").fill("");
  await page.getByRole("searchbox").pressSequentially(REPO.slice(-3), { delay: 20 });
  await page.locator(`#results a[href="/ui/r/${REPO}"]`).waitFor();
  expect((await page.evaluate(() => window.__marker)) === marker, "filtering reloaded the page");
  expect(page.url().includes("?q="), "the filter is kept in the URL");
  await shot(page, "2-repositories-filtered", "laptop");

  // Browse to the repository and the image.
  await page.locator(`a[href="/ui/r/${REPO}"]`).click();
  await page.getByRole("heading", { name: REPO }).waitFor();
  for (const t of [DELETE_TAG, KEEP_TAG]) {
    await page.locator(`a[href="/ui/r/${REPO}/-/m/${t}"]`).waitFor();
  }
  const pushedColumn = await page.locator("thead th").evaluateAll((ths) => ths.findIndex((th) => th.innerText === "Pushed"));
  expect(pushedColumn > 0, "the tags table has a Pushed column");
  const pushed = await page.locator(`tr:has(a[href="/ui/r/${REPO}/-/m/${KEEP_TAG}"]) td`).nth(pushedColumn).innerText();
  expect(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(pushed), `push time of ${KEEP_TAG}: ${pushed}`);
  await shot(page, "3-tags", "laptop");
  await page.locator(`a[href="/ui/r/${REPO}/-/m/${KEEP_TAG}"]`).click();
  await page.getByRole("heading", { name: `${REPO}:${KEEP_TAG}` }).waitFor();

  // Read its layers: one row per layer, in order, each with its digest.
  const layerTable = page.locator("h2:has-text('Layers') + .table-wrap tbody tr");
  expect((await layerTable.count()) === LAYERS.length, `${LAYERS.length} layer rows`);
  for (let i = 0; i < LAYERS.length; i++) {
    const title = await layerTable.nth(i).locator("code.digest").getAttribute("title");
    expect(title === LAYERS[i], `layer ${i + 1} is ${LAYERS[i]}, page says ${title}`);
    const size = await layerTable.nth(i).locator("td.num").last().innerText();
    expect(/\d/.test(size), `layer ${i + 1} has a size: ${size}`);
  }
  const pull = (await page.locator("#pull-cmd").innerText()).trim();
  const host = new URL(URL_BASE).host;
  expect(pull === `docker pull ${host}/${REPO}:${KEEP_TAG}`, `pull command: ${pull}`);
  console.log(`pull-command ${pull}`);
  expect(await page.locator("button.copy").isVisible(), "the copy button shows with JavaScript");
  const labels = await page.locator("h3:has-text('Labels') + .table-wrap").innerText();
  expect(labels.includes("org.example.team"), `labels shown: ${labels}`);
  const referrers = await page.locator("h2:has-text('Referrers') + .table-wrap").innerText();
  expect(referrers.includes(REFERRER_TYPE), `the signature is listed: ${referrers}`);
  await digestLinksLookLikeLinks(page);
  await shot(page, "4-manifest", "laptop");

  // Token for the tag we keep, for the reader's forgery below.
  await page.goto(`${URL_BASE}/ui/r/${REPO}/-/delete/${KEEP_TAG}`);
  const keepToken = await page.locator("input[name=token]").inputValue();

  // Delete the other tag through the confirmation page.
  await page.goto(`${URL_BASE}/ui/r/${REPO}/-/m/${DELETE_TAG}`);
  await page.getByRole("link", { name: `Delete tag ${DELETE_TAG}` }).click();
  await page.getByRole("heading", { name: "Delete?" }).waitFor();
  await shot(page, "5-confirm", "laptop");
  await page.getByRole("button", { name: "Delete" }).click();
  await page.locator(".notice").waitFor();
  expect((await page.locator(".notice").innerText()).includes(`tag ${DELETE_TAG}`), "deleted notice");
  expect((await page.locator(`a[href="/ui/r/${REPO}/-/m/${DELETE_TAG}"]`).count()) === 0, "tag gone from list");
  expect((await page.locator(`a[href="/ui/r/${REPO}/-/m/${KEEP_TAG}"]`).count()) === 1, "other tag still listed");
  await shot(page, "6-deleted", "laptop");
  await ctx.close();
  return keepToken;
}

/// A digest inside a link has the link's colour; one that is not a link is muted.
async function digestLinksLookLikeLinks(page) {
  const color = (sel) => page.locator(sel).first().evaluate((e) => getComputedStyle(e).color);
  const link = await color("h2:has-text('Referrers') + .table-wrap a:has(code.digest)");
  const linked = await color("h2:has-text('Referrers') + .table-wrap a code.digest");
  const plain = await color("h2:has-text('Layers') + .table-wrap code.digest");
  expect(linked === link, `a digest link is ${linked}, other links ${link}`);
  expect(plain !== link, `a digest that is no link looks like one (${plain})`);
}

async function readerFlow(browser, adminToken) {
  const { ctx, page } = await open(browser, READER, "laptop");
  const manifest = `${URL_BASE}/ui/r/${REPO}/-/m/${KEEP_TAG}`;
  await page.goto(manifest);
  await page.getByRole("heading", { name: `${REPO}:${KEEP_TAG}` }).waitFor();
  await page.locator("h2:has-text('Layers')").waitFor();
  expect((await page.locator("a.danger, a[href*='/-/delete/']").count()) === 0, "reader sees a delete control");
  await shot(page, "7-manifest-browse-only", "laptop");
  await page.goto(`${URL_BASE}/ui/r/${REPO}`);
  expect((await page.locator("a[href*='/-/delete/']").count()) === 0, "reader sees delete links on the tags page");

  // Forge the delete: a form this page never offered, with the admin's token.
  const target = `/ui/r/${REPO}/-/delete/${KEEP_TAG}`;
  const [resp] = await Promise.all([
    page.waitForNavigation(),
    page.evaluate(({ target, token }) => {
      const f = document.createElement("form");
      f.method = "post";
      f.action = target;
      const i = document.createElement("input");
      i.type = "hidden"; i.name = "token"; i.value = token;
      f.appendChild(i);
      document.body.appendChild(f);
      f.submit();
    }, { target, token: adminToken }),
  ]);
  expect(resp.status() === 403, `forged form POST answered ${resp.status()}`);
  await shot(page, "8-forged-delete-refused", "laptop");
  const direct = await ctx.request.post(`${URL_BASE}${target}`, {
    form: { token: adminToken },
    headers: { Origin: URL_BASE },
  });
  expect(direct.status() === 403, `forged direct POST answered ${direct.status()}`);
  const page2 = await ctx.newPage();
  await page2.goto(manifest);
  await page2.getByRole("heading", { name: `${REPO}:${KEEP_TAG}` }).waitFor();
  await ctx.close();
}

/// The same pages on a phone: readable, nothing wider than the screen.
async function phoneShots(browser) {
  const { ctx, page } = await open(browser, ADMIN, "phone");
  const pages = [
    ["1-repositories", "/ui/"],
    ["3-tags", `/ui/r/${REPO}`],
    ["4-manifest", `/ui/r/${REPO}/-/m/${KEEP_TAG}`],
    ["5-confirm", `/ui/r/${REPO}/-/delete/${KEEP_TAG}`],
  ];
  for (const [name, p] of pages) {
    const r = await page.goto(`${URL_BASE}${p}`);
    expect(r.status() === 200, `${p} on a phone: ${r.status()}`);
    // A mobile browser widens its layout viewport to fit content, so compare
    // with the device's width, not innerWidth.
    const width = VIEWPORTS.phone.viewport.width;
    const overflow = await page.evaluate((w) => document.documentElement.scrollWidth - w, width);
    expect(overflow <= 0, `${p} is ${overflow}px wider than a phone screen`);
    await shot(page, name, "phone");
  }
  await ctx.close();
  // The browse-only view, and what a forbidden page looks like, on a phone.
  const reader = await open(browser, READER, "phone");
  await reader.page.goto(`${URL_BASE}/ui/r/${REPO}/-/m/${KEEP_TAG}`);
  expect((await reader.page.locator("a[href*='/-/delete/']").count()) === 0, "reader sees a delete control on a phone");
  await shot(reader.page, "7-manifest-browse-only", "phone");
  const r = await reader.page.goto(`${URL_BASE}/ui/r/${REPO}/-/delete/${KEEP_TAG}`);
  expect(r.status() === 403, `reader's confirmation page answered ${r.status()}`);
  await shot(reader.page, "8-delete-refused", "phone");
  await reader.ctx.close();
}

/// Reading works without JavaScript: the filter is a plain form.
async function withoutScript(browser) {
  const { ctx, page } = await open(browser, READER, "laptop", { javaScriptEnabled: false });
  await page.goto(`${URL_BASE}/ui/`);
  await page.getByRole("searchbox").fill(REPO.slice(-3));
  await Promise.all([page.waitForNavigation(), page.getByRole("searchbox").press("Enter")]);
  expect(page.url().includes("?q="), `the filter form submitted: ${page.url()}`);
  await page.locator(`a[href="/ui/r/${REPO}"]`).click();
  await page.locator(`a[href="/ui/r/${REPO}/-/m/${KEEP_TAG}"]`).click();
  await page.getByRole("heading", { name: `${REPO}:${KEEP_TAG}` }).waitFor();
  const rows = await page.locator("h2:has-text('Layers') + .table-wrap tbody tr").count();
  expect(rows === LAYERS.length, `without JavaScript ${rows} layer rows`);
  expect(!(await page.locator("button.copy").isVisible()), "the copy button needs JavaScript");
  await shot(page, "9-manifest-without-javascript", "laptop");
  await ctx.close();
}

(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  // Root needs --no-sandbox; the rest keep Chromium from calling out to a
  // network this machine does not have.
  const browser = await chromium.launch({
    executablePath: BROWSER,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const token = await adminFlow(browser);
    await readerFlow(browser, token);
    await phoneShots(browser);
    await withoutScript(browser);
  } finally {
    await browser.close();
  }
  expect(problems.length === 0, `browser reported problems:\n${problems.join("\n")}`);
  console.log("ui-e2e: ok");
})().catch((e) => {
  console.error(`ui-e2e: FAILED: ${e.stack || e}`);
  process.exit(1);
});
