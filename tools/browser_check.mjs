// Check the pack as a user sees it: a real ComfyUI frontend in headless Chromium.
//
// It contains no ComfyUI code: it opens a RUNNING ComfyUI server's page and uses the frontend's
// public objects (window.app, LiteGraph, the DOM) the way a user's clicks would. It runs against
// whichever frontend that server serves (checked with 1.27.10 and 1.58.1), in each node renderer
// the frontend offers: the classic canvas and, from frontend 1.40 on, Nodes 2.0 (the Vue
// renderer; in 1.27 it is a hidden experimental setting that does not render core text widgets).
//   1. the page loads with our web extension registered and no page error from our files;
//   2. the template browser (Workflow > Browse Templates) lists a card with a thumbnail for each
//      workflow in workflows/, under the pack's category (headed by its name, not its folder's), its
//      title whole, its own description (not the title again); opening each card gives no "missing"
//      toast or error overlay, no node with the red error outline, and our Load Reference Image,
//      Load Audio and Load Video nodes preview the pack's example picture, song and videos, and it
//      opens at a zoom where the nodes are drawn (not the classic canvas's blank boxes);
//   3. each workflow loads like a drag and drop: no dialog, every node type known, every widget
//      holds the file's value, the prompt the UI builds has the inputs of the API twin
//      (workflows/api), and exporting it again gives the same inputs and links (no rewiring);
//   4. each workflow, shrunk for a CPU (local samplers 64*48, 9 frames, 2 steps, float32), is
//      queued from the UI as it is (no upload: the templates name the pack's example media),
//      runs, every video saver shows its file, and after the job each of our nodes still shows
//      the result lines it answered (ui.text);
//   5. the WaveSpeed node shows the key line (matching the server's key status), the hint, and
//      the warning for a local-only size, in each renderer;
//   6. a queue refused by the server (a picture that does not exist) reports that problem once,
//      in the issues panel (1.58) or the error dialog (1.27);
//   7. in each renderer: no two nodes overlap and no node covers a group's title, as the templates
//      open, after a run (classic) and with a long problem on each node; a template whose model file is missing opens the frontend's
//      missing-models dialog naming it; the local size is a text box that takes a typed W*H; a
//      template with a failing branch runs nothing and shows the problem in red on the node; a
//      problem raised while a node runs shows on that node in the pack's words.
// Screenshots go to --shots (not committed). Exit status 0 when every check passed.
//
// Setup: Chromium (Debian: apt-get install chromium) and `npm install playwright-core` in some
// folder. Start ComfyUI with the tiny models and the fake WaveSpeed server, serving the frontend
// to check (--front-end-root: a frontend package's static/ folder; without it, the one ComfyUI's
// environment has installed):
//   pip install --no-deps --target /opt/fe-1.58.1 comfyui-frontend-package==1.58.1
//   python tools/comfyui_smoke.py --comfyui /path/to/ComfyUI --python /path/to/env/python --serve \
//       --front-end-root /opt/fe-1.58.1/comfyui_frontend_package/static
// then, with NODE_PATH pointing at that folder's node_modules:
//   NODE_PATH=/tmp/pw/node_modules node tools/browser_check.mjs --url http://127.0.0.1:8199 --expect-frontend 1.58.1
// and the same again with the server on another frontend (e.g. 1.27.10).
// Options: --shots DIR, --chromium PATH, --no-queue, --only SUBSTRING (workflow file names),
// --workflows DIR (default: this checkout's workflows/), --renderers classic,vue (default: those
// the frontend offers), --expect-frontend VERSION (fail when the server serves another).

import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core"); // require() follows NODE_PATH; import does not

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const URL = option("--url", "http://127.0.0.1:8199").replace(/\/$/, "");
const SHOTS = path.resolve(option("--shots", "browser_check_shots"));
const CHROMIUM = option("--chromium", "/usr/bin/chromium");
const ONLY = option("--only", "");
const WORKFLOWS = path.resolve(option("--workflows", path.join(REPO, "workflows")));
const QUEUE = !process.argv.includes("--no-queue");
const RENDERERS = option("--renderers", "");
const EXPECT_FRONTEND = option("--expect-frontend", "");
const TINY = { size: "64*48", num_frames: 9, steps: 2, dtype: "float32" };
const SAVERS = ["HunyuanCustomSaveVideo", "SaveVideo"];
const OURS = /^HunyuanCustom/;
const OUR_FILES = /ComfyUI-HunyuanCustom|hunyuan_custom\.js|hyc_logic\.js/;
const VUE_FROM = [1, 40]; // first frontend version whose Nodes 2.0 renderer is checked by default
const MISSING_PICTURE = "hyc_no_such_picture.png";
const CARDS = JSON.parse(fs.readFileSync(path.join(REPO, "web", "template_cards.json"), "utf8"));

const failures = [];
function check(name, ok, detail = "") {
  const shown = ok ? String(detail).slice(0, 120) : String(detail); // a failure shows all of it
  console.log(`${ok ? "PASS" : "FAIL"}  ${name}${shown ? `  [${shown}]` : ""}`);
  if (!ok) failures.push(name);
  return ok;
}

fs.mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM, headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const WINDOW = { width: 1600, height: 1000 };
const LAPTOP = { width: 1366, height: 768 }; // the most common laptop screen, less nothing: the browser's bars
const page = await browser.newPage({ viewport: WINDOW });
const errors = []; // page errors and console errors, with stacks
page.on("pageerror", (e) => errors.push(e.stack || e.message));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

