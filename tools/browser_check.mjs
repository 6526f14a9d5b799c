// Check the pack as a user sees it: a real ComfyUI frontend in headless Chromium.
//
// It contains no ComfyUI code: it opens a RUNNING ComfyUI server's page and uses the frontend's
// public objects (window.app, LiteGraph) the way a user's clicks would.
//   1. the page loads with our web extension registered and no page error from our files;
//   2. each UI workflow in workflows/*.json loads (app.loadGraphData, like a drag and drop):
//      no dialog (missing nodes/models), every node type known, every widget holds the file's
//      value (node.serialize() gives back the file's widgets_values), and the prompt the UI
//      builds (app.graphToPrompt) has the same inputs as the committed API twin (workflows/api);
//   3. each workflow, shrunk for a CPU (local samplers 64*48, 9 frames, 2 steps, float32), is
//      queued from the UI (app.queuePrompt), runs, and every video saver shows its file;
//   4. the WaveSpeed node draws the key line (matching the server's key status) and the warning
//      for a local-only size (texts caught from the canvas' fillText);
//   5. /api/workflow_templates lists our workflows for the template browser, with their thumbnails.
// Screenshots go to --shots (not committed). Exit status 0 when every check passed.
//
// Setup: Chromium (Debian: apt-get install chromium) and `npm install playwright-core` in some
// folder; start ComfyUI with the tiny models and the fake WaveSpeed server:
//   python tools/comfyui_smoke.py --comfyui /path/to/ComfyUI --python /path/to/env/python --serve
// then, with NODE_PATH pointing at that folder's node_modules:
//   NODE_PATH=/tmp/pw/node_modules node tools/browser_check.mjs --url http://127.0.0.1:8199
// Options: --shots DIR, --chromium PATH, --no-queue, --only SUBSTRING (workflow file names),
// --workflows DIR (default: this checkout's workflows/).

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
const TINY = { size: "64*48", num_frames: 9, steps: 2, dtype: "float32" };
const SAVERS = ["HunyuanCustomSaveVideo", "SaveVideo"];
const OUR_FILES = /ComfyUI-HunyuanCustom|hunyuan_custom\.js|hyc_logic\.js/;

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
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
const errors = []; // page errors and console errors, with stacks
page.on("pageerror", (e) => errors.push(e.stack || e.message));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

try {
  await page.goto(URL, { waitUntil: "load" });
  await page.waitForFunction(() => window.app?.graph && window.LiteGraph, null, { timeout: 120000 });
  await page.waitForTimeout(3000); // extensions finish their setup()
  const ours = await page.evaluate(() => window.app.extensions.map((e) => e.name).filter((n) => /HunyuanCustom/.test(n)));
  check("our web extension is registered", ours.length > 0, ours.join(", "));
  reportErrors("page load");
  await page.screenshot({ path: `${SHOTS}/00_start.png` });

  const files = fs.readdirSync(WORKFLOWS).filter((f) => f.endsWith(".json") && f.includes(ONLY)).sort();
  for (const file of files) await checkWorkflow(file);
  await checkWaveSpeedLines();
  await checkTemplates(files);
} finally {
  await browser.close();
}
console.log(`\n${failures.length} check(s) failed${failures.length ? `: ${failures.join("; ")}` : ""}; screenshots in ${SHOTS}`);
process.exit(failures.length ? 1 : 0);

// ------------------------------------------------------------------------------------------

function reportErrors(when) {
  const all = errors.splice(0);
  const mine = all.filter((e) => OUR_FILES.test(e));
  check(`no page error from our files (${when})`, mine.length === 0, mine.join(" | ").slice(0, 1500));
  // Errors from ComfyUI itself (missing optional core nodes, offline update check) are listed only.
  for (const e of all.filter((x) => !OUR_FILES.test(x))) console.log(`      (not ours) ${e.split("\n").slice(0, 2).join(" ").slice(0, 200)}`);
}

async function dialogTexts() {
  return page.evaluate(() => [...document.querySelectorAll(".p-dialog, .comfy-modal[style*='flex']")].map((d) => d.innerText.slice(0, 600)));
}

