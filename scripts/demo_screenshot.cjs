// Headless-Chromium screenshot of the melody-lab demo page after one generation.
//   node scripts/demo_screenshot.cjs URL OUT.png
// Driven by playwright-core (npm; it downloads no browser) with Debian's /usr/bin/chromium and a
// fresh profile. Every request to a host other than 127.0.0.1 is reported, and makes it fail:
// the page must work offline.
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

(async () => {
  const [url, out] = process.argv.slice(2);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "melody-lab-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 860 },
  });
  const external = [];
  context.on("request", (request) => {
    const u = new URL(request.url());
    if ((u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "127.0.0.1") {
      external.push(request.url());
    }
  });
  const page = context.pages()[0] || (await context.newPage());
  await page.goto(url, { waitUntil: "networkidle" });
  await page.getByRole("button", { name: "Generate" }).click();
  await page.waitForFunction(() => [...document.querySelectorAll("textarea")]
    .some((t) => t.value.includes("real-time factor")), null, { timeout: 300000 });
  await page.waitForFunction(() => [...document.querySelectorAll("img")]
    .some((i) => i.complete && i.naturalWidth > 100), null, { timeout: 60000 });
  await page.waitForTimeout(1500); // the audio player draws its waveform
  await page.screenshot({ path: out, fullPage: true });
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
  if (external.length) {
    console.error("requests outside 127.0.0.1:\n" + external.join("\n"));
    process.exit(1);
  }
  console.log(`wrote ${out}; no request left 127.0.0.1`);
})().catch((err) => { console.error(err.message || err); process.exit(1); });