try {
  await page.goto(URL, { waitUntil: "load" });
  await page.waitForFunction(() => window.app?.graph && window.LiteGraph, null, { timeout: 120000 });
  await page.waitForTimeout(3000); // extensions finish their setup()
  const version = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ || "unknown");
  console.log(`frontend ${version} at ${URL}`);
  if (EXPECT_FRONTEND) check(`the server serves frontend ${EXPECT_FRONTEND}`, version === EXPECT_FRONTEND, version);
  const ours = await page.evaluate(() => window.app.extensions.map((e) => e.name).filter((n) => /HunyuanCustom/.test(n)));
  check("our web extension is registered", ours.length > 0, ours.join(", "));
  await closeDialogs(); // e.g. 1.27's "Get Started with a Template" for a new user
  reportErrors("page load");
  await page.screenshot({ path: `${SHOTS}/00_start.png` });

  const files = fs.readdirSync(WORKFLOWS).filter((f) => f.endsWith(".json") && f.includes(ONLY)).sort();
  const renderers = RENDERERS ? RENDERERS.split(",") : ["classic", ...(atLeast(version, VUE_FROM) ? ["vue"] : [])];
  if (!renderers.includes("vue")) console.log(`(Nodes 2.0 not checked on frontend ${version}: before ${VUE_FROM.join(".")} it is a hidden experiment)`);
  for (const renderer of renderers) {
    console.log(`\n######## renderer: ${renderer === "vue" ? "Nodes 2.0 (Vue)" : "classic (canvas)"}`);
    await setRenderer(renderer);
    await checkTemplateBrowser(files, renderer);
    if (renderer === "classic") {
      for (const file of files) await checkWorkflow(file, renderer, QUEUE);
    } else if (QUEUE) {
      // Results in the Vue renderer: one remote and one local workflow are enough (same widget).
      for (const file of [remoteWorkflow(files), localWorkflow(files)].filter(Boolean)) await checkWorkflow(file, renderer, true);
    }
    await checkWaveSpeedLines(files, renderer);
    await checkLayout(files, renderer);
    await checkTypedSize(files, renderer);
    await checkProblemsOnNodes(files, renderer);
  }
  await checkMissingModelsDialog(files);
  await setRenderer("classic");
  await checkRefusedQueue(files);
} finally {
  await browser.close();
}
console.log(`\n${failures.length} check(s) failed${failures.length ? `: ${failures.join("; ")}` : ""}; screenshots in ${SHOTS}`);
process.exit(failures.length ? 1 : 0);

// ------------------------------------------------------------------------------------------

function atLeast(version, [major, minor]) {
  const [a, b] = String(version).split(".").map(Number);
  return a > major || (a === major && b >= minor);
}

function reportErrors(when) {
  const all = errors.splice(0);
  const mine = all.filter((e) => OUR_FILES.test(e));
  check(`no page error from our files (${when})`, mine.length === 0, mine.join(" | ").slice(0, 1500));
  // Errors from ComfyUI itself (missing optional core nodes, offline update check) are listed only.
  for (const e of all.filter((x) => !OUR_FILES.test(x))) console.log(`      (not ours) ${e.split("\n").slice(0, 2).join(" ").slice(0, 200)}`);
}

function readWorkflow(file) {
  return JSON.parse(fs.readFileSync(path.join(WORKFLOWS, file), "utf8"));
}

function remoteWorkflow(files) {
  const types = (f) => readWorkflow(f).nodes.map((n) => n.type);
  return files.find((f) => types(f).includes("HunyuanCustomWaveSpeed") && !types(f).includes("HunyuanCustomSampler"))
    ?? files.find((f) => types(f).includes("HunyuanCustomWaveSpeed"));
}

function localWorkflow(files) {
  const types = (f) => readWorkflow(f).nodes.map((n) => n.type);
  return files.find((f) => types(f).includes("HunyuanCustomSampler") && !types(f).includes("HunyuanCustomWaveSpeed"));
}

async function setRenderer(renderer) {
  await page.evaluate(async (on) => window.app.extensionManager.setting.set("Comfy.VueNodes.Enabled", on), renderer === "vue");
  await page.waitForTimeout(1500);
}

async function dialogTexts() {
  return page.evaluate(() => [...document.querySelectorAll(".p-dialog, .comfy-modal[style*='flex']")]
    .filter((d) => d.offsetParent !== null || d.classList.contains("p-dialog")).map((d) => d.innerText.slice(0, 600)));
}

function trimNulls(values) {
  const out = [...(values ?? [])];
  while (out.length && out[out.length - 1] == null) out.pop(); // null or undefined
  return out;
}

async function closeDialogs() {
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press("Escape").catch(() => {});
    await page.evaluate(() => document.querySelectorAll(".p-dialog-close-button, .p-dialog-header-close, [data-testid=error-overlay-dismiss]")
      .forEach((b) => b.click()));
    await page.waitForTimeout(300);
    if (!(await page.evaluate(() => document.querySelector(".p-dialog")))) return;
  }
}

async function loadWorkflow(workflow, name) {
  await page.evaluate(async ([wf, n]) => window.app.loadGraphData(wf, true, true, n), [workflow, name]);
  await page.waitForTimeout(2000); // the frontend scans for missing models/media and previews images
}

async function openedCleanly(label) {
  // What frontend 1.58 showed for the placeholder picture: a "Media input missing" toast, the error
  // overlay, a red outline on the node (has_errors). 1.27 has none of these: nothing to find there.
  const state = await page.evaluate(() => ({
    toasts: [...document.querySelectorAll(".p-toast-message")].map((t) => t.innerText.replace(/\s+/g, " ").slice(0, 200)),
    overlay: [...document.querySelectorAll("[data-testid=error-overlay]")].filter((e) => e.offsetParent !== null)
      .map((e) => e.innerText.replace(/\s+/g, " ").slice(0, 200)),
    outlined: (window.app.graph.nodes ?? window.app.graph._nodes).filter((n) => n.has_errors).map((n) => `${n.id} ${n.type}`),
  }));
  const missing = state.toasts.filter((t) => /missing/i.test(t));
  check(`${label}: no "missing" toast`, missing.length === 0, missing.join(" | "));
  check(`${label}: no error overlay`, state.overlay.length === 0, state.overlay.join(" | "));
  check(`${label}: no node with the red error outline`, state.outlined.length === 0, state.outlined.join(", "));
}