async function closeDialogs() {
  await page.keyboard.press("Escape").catch(() => {});
  await page.evaluate(() => document.querySelectorAll(".p-dialog-close-button, .p-dialog-header-close").forEach((b) => b.click()));
  await page.waitForTimeout(300);
}

async function placeholderPng() {
  // A coloured subject on a transparent background, drawn by the browser.
  const b64 = await page.evaluate(async () => {
    const canvas = new OffscreenCanvas(40, 56), ctx = canvas.getContext("2d");
    ctx.fillStyle = "rgb(30,120,220)";
    ctx.fillRect(8, 10, 24, 36);
    const bytes = new Uint8Array(await (await canvas.convertToBlob({ type: "image/png" })).arrayBuffer());
    return btoa(String.fromCharCode(...bytes));
  });
  return Buffer.from(b64, "base64");
}

function placeholderWav(seconds = 0.6, rate = 44100) {
  // A stereo 16-bit WAV with two tones (a song for core Load Audio).
  const frames = Math.round(seconds * rate), data = Buffer.alloc(frames * 4);
  for (let i = 0; i < frames; i++) {
    data.writeInt16LE(Math.round(12000 * Math.sin((2 * Math.PI * 220 * i) / rate)), 4 * i);
    data.writeInt16LE(Math.round(9000 * Math.sin((2 * Math.PI * 330 * i) / rate)), 4 * i + 2);
  }
  const head = Buffer.alloc(44);
  head.write("RIFF", 0); head.writeUInt32LE(36 + data.length, 4); head.write("WAVEfmt ", 8);
  head.writeUInt32LE(16, 16); head.writeUInt16LE(1, 20); head.writeUInt16LE(2, 22); head.writeUInt32LE(rate, 24);
  head.writeUInt32LE(rate * 4, 28); head.writeUInt16LE(4, 32); head.writeUInt16LE(16, 34);
  head.write("data", 36); head.writeUInt32LE(data.length, 40);
  return Buffer.concat([head, data]);
}

async function uploadPlaceholders(workflow) {
  // The workflows name placeholder reference images (and songs); give the server a file for each.
  const png = await placeholderPng();
  const uploads = [
    ...workflow.nodes.filter((n) => n.type === "HunyuanCustomLoadImage").map((n) => [n, png, "image/png"]),
    ...workflow.nodes.filter((n) => n.type === "LoadAudio").map((n) => [n, placeholderWav(), "audio/wav"]),
  ];
  for (const [node, bytes, type] of uploads) {
    const form = new FormData();
    form.append("image", new Blob([bytes], { type }), node.widgets_values[0]);
    form.append("overwrite", "true");
    const r = await fetch(`${URL}/upload/image`, { method: "POST", body: form });
    if (!r.ok) throw new Error(`upload of ${node.widgets_values[0]} failed: ${r.status}`);
  }
}