async function mediaPreviews(label) {
  // Our Load nodes preview what they name (served through /view, the pack's examples included): the
  // picture is drawn, the song's <audio> and the video's <video> have read the file's metadata.
  await page.waitForTimeout(1000);
  const found = await page.evaluate(() => {
    const inputs = { HunyuanCustomLoadImage: "image", HunyuanCustomLoadAudio: "audio", HunyuanCustomLoadVideo: "video" };
    return (window.app.graph.nodes ?? window.app.graph._nodes).filter((n) => n.type in inputs).map((n) => {
      const kind = inputs[n.type];
      const value = n.widgets?.find((w) => w.name === kind)?.value;
      const file = String(value).split("/").pop();
      const named = (el) => (el.currentSrc || el.src || "").includes(encodeURIComponent(file)) || (el.src || "").includes(file);
      if (kind === "image") {
        const images = [...(n.imgs || []), ...[...document.images].filter(named)];
        return { id: n.id, kind, value, loaded: images.some((i) => i.complete && i.naturalWidth > 0) };
      }
      const players = [...document.querySelectorAll(kind)].filter(named);
      const ready = players.filter((p) => p.readyState >= 1 && Number.isFinite(p.duration) && p.duration > 0);
      return { id: n.id, kind, value, loaded: ready.length > 0,
               detail: players.map((p) => `readyState ${p.readyState} error ${p.error?.code ?? "-"}`).join(", ") || "no player" };
    });
  });
  for (const f of found) check(`${label}: node ${f.id} previews its ${f.kind} ${f.value}`, f.loaded, f.detail ?? "");
}

async function checkTemplateBrowser(files, renderer) {
  console.log(`\n== template browser (${renderer}, in a laptop's ${LAPTOP.width}x${LAPTOP.height} window)`);
  await page.setViewportSize(LAPTOP); // the zoom a template opens at depends on the window
  try {
    await openTemplates(files, renderer);
  } finally {
    await page.setViewportSize(WINDOW);
    await page.waitForTimeout(500);
  }
}

async function openTemplates(files, renderer) {
  const names = files.map((f) => f.replace(/\.json$/, ""));
  await checkTemplateList(names, renderer);
  for (const name of names) {
    const category = await openPackPage(names);
    if (!check(`template browser has a category with our cards`, !!category, category ?? "none found")) return;
    const card = page.locator(`[data-testid="template-workflow-${name}"]`).first();
    await card.scrollIntoViewIfNeeded({ timeout: 5000 }).catch(() => {}); // thumbnails load when in view
    await page.waitForTimeout(1000);
    const shown = await card.evaluate((el) => {
      const img = el.querySelector("img");
      // The card's texts: its title (the file name) is the first leaf that says it; the others follow.
      const leaves = [...el.querySelectorAll("*")].filter((e) => e.children.length === 0 && e.innerText?.trim())
        .map((e) => ({ text: e.innerText.trim(), tag: e.tagName, cut: e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1 }));
      return { visible: el.getBoundingClientRect().height > 0, thumb: !!img && img.complete && img.naturalWidth > 0, leaves };
    }).catch(() => null);
    check(`template card ${name} shown with its thumbnail (${renderer})`, !!shown?.visible && !!shown?.thumb, JSON.stringify(shown));
    const title = shown?.leaves.find((l) => l.text === name);
    check(`template card ${name}: its title is shown whole, not cut off (${renderer})`, !!title && !title.cut, JSON.stringify(title ?? shown?.leaves));
    const repeats = (shown?.leaves ?? []).filter((l) => l !== title && l.text.replace(/[-_]/g, " ") === name.replace(/[-_]/g, " "));
    check(`template card ${name}: the title is not repeated as its description (${renderer})`, repeats.length === 0, JSON.stringify(shown?.leaves));
    const described = CARDS.descriptions?.[name];
    if (described && (shown?.leaves ?? []).some((l) => l.tag === "P")) {
      check(`template card ${name} says what it does, whole (${renderer})`, shown.leaves.some((l) => l.text === described && !l.cut), JSON.stringify(shown.leaves));
    }
    const headings = await page.evaluate(() => [...document.querySelectorAll(".p-dialog h1, .p-dialog h2, [role=dialog] h1, [role=dialog] h2")]
      .filter((h) => h.offsetParent !== null).map((h) => h.innerText.trim()));
    check(`the pack's page is headed by its name, not its install folder (${renderer})`,
      !headings.includes(await packFolder(names)), JSON.stringify(headings));
    if (name === names[0]) await page.screenshot({ path: `${SHOTS}/templates_${renderer}.png` });
    if (!shown) continue;
    await card.click();
    await page.waitForTimeout(3000); // the workflow loads; 1.58 scans it for missing media
    await page.waitForFunction(() => !document.querySelector("[data-testid=template-workflows-content]"), null, { timeout: 15000 })
      .catch(() => {});
    const loaded = await page.evaluate(() => (window.app.graph.nodes ?? window.app.graph._nodes).map((n) => n.type));
    check(`template ${name} opens from its card (${renderer})`, loaded.some((t) => OURS.test(t)), loaded.join(","));
    // The classic canvas draws nodes as blank boxes below its level-of-detail zoom (1.58 fitted our
    // templates to about 0.5); Nodes 2.0 checked alike.
    const zoom = await page.evaluate(() => {
      const c = window.app.canvas;
      return { scale: Number(c.ds.scale.toFixed(3)), threshold: Number((c._lowQualityZoomThreshold ?? 0).toFixed(3)), lowQuality: !!c.low_quality };
    });
    check(`template ${name} opens at a zoom where nodes are drawn (${renderer})`, !(zoom.scale < zoom.threshold) && !zoom.lowQuality, JSON.stringify(zoom));
    await page.screenshot({ path: `${SHOTS}/template_${name}_${renderer}_as_opened.png` });
    await openedCleanly(`template ${name} (${renderer})`);
    await mediaPreviews(`template ${name} (${renderer})`);
    await fitView();
    await page.screenshot({ path: `${SHOTS}/template_${name}_${renderer}.png` });
  }
  await closeDialogs();
  reportErrors(`template browser (${renderer})`);
}

async function checkTemplateList(names, renderer) {
  // 1.27 also offers a list layout (a table: title, description); 1.58 has none.
  if (!(await openPackPage(names))) return;
  const listButton = page.locator(".p-dialog .p-selectbutton .pi-bars").first();
  if (!(await listButton.count())) {
    console.log(`(no list layout in this frontend's template browser)`);
    return closeDialogs();
  }
  await listButton.click();
  await page.waitForTimeout(1500);
  const rows = await page.evaluate(() => [...document.querySelectorAll(".p-dialog tr")]
    .map((tr) => [...tr.querySelectorAll("td > span")].map((s) => s.innerText.trim())).filter((r) => r.length >= 2));
  for (const name of names) {
    const row = rows.find((r) => r[0] === name);
    check(`template list: ${name} says what it does, not its name again (${renderer})`,
      !!row && row[1] === CARDS.descriptions?.[name], JSON.stringify(row ?? rows));
  }
  await page.locator(".p-dialog .p-selectbutton .pi-table").first().click().catch(() => {}); // back to the cards
  await page.waitForTimeout(800);
  await closeDialogs();
}

async function openPackPage(names) {
  // Workflow > Browse Templates, then the pack's category; its name, or null when there is none.
  await closeDialogs();
  await page.evaluate(async () => window.app.extensionManager.command.execute("Comfy.BrowseTemplates"));
  await page.waitForSelector("[data-testid=template-workflows-content]", { timeout: 30000 }).catch(() => {});
  await page.waitForTimeout(1000);
  const category = await packCategory(names);
  if (!category) return null;
  await page.locator(".p-dialog, [role=dialog]").getByText(category, { exact: true }).first().click();
  await page.waitForTimeout(1500);
  return category;
}

async function packFolder(names) {
  // The install folder under custom_nodes/: the key of /workflow_templates that lists our cards.
  const listed = await (await fetch(`${URL}/api/workflow_templates`)).json();
  return Object.keys(listed).find((k) => names.some((n) => listed[k].includes(n))) ?? null;
}

async function packCategory(names) {
  // The category is named after the install folder (or a translation of it): the one whose cards are ours.
  const folder = await packFolder(names);
  if (!folder) return null;
  return page.evaluate((folder) => {
    // Texts in the dialog outside the cards (whose titles may say HunyuanCustom too).
    const items = [...document.querySelectorAll(".p-dialog *, [role=dialog] *")]
      .filter((e) => e.children.length === 0 && e.innerText?.trim() && !e.closest("[data-testid^='template-workflow-']"))
      .map((e) => e.innerText.trim());
    return items.includes(folder) ? folder : items.find((t) => /hunyuan/i.test(t)) ?? null;
  }, folder);
}

async function checkWorkflow(file, renderer, queue) {
  console.log(`\n== ${file} (${renderer})`);
  const workflow = readWorkflow(file);
  await closeDialogs();
  await loadWorkflow(workflow, file);
  const dialogs = await dialogTexts();
  check(`${file}: loads without a dialog (missing nodes/models)`, dialogs.length === 0, dialogs.join(" | "));
  await closeDialogs();
  const label = `${file} (${renderer})`;
  await openedCleanly(label);
  const nodes = await page.evaluate((wf) => wf.nodes.map((f) => {
    const node = window.app.graph.getNodeById(f.id);
    return {
      id: f.id, type: f.type, known: !!window.LiteGraph.registered_node_types[f.type], found: !!node,
      file: f.widgets_values ?? [], now: node ? node.serialize().widgets_values ?? [] : null,
      widgets: node ? (node.widgets || []).map((w) => `${w.name}=${String(w.value).slice(0, 40)}`) : [],
    };
  }), workflow);
  if (renderer === "classic") {
    await mediaPreviews(label);
    for (const n of nodes) {
      check(`${file}: node ${n.id} ${n.type} is known and in the graph`, n.known && n.found);
      // Trailing nulls are upload buttons' placeholders, which frontends write in different numbers
      // (core Load Audio: 1.27 saves [file, null, null], 1.58 [file, null]); they hold no value.
      check(`${file}: node ${n.id} ${n.type} widgets hold the file's values`,
        JSON.stringify(trimNulls(n.now)) === JSON.stringify(trimNulls(n.file)), `file ${JSON.stringify(n.file).slice(0, 300)} now ${JSON.stringify(n.now).slice(0, 300)}`);
      console.log(`      ${n.id} ${n.type}: ${n.widgets.join(", ")}`);
    }
    await compareWithApiTwin(file);
    await compareExport(file, workflow);
  }
  reportErrors(`loading ${label}`);
  await fitView();
  await page.screenshot({ path: `${SHOTS}/${file}_loaded_${renderer}.png` });
  if (!queue) return;
  const keyStatus = await (await fetch(`${URL}/api/hunyuan_custom/wavespeed_key_status`)).json();
  if (!keyStatus.configured && nodes.some((n) => n.type === "HunyuanCustomWaveSpeed")) {
    console.log(`SKIP  ${file}: not queued, the server has no WaveSpeed key`);
    return;
  }
  await queueWorkflow(file, nodes, renderer);
}