async function checkWorkflow(file) {
  console.log(`\n== ${file}`);
  const workflow = JSON.parse(fs.readFileSync(path.join(WORKFLOWS, file), "utf8"));
  await uploadPlaceholders(workflow);
  await page.evaluate(async ([wf, name]) => window.app.loadGraphData(wf, true, true, name), [workflow, file]);
  await page.waitForTimeout(1500);
  const dialogs = await dialogTexts();
  check(`${file}: loads without a dialog (missing nodes/models)`, dialogs.length === 0, dialogs.join(" | "));
  await closeDialogs();
  const nodes = await page.evaluate((wf) => wf.nodes.map((f) => {
    const node = window.app.graph.getNodeById(f.id);
    return {
      id: f.id, type: f.type, known: !!window.LiteGraph.registered_node_types[f.type], found: !!node,
      file: f.widgets_values ?? [], now: node ? node.serialize().widgets_values ?? [] : null,
      widgets: node ? (node.widgets || []).map((w) => `${w.name}=${String(w.value).slice(0, 40)}`) : [],
    };
  }), workflow);
  for (const n of nodes) {
    check(`${file}: node ${n.id} ${n.type} is known and in the graph`, n.known && n.found);
    check(`${file}: node ${n.id} ${n.type} widgets hold the file's values`,
      JSON.stringify(n.now) === JSON.stringify(n.file), `file ${JSON.stringify(n.file).slice(0, 300)} now ${JSON.stringify(n.now).slice(0, 300)}`);
    console.log(`      ${n.id} ${n.type}: ${n.widgets.join(", ")}`);
  }
  await compareWithApiTwin(file);
  reportErrors(`loading ${file}`);
  await fitView();
  await page.screenshot({ path: `${SHOTS}/${file}_loaded.png` });
  if (!QUEUE) return;
  const keyStatus = await (await fetch(`${URL}/api/hunyuan_custom/wavespeed_key_status`)).json();
  if (!keyStatus.configured && nodes.some((n) => n.type === "HunyuanCustomWaveSpeed")) {
    console.log(`SKIP  ${file}: not queued, the server has no WaveSpeed key`);
    return;
  }
  await queueWorkflow(file, nodes);
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
    check(`${file}: node ${id} ${node.class_type} inputs in the UI's prompt match the API twin`, wrong.length === 0, wrong.join("; "));
  }
}

async function queueWorkflow(file, nodes) {
  await page.evaluate((tiny) => {
    const set = (node, name, value) => { const w = node.widgets?.find((x) => x.name === name); if (w) w.value = value; };
    for (const node of window.app.graph._nodes) {
      if (node.type === "HunyuanCustomSampler") for (const k of ["size", "num_frames", "steps"]) set(node, k, tiny[k]);
      if (node.type === "HunyuanCustomModelLoader") set(node, "dtype", tiny.dtype);
    }
  }, TINY);
  const before = new Set(Object.keys(await (await fetch(`${URL}/history`)).json()));
  await page.evaluate(async () => { try { await window.app.queuePrompt(0, 1); } catch (e) { /* shown below */ } });
  const entry = await waitForRun(before);
  if (!check(`${file}: queued from the UI, accepted and finished`, entry?.status?.status_str === "success",
    entry ? JSON.stringify(entry.status.messages.filter((m) => m[0] === "execution_error")).slice(0, 1500)
      : `refused: ${JSON.stringify(await page.evaluate(() => window.app.lastNodeErrors)).slice(0, 1500)}`)) {
    await closeDialogs();
    return;
  }
  await page.waitForTimeout(2500); // the frontend loads the video previews
  for (const n of nodes.filter((x) => SAVERS.includes(x.type))) {
    const shown = await page.evaluate((id) => {
      const node = window.app.graph.getNodeById(id);
      const out = window.app.nodeOutputs?.[String(id)];
      return { files: (out?.images || out?.videos || []).map((f) => f.filename), preview: !!node?.videoContainer || !!node?.imgs };
    }, n.id);
    check(`${file}: ${n.type} ${n.id} saved a file and shows it`, (entry.outputs?.[n.id]?.images?.length ?? 0) > 0
      && shown.files.length > 0 && shown.preview, JSON.stringify(shown));
    await zoomOn(n.id, `${SHOTS}/${file}_ran_${n.type}_${n.id}.png`);
  }
  reportErrors(`running ${file}`);
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

async function fitView() {
  await page.evaluate(() => {
    const c = window.app.canvas, nodes = window.app.graph._nodes, T = window.LiteGraph.NODE_TITLE_HEIGHT;
    const x0 = Math.min(...nodes.map((n) => n.pos[0])) - 20, y0 = Math.min(...nodes.map((n) => n.pos[1] - T)) - 40;
    const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])) + 20, y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1])) + 80;
    const ratio = window.devicePixelRatio || 1;
    c.ds.scale = Math.min(c.canvas.width / ratio / (x1 - x0), c.canvas.height / ratio / (y1 - y0), 1.2);
    c.ds.offset[0] = -x0; c.ds.offset[1] = -y0;
    c.setDirty(true, true);
  });
  await page.waitForTimeout(800);
}