async function compareWithApiTwin(file) {
  // Widget values are saved by position: a frontend that orders widgets differently puts them
  // into the wrong widgets without any warning. The API twin names every input.
  const twinPath = path.join(WORKFLOWS, "api", file);
  if (!fs.existsSync(twinPath)) return;
  const twin = JSON.parse(fs.readFileSync(twinPath, "utf8"));
  const prompt = (await page.evaluate(async () => (await window.app.graphToPrompt()).output));
  for (const [id, node] of Object.entries(twin)) {
    const ui = prompt[id]?.inputs ?? {};
    const wrong = Object.entries(node.inputs).filter(([k, v]) => JSON.stringify(ui[k]) !== JSON.stringify(v))
      .map(([k, v]) => `${k}: UI ${JSON.stringify(ui[k])?.slice(0, 60)} vs twin ${JSON.stringify(v).slice(0, 60)}`);
    // A frontend's own display widgets (1.58 adds core Load Video's "video-preview", 1.27 core Load
    // Audio's "audioUI") are not widgets a workflow file orders; the server ignores them.
    const extra = Object.keys(ui).filter((k) => !(k in node.inputs) && !/(-preview|UI)$/.test(k));
    check(`${file}: node ${id} ${node.class_type} inputs in the UI's prompt match the API twin`,
      wrong.length === 0 && extra.length === 0, [...wrong, ...extra.map((k) => `${k}: only in the UI's prompt`)].join("; "));
  }
}

async function compareExport(file, workflow) {
  // Loading and exporting must not rewire a file: the frontend writes inputs in the node's
  // declared order (1.58 reorders on load), so a file in that form comes back unchanged.
  const exported = await page.evaluate(async () => (await window.app.graphToPrompt()).workflow);
  const linkOf = (l) => JSON.stringify(Array.isArray(l) ? l.slice(0, 6)
    : [l.id, l.origin_id, l.origin_slot, l.target_id, l.target_slot, l.type]);
  const links = (g) => (g.links || []).map(linkOf).sort();
  check(`${file}: exported again, the links are the file's (no slot moved)`,
    JSON.stringify(links(exported)) === JSON.stringify(links(workflow)),
    `file ${links(workflow).join(" ")} | export ${links(exported).join(" ")}`);
  for (const node of workflow.nodes) {
    const again = exported.nodes.find((n) => String(n.id) === String(node.id));
    const names = (n) => (n?.inputs || []).map((i) => `${i.name}${i.shape === 7 ? "(optional)" : ""}`).join(",");
    check(`${file}: node ${node.id} ${node.type} exports the file's inputs in the file's order`,
      names(again) === names(node), `file [${names(node)}] export [${names(again)}]`);
  }
}

async function queueWorkflow(file, nodes, renderer) {
  await page.evaluate((tiny) => {
    const set = (node, name, value) => { const w = node.widgets?.find((x) => x.name === name); if (w) w.value = value; };
    for (const node of window.app.graph.nodes ?? window.app.graph._nodes) {
      if (node.type === "HunyuanCustomSampler") for (const k of ["size", "num_frames", "steps"]) set(node, k, tiny[k]);
      if (node.type === "HunyuanCustomModelLoader") set(node, "dtype", tiny.dtype);
    }
  }, TINY);
  const before = new Set(Object.keys(await (await fetch(`${URL}/history`)).json()));
  await page.evaluate(async () => { try { await window.app.queuePrompt(0, 1); } catch (e) { /* shown below */ } });
  const entry = await waitForRun(before);
  if (!check(`${file}: queued from the UI as it is, accepted and finished (${renderer})`, entry?.status?.status_str === "success",
    entry ? JSON.stringify(entry.status.messages.filter((m) => m[0] === "execution_error")).slice(0, 1500)
      : `refused: ${JSON.stringify(await page.evaluate(() => window.app.lastNodeErrors)).slice(0, 1500)}`)) {
    await closeDialogs();
    return;
  }
  await page.waitForTimeout(3000); // the job has ended in the frontend too; previews load
  for (const n of nodes.filter((x) => SAVERS.includes(x.type))) {
    const shown = await page.evaluate((id) => {
      const node = window.app.graph.getNodeById(id);
      const out = window.app.nodeOutputs?.[String(id)];
      const vueMedia = [...document.querySelectorAll(`[data-node-id="${id}"] video, [data-node-id="${id}"] img`)];
      return { files: (out?.images || out?.videos || []).map((f) => f.filename),
               preview: !!node?.videoContainer || !!node?.imgs?.length || vueMedia.length > 0 };
    }, n.id);
    check(`${file}: ${n.type} ${n.id} saved a file and shows it (${renderer})`, (entry.outputs?.[n.id]?.images?.length ?? 0) > 0
      && shown.files.length > 0 && shown.preview, JSON.stringify(shown));
  }
  for (const n of nodes.filter((x) => OURS.test(x.type) && entry.outputs?.[x.id]?.text?.length)) {
    const expected = entry.outputs[n.id].text;
    await zoomOn(n.id);
    const lines = await linesShown(n.id, "hyc_result");
    check(`${file}: ${n.type} ${n.id} still shows its result lines after the job (${renderer})`,
      lines.visible && expected.every((t) => lines.text.includes(t)), `expected ${JSON.stringify(expected)} shown ${JSON.stringify(lines)}`);
    await page.screenshot({ path: `${SHOTS}/${file}_ran_${n.type}_${n.id}_${renderer}.png`, clip: lines.clip ?? undefined });
  }
  await fitView();
  const overlaps = await nodeOverlaps(); // result lines and previews make nodes grow
  check(`${file}: after the run no node overlaps another or a group title (${renderer})`, overlaps.length === 0, overlaps.join(" | "));
  reportErrors(`running ${file} (${renderer})`);
}

async function waitForRun(before, timeoutMs = 600000) {
  const end = Date.now() + timeoutMs;
  let seenQueued = false;
  while (Date.now() < end) {
    const history = await (await fetch(`${URL}/history`)).json();
    const id = Object.keys(history).find((k) => !before.has(k));
    if (id && ["success", "error"].includes(history[id].status?.status_str)) return history[id];
    const queue = await (await fetch(`${URL}/queue`)).json();
    seenQueued ||= !!id || queue.queue_running.length + queue.queue_pending.length > 0;
    if (!seenQueued && Date.now() > end - timeoutMs + 5000) return null; // refused at /prompt
    await new Promise((r) => setTimeout(r, 300));
  }
  return null;
}

async function linesShown(nodeId, widgetName) {
  // A lines widget's element, as the user sees it in either renderer: attached, laid out, not
  // hidden, inside the window. Its text is what it shows.
  return page.evaluate(([id, name]) => {
    const node = window.app.graph.getNodeById(id);
    const el = node?.widgets?.find((w) => w.name === name)?.element;
    if (!el) return { visible: false, text: "", why: `no ${name} widget` };
    const r = el.getBoundingClientRect();
    const visible = el.isConnected && r.width > 20 && r.height > 8 && r.bottom > 0 && r.right > 0
      && r.top < window.innerHeight && r.left < window.innerWidth && (el.checkVisibility?.({ opacityProperty: true, visibilityProperty: true }) ?? true);
    const clip = { x: Math.max(0, r.left - 200), y: Math.max(0, r.top - 260), width: Math.min(900, window.innerWidth - Math.max(0, r.left - 200)), height: Math.min(700, window.innerHeight - Math.max(0, r.top - 260)) };
    return { visible, text: el.innerText, rect: [Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height)], clip };
  }, [nodeId, widgetName]);
}

async function fitView() {
  await page.evaluate(() => {
    const c = window.app.canvas, nodes = window.app.graph.nodes ?? window.app.graph._nodes, T = window.LiteGraph.NODE_TITLE_HEIGHT;
    const x0 = Math.min(...nodes.map((n) => n.pos[0])) - 20, y0 = Math.min(...nodes.map((n) => n.pos[1] - T)) - 40;
    const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])) + 20, y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1])) + 80;
    const ratio = window.devicePixelRatio || 1;
    c.ds.scale = Math.min(c.canvas.width / ratio / (x1 - x0), c.canvas.height / ratio / (y1 - y0), 1.2);
    c.ds.offset[0] = -x0; c.ds.offset[1] = -y0;
    c.setDirty(true, true);
  });
  await page.waitForTimeout(800);
}

async function zoomOn(nodeId, scale = 1.0) {
  await page.evaluate(([id, scale]) => {
    const c = window.app.canvas, n = window.app.graph.getNodeById(id), T = window.LiteGraph.NODE_TITLE_HEIGHT;
    c.ds.scale = scale; c.ds.offset[0] = -n.pos[0] + 300 / scale; c.ds.offset[1] = -n.pos[1] + (T + 80) / scale;
    c.setDirty(true, true);
  }, [nodeId, scale]);
  await page.waitForTimeout(1200); // both renderers place their DOM after the next frame
}

async function setSize(nodeId, value) {
  // As a user's pick does in both renderers: the value, then the widget's callback.
  await page.evaluate(([id, value]) => {
    const node = window.app.graph.getNodeById(id);
    const w = node.widgets.find((x) => x.name === "size");
    w.value = value;
    w.callback?.(value, window.app.canvas, node);
  }, [nodeId, value]);
  await page.waitForTimeout(800);
}

async function checkWaveSpeedLines(files, renderer) {
  console.log(`\n== WaveSpeed node lines (${renderer})`);
  const file = remoteWorkflow(files);
  if (!file) return;
  const status = await (await fetch(`${URL}/api/hunyuan_custom/wavespeed_key_status`)).json();
  const workflow = readWorkflow(file);
  await closeDialogs();
  await loadWorkflow(workflow, `${file} (lines)`);
  const id = workflow.nodes.find((n) => n.type === "HunyuanCustomWaveSpeed").id;
  await zoomOn(id);
  const expected = status.configured ? "WaveSpeed key: set" : "WaveSpeed key: missing";
  let lines = await linesShown(id, "hyc_status");
  check(`WaveSpeed node shows "${expected}" (server says configured=${status.configured}) (${renderer})`,
    lines.visible && lines.text.startsWith(expected), JSON.stringify(lines));
  check(`WaveSpeed node shows what WaveSpeed fixes (${renderer})`, lines.visible && /WaveSpeed fixes 129 frames/.test(lines.text), lines.text);
  check(`no size warning for 1280*720 (${renderer})`, !lines.text.includes("local-only"), lines.text);
  await page.screenshot({ path: `${SHOTS}/wavespeed_key_${status.configured ? "set" : "missing"}_${renderer}.png`, clip: lines.clip ?? undefined });
  await setSize(id, "960*544");
  lines = await linesShown(id, "hyc_status");
  check(`WaveSpeed node warns about the local-only size 960*544 (${renderer})`, lines.visible && lines.text.includes("960*544 is local-only"), JSON.stringify(lines));
  await page.screenshot({ path: `${SHOTS}/wavespeed_local_size_${renderer}.png`, clip: lines.clip ?? undefined });
  const saved = await page.evaluate((id) => window.app.graph.getNodeById(id).serialize().widgets_values, id);
  check(`the lines are not saved into the workflow (${renderer})`, !JSON.stringify(saved).includes("WaveSpeed"), JSON.stringify(saved));
  await setSize(id, "1280*720");
  lines = await linesShown(id, "hyc_status");
  check(`the warning goes when the size is one WaveSpeed renders (${renderer})`, lines.visible && !lines.text.includes("local-only"), lines.text);
  reportErrors(`WaveSpeed lines (${renderer})`);
}