async function zoomOn(nodeId, file, scale = 1.3) {
  const box = await page.evaluate(([id, scale]) => {
    const c = window.app.canvas, n = window.app.graph.getNodeById(id), T = window.LiteGraph.NODE_TITLE_HEIGHT;
    c.ds.scale = scale; c.ds.offset[0] = -n.pos[0] + 120 / scale; c.ds.offset[1] = -n.pos[1] + (T + 60) / scale;
    c.setDirty(true, true);
    return { x: 70, y: 20, width: Math.min(1500, (n.size[0] + 300) * scale), height: Math.min(950, (n.size[1] + T + 220) * scale) };
  }, [nodeId, scale]);
  await page.waitForTimeout(800);
  await page.screenshot({ path: file, clip: box });
}

async function drawnTexts() {
  // Redraw the canvas once while recording every fillText call.
  return page.evaluate(async () => {
    const texts = [], proto = CanvasRenderingContext2D.prototype, original = proto.fillText;
    proto.fillText = function (text, ...rest) { texts.push(String(text)); return original.call(this, text, ...rest); };
    try {
      window.app.canvas.setDirty(true, true);
      window.app.canvas.draw(true, true);
    } finally {
      proto.fillText = original;
    }
    return texts;
  });
}

async function checkWaveSpeedLines() {
  console.log("\n== WaveSpeed node lines");
  const file = fs.readdirSync(WORKFLOWS).find((f) => f.includes("wavespeed") && f.endsWith(".json"));
  if (!file) return;
  const status = await (await fetch(`${URL}/api/hunyuan_custom/wavespeed_key_status`)).json();
  const workflow = JSON.parse(fs.readFileSync(path.join(WORKFLOWS, file), "utf8"));
  await page.evaluate(async ([wf, name]) => window.app.loadGraphData(wf, true, true, name), [workflow, `${file} (lines)`]);
  const id = workflow.nodes.find((n) => n.type === "HunyuanCustomWaveSpeed").id;
  await page.waitForTimeout(1500); // the key status answer arrives
  await zoomOn(id, `${SHOTS}/wavespeed_key_${status.configured ? "set" : "missing"}.png`);
  const expected = status.configured ? "WaveSpeed key: set" : "WaveSpeed key: missing";
  let texts = await drawnTexts();
  check(`WaveSpeed node draws "${expected}" (server says configured=${status.configured})`, texts.some((t) => t.startsWith(expected)),
    texts.filter((t) => /WaveSpeed/.test(t)).join(" | "));
  check("no size warning for 1280*720", !texts.some((t) => t.includes("local-only")));
  await page.evaluate((id) => { window.app.graph.getNodeById(id).widgets.find((w) => w.name === "size").value = "960*544"; }, id);
  texts = await drawnTexts();
  check("WaveSpeed node warns about the local-only size 960*544", texts.some((t) => t.includes("960*544 is local-only")));
  await zoomOn(id, `${SHOTS}/wavespeed_local_size.png`);
  reportErrors("WaveSpeed lines");
}

async function checkTemplates(files) {
  console.log("\n== template browser");
  const listed = await (await fetch(`${URL}/api/workflow_templates`)).json();
  const pack = Object.keys(listed).find((k) => files.some((f) => listed[k].includes(f.replace(/\.json$/, ""))));
  const names = pack ? listed[pack] : [];
  for (const f of files) {
    const name = f.replace(/\.json$/, "");
    const served = pack ? await fetch(`${URL}/api/workflow_templates/${pack}/${f}`) : null;
    check(`template ${name} listed and served`, names.includes(name) && served?.ok, pack || JSON.stringify(listed));
    const thumb = pack ? await fetch(`${URL}/api/workflow_templates/${pack}/${name}.jpg`) : null;
    check(`template ${name} has its card thumbnail`, thumb?.ok && thumb.headers.get("content-type") === "image/jpeg",
      thumb ? `${thumb.status} ${thumb.headers.get("content-type")}` : "not listed");
  }
}