async function nodeOverlaps() {
  // Boxes as drawn: in Nodes 2.0 the DOM nodes (their real size), in the classic canvas pos/size with
  // the title bar above pos. Group titles: the band at the top of each group.
  return page.evaluate(() => {
    const graph = window.app.graph, T = window.LiteGraph.NODE_TITLE_HEIGHT, c = window.app.canvas;
    const nodes = graph.nodes ?? graph._nodes;
    const toGraph = (r) => {
      const [ox, oy] = c.ds.offset, k = c.ds.scale, b = c.canvas.getBoundingClientRect();
      return [(r.left - b.left) / k - ox, (r.top - b.top) / k - oy, r.width / k, r.height / k];
    };
    const boxes = nodes.map((n) => {
      const el = document.querySelector(`[data-node-id="${n.id}"]`);
      const box = el && el.getBoundingClientRect().width > 0 ? toGraph(el.getBoundingClientRect())
        : [n.pos[0], n.pos[1] - T, n.size[0], n.size[1] + T];
      return { id: n.id, type: n.type, box };
    });
    const cut = (a, b) => a[0] + 2 < b[0] + b[2] && b[0] + 2 < a[0] + a[2] && a[1] + 2 < b[1] + b[3] && b[1] + 2 < a[1] + a[3];
    const out = [];
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      if (cut(boxes[i].box, boxes[j].box)) out.push(`${boxes[i].id} ${boxes[i].type} / ${boxes[j].id} ${boxes[j].type}`);
    }
    for (const g of graph.groups ?? graph._groups ?? []) {
      const [x, y, w] = g._bounding ?? g.bounding, band = [x, y, w, (g.font_size ?? 24) + 10];
      for (const b of boxes) if (cut(b.box, band)) out.push(`${b.id} ${b.type} / group title "${g.title}"`);
    }
    return out;
  });
}

async function checkLayout(files, renderer) {
  console.log(`\n== layout (${renderer})`);
  for (const file of files) {
    await closeDialogs();
    await loadWorkflow(readWorkflow(file), `${file} (layout)`);
    await closeDialogs();
    await fitView();
    const overlaps = await nodeOverlaps();
    check(`${file}: no node overlaps another or a group title (${renderer})`, overlaps.length === 0, overlaps.join(" | "));
    // The longest problem the pack shows (12 lines and more, each wrapping), on every one of our nodes.
    await showLongProblems();
    await closeDialogs();
    await fitView();
    const shown = await page.evaluate(() => (window.app.graph.nodes ?? window.app.graph._nodes)
      .filter((n) => n.widgets?.some((w) => w.name === "hyc_problem")).length);
    const after = await nodeOverlaps();
    check(`${file}: with a long problem on each of our nodes (${shown}), still no overlap (${renderer})`, shown > 0 && after.length === 0, after.join(" | "));
    await page.screenshot({ path: `${SHOTS}/${file}_long_problems_${renderer}.png` });
  }
}

async function showLongProblems() {
  // As the server reports a failed run (the execution_error event), for each of our nodes in turn.
  await page.evaluate(async () => {
    const { api } = await import("/scripts/api.js");
    const line = "a problem line long enough to wrap across the node, as the pack's messages with a file path do";
    for (const node of (window.app.graph.nodes ?? window.app.graph._nodes).filter((n) => /^HunyuanCustom/.test(n.type))) {
      api.dispatchCustomEvent("execution_error", {
        prompt_id: "hyc-layout-check", node_id: String(node.id), node_type: node.type, executed: [],
        exception_message: Array.from({ length: 14 }, (_, i) => `${i + 1}: ${line}`).join("\n"),
        exception_type: "ValueError", traceback: [], current_inputs: {}, current_outputs: {},
      });
    }
  });
  await page.waitForTimeout(1500);
}

async function checkTypedSize(files, renderer) {
  console.log(`\n== typed size (${renderer})`);
  const file = localWorkflow(files);
  if (!file) return;
  const workflow = readWorkflow(file);
  await closeDialogs();
  await loadWorkflow(workflow, `${file} (typed size)`);
  const id = workflow.nodes.find((n) => n.type === "HunyuanCustomSampler").id;
  const widget = await page.evaluate((id) => {
    const w = window.app.graph.getNodeById(id).widgets.find((x) => x.name === "size");
    return { type: w.type, options: Array.isArray(w.options?.values) ? w.options.values.length : null };
  }, id);
  check(`the local size is a text box, not a list (${renderer})`, widget.type !== "combo" && widget.options === null, JSON.stringify(widget));
  await zoomOn(id);
  // Type it as a user does: in Nodes 2.0 into the node's text input, in the classic canvas the prompt dialog's value.
  const typed = "256*144";
  const input = page.locator(`[data-node-id="${id}"] input[type=text], [data-node-id="${id}"] input:not([type])`).first();
  if (renderer === "vue" && await input.count()) {
    await input.fill(typed);
    await input.press("Enter");
  } else {
    await page.evaluate(([id, value]) => {
      const node = window.app.graph.getNodeById(id), w = node.widgets.find((x) => x.name === "size");
      w.value = value; w.callback?.(value, window.app.canvas, node);
    }, [id, typed]);
  }
  await page.waitForTimeout(800);
  const now = await page.evaluate((id) => window.app.graph.getNodeById(id).widgets.find((x) => x.name === "size").value, id);
  check(`a typed size ${typed} is taken (${renderer})`, now === typed, now);
  const red = await page.evaluate((id) => [...document.querySelectorAll(`[data-node-id="${id}"] [class*=error], [data-node-id="${id}"] .border-red-500`)].length, id);
  check(`no red border on the typed size (${renderer})`, red === 0, red);
  reportErrors(`typed size (${renderer})`);
}

async function checkProblemsOnNodes(files, renderer) {
  console.log(`\n== problems on the node concerned (${renderer})`);
  const hybrid = files.find((f) => { const w = readWorkflow(f); return w.nodes.some((n) => n.type === "HunyuanCustomWaveSpeed") && w.nodes.some((n) => n.type === "HunyuanCustomSampler"); });
  if (hybrid) {
    // A branch that fails its checks (a VAE picked as the transformer): nothing runs (no WaveSpeed
    // render), and the loader says why in red.
    const workflow = readWorkflow(hybrid);
    const loader = workflow.nodes.find((n) => n.type === "HunyuanCustomModelLoader");
    loader.widgets_values[0] = "a_vae_by_mistake.pt";
    await closeDialogs();
    await loadWorkflow(workflow, `${hybrid} (failing branch)`);
    await closeDialogs();
    const before = new Set(Object.keys(await (await fetch(`${URL}/history`)).json()));
    await page.evaluate(async () => { try { await window.app.queuePrompt(0, 1); } catch (e) { /* shown below */ } });
    await page.waitForTimeout(4000);
    const history = await (await fetch(`${URL}/history`)).json();
    const queue = await (await fetch(`${URL}/queue`)).json();
    const ran = Object.keys(history).filter((k) => !before.has(k));
    check(`${hybrid} with a failing branch: nothing ran, nothing queued (${renderer})`, ran.length === 0
      && queue.queue_running.length + queue.queue_pending.length === 0, JSON.stringify(ran));
    await closeDialogs();
    await zoomOn(loader.id);
    const lines = await linesShown(loader.id, "hyc_problem");
    check(`the loader shows the problem in red on the node (${renderer})`, lines.visible && /transformer: .*VAE/.test(lines.text), JSON.stringify(lines));
    await page.screenshot({ path: `${SHOTS}/failing_branch_${renderer}.png`, clip: lines.clip ?? undefined });
  }
  // A problem raised while a node runs: a subject longer than a word is refused by the Prompt node at run time.
  const file = localWorkflow(files);
  if (file) {
    const workflow = readWorkflow(file);
    const prompt = workflow.nodes.find((n) => n.type === "HunyuanCustomPrompt");
    prompt.widgets_values[2] = "a subject of far more words than the one short word or phrase the prompt template takes";
    await closeDialogs();
    await loadWorkflow(workflow, `${file} (run-time problem)`);
    await closeDialogs();
    const before = new Set(Object.keys(await (await fetch(`${URL}/history`)).json()));
    await page.evaluate(async () => { try { await window.app.queuePrompt(0, 1); } catch (e) { /* shown below */ } });
    const entry = await waitForRun(before, 120000);
    await page.waitForTimeout(2500);
    await closeDialogs();
    await zoomOn(prompt.id);
    const lines = await linesShown(prompt.id, "hyc_problem");
    check(`a run-time problem shows on its node in the pack's words (${renderer})`, entry?.status?.status_str === "error"
      && lines.visible && /subject = .*one short word/.test(lines.text), JSON.stringify(lines));
    await page.screenshot({ path: `${SHOTS}/runtime_problem_${renderer}.png`, clip: lines.clip ?? undefined });
  }
  reportErrors(`problems on nodes (${renderer})`);
}

async function checkMissingModelsDialog(files) {
  console.log("\n== missing-models dialog");
  const file = files.find((f) => readWorkflow(f).models?.length);
  if (!check("templates carry models metadata", !!file)) return;
  // The transformer as a user without the download has it: the loader's pick and the metadata name a
  // file the folder lacks. 1.27 opens its missing-models dialog; 1.58 lists it in its error overlay.
  const workflow = readWorkflow(file);
  const missing = workflow.models[0].name.replace(/[^/]+$/, "hyc_not_downloaded.pt");
  const loader = workflow.nodes.find((n) => n.type === "HunyuanCustomModelLoader");
  if (loader.widgets_values[0] === workflow.models[0].name) loader.widgets_values[0] = missing;
  workflow.models[0].name = missing;
  await closeDialogs();
  await loadWorkflow(workflow, `${file} (model missing)`);
  await page.waitForTimeout(2000);
  const text = [...await dialogTexts(), ...await page.evaluate(() => [...document.querySelectorAll(
    "[data-testid=error-overlay], .p-toast-message")].map((e) => e.innerText))].join("\n");
  check("a template whose model file is missing says so when it opens, naming the file", text.includes("hyc_not_downloaded.pt"), text.slice(0, 400));
  await page.screenshot({ path: `${SHOTS}/missing_models.png` });
  await closeDialogs();
}

async function checkRefusedQueue(files) {
  console.log("\n== a queue the server refuses: one problem, one message");
  const file = remoteWorkflow(files) ?? files[0];
  const workflow = readWorkflow(file);
  const image = workflow.nodes.find((n) => n.type === "HunyuanCustomLoadImage");
  if (!image) return;
  image.widgets_values[0] = MISSING_PICTURE;
  await closeDialogs();
  await loadWorkflow(workflow, `${file} (missing picture)`);
  await page.evaluate(async () => { try { await window.app.queuePrompt(0, 1); } catch (e) { /* shown below */ } });
  await page.waitForTimeout(3000);
  const errs = await page.evaluate((id) => window.app.lastNodeErrors?.[String(id)]?.errors ?? [], image.id);
  check("the server refused the queue and named the missing picture", errs.some((e) => JSON.stringify(e).includes(MISSING_PICTURE)), JSON.stringify(errs));
  check("the server reported the missing picture once (not under image and url)", errs.length === 1,
    errs.map((e) => `${e.extra_info?.input_name}: ${e.details}`).join(" | "));
  // What the user reads: 1.58's issues panel (the error overlay's "View details"), 1.27's dialog.
  const details = page.locator("[data-testid=error-overlay-see-errors]");
  if (await details.count()) {
    await details.first().click();
    await page.waitForTimeout(1500);
    const entries = await page.evaluate(() => [...document.querySelectorAll("[data-testid=error-group-execution]")]
      .map((g) => g.innerText.split("\n").map((s) => s.trim()).filter((s) => /Load Reference Image/.test(s))).flat());
    check("the issues panel lists the Load Reference Image problem once", entries.length === 1, JSON.stringify(entries));
  } else {
    const text = (await dialogTexts()).join("\n");
    const mentions = text.split("\n").filter((line) => line.includes(MISSING_PICTURE));
    check("the error dialog names the missing picture once", mentions.length === 1, mentions.join(" | "));
  }
  await page.screenshot({ path: `${SHOTS}/refused_queue.png` });
  await closeDialogs();
  reportErrors("refused queue");
}
