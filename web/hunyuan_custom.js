// HunyuanCustom frontend extension (classic app.registerExtension API, frontends 1.27 to 1.58).
//
// Everything it shows is a "lines" widget: a DOM widget (node.addDOMWidget), which both node
// renderers display (the classic canvas lays the element over the node; Nodes 2.0, the Vue
// renderer, mounts it inside the node). Canvas drawing hooks such as onDrawForeground do not run
// for Vue nodes, so nothing here depends on them. The widgets are display only: never saved into
// workflows (serialize: false) nor sent with a prompt.
// - Results: every node of this pack that answers `ui.text` (e.g. the sampler's frames and seed,
//   the saver's file name) shows those lines under its widgets. They come from the node's UI
//   output, which the frontend keeps after the job (1.58 clears progress text when a job ends);
//   dimmed while the next run is on, replaced by its result.
// - WaveSpeed node: whether the server has a WaveSpeed key (asks our route for yes/no; this file
//   never sees or handles a key), a red line when the chosen size is one WaveSpeed refuses, and a
//   hint of what WaveSpeed fixes.
// - Problems: a refused queue's errors (from /prompt's answer) and a failed run's message (the
//   `execution_error` event) in red on the node concerned, in the pack's own words: 1.58 shows a
//   generic "node failed" panel and 1.27 only a red outline for a dropped output. Kept until the
//   next queue; "cancelled" after Cancel on the node that was running (1.27 left "sampling...").
// - Load Audio: the audio player core Load Audio has (the frontend adds it to core nodes only).
// - Local sampler: a workflow saved with the older deep_cache switch shows its true/false in the
//   `cache` widget that took its place; shown as deepcache/off (the server maps it alike).
// - Templates: they open at a zoom where nodes are drawn (graph_view.js), and their cards in the
//   template browser say what they do (template_browser.js).
// Pure logic lives in hyc_logic.js (unit-tested with node --test).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import {
  CANCELLED_COLOR, KEY_STATUS_ROUTE, LOADER_FOLDERS, addAudioPlayer, missingModelLines, isOurNodeType, legacyCacheValue, nodeErrorLines, problemLines, resultLines,
  wavespeedHint, wavespeedLines, wavespeedNodeStatus, wrappedRows,
} from "./hyc_logic.js";
import { keepReadableAfterLoad } from "./graph_view.js";
import { watchTemplateBrowser } from "./template_browser.js";

const WAVESPEED_NODE = "HunyuanCustomWaveSpeed";
const SAMPLER_NODE = "HunyuanCustomSampler";
const LOAD_AUDIO_NODE = "HunyuanCustomLoadAudio";
const LOADER_NODE = "HunyuanCustomModelLoader";
const STATUS_WIDGET = "hyc_status";
const RESULT_WIDGET = "hyc_result";
const PROBLEM_WIDGET = "hyc_problem";
const WIDGET_TYPE = "hyc_lines";

function decorateSamplerNode(nodeType) {
  const onConfigure = nodeType.prototype.onConfigure;
  nodeType.prototype.onConfigure = function () {
    const result = onConfigure?.apply(this, arguments);
    const widget = this.widgets?.find((w) => w.name === "cache");
    if (widget) widget.value = legacyCacheValue(widget.value);
    return result;
  };
}
const STATUS_MAX_AGE_MS = 30_000;
const LINE_HEIGHT = 16;
const PADDING = 6;
const MARGIN = 4; // around the element inside the widget's slot (frontends default to 10)
const FONT = "12px sans-serif";
// A problem can run to a dozen wrapped rows; shown whole, it grew the node over the one below. The
// first rows say what is wrong; the rest scrolls (and is the element's tooltip).
const MAX_ROWS = { [PROBLEM_WIDGET]: 4 }; // tests/_workflow_builder.py PROBLEM_ROOM leaves room for them

let keyAnswer = null; // last route answer ({configured}) or null
let keyCheckedAt = 0;
let keyRequest = null;

async function refreshKeyStatus(force = false) {
  if (!force && Date.now() - keyCheckedAt < STATUS_MAX_AGE_MS) return keyAnswer;
  if (keyRequest) return keyRequest;
  keyRequest = (async () => {
    try {
      const response = await api.fetchApi(KEY_STATUS_ROUTE, { cache: "no-store" });
      keyAnswer = response.ok ? await response.json() : null;
    } catch (error) {
      keyAnswer = null;
    } finally {
      keyCheckedAt = Date.now();
      keyRequest = null;
    }
    for (const node of graphNodes()) if (node.type === WAVESPEED_NODE) refreshWaveSpeed(node);
    return keyAnswer;
  })();
  return keyRequest;
}

function graphNodes() {
  const graph = app.graph;
  return graph?.nodes ?? graph?._nodes ?? [];
}

let measureContext = null;
function measure(text) {
  measureContext ??= document.createElement("canvas").getContext("2d");
  measureContext.font = FONT;
  return measureContext.measureText(text).width;
}

/** The node's lines widget `name`, created on first use (added after the node's own widgets). */
function linesWidget(node, name) {
  const existing = node.widgets?.find((w) => w.name === name);
  if (existing?.hycSetLines) return existing;
  const element = document.createElement("div");
  element.className = "hyc-lines";
  element.dataset.hycLines = name;
  Object.assign(element.style, {
    font: FONT, lineHeight: `${LINE_HEIGHT}px`, padding: `${PADDING / 2}px 4px`, boxSizing: "border-box",
    whiteSpace: "normal", overflowWrap: "anywhere", overflow: "hidden", userSelect: "text", cursor: "text",
  });
  // Nodes 2.0 lays the element out at its own height (not the widget's): cap it in CSS too.
  if (MAX_ROWS[name]) Object.assign(element.style, { maxHeight: `${MAX_ROWS[name] * LINE_HEIGHT + PADDING}px`, overflowY: "auto" });
  let lines = [];
  let measuredWidth = 0;
  const height = () => {
    if (!lines.length) return 0;
    // Until the element is laid out its width is unknown: guess from the node, then lay the node
    // out again once the real width is there (or has changed, e.g. after a resize).
    const width = element.clientWidth || (node.size?.[0] ?? 300) - 2 * MARGIN;
    if (element.clientWidth !== measuredWidth) {
      measuredWidth = element.clientWidth;
      requestAnimationFrame(() => fitNode(node));
    }
    // The frontends size the element to the widget's height less its margins.
    const rows = wrappedRows(lines, Math.max(width - 8, 60), measure);
    return Math.min(rows, MAX_ROWS[name] ?? Infinity) * LINE_HEIGHT + PADDING + 2 * MARGIN;
  };
  const widget = node.addDOMWidget(name, WIDGET_TYPE, element, {
    serialize: false,
    margin: MARGIN,
    getValue: () => lines.map((line) => line.text).join("\n"), // what a text fallback shows
    setValue: () => {}, // display only
    getMinHeight: height,
    getMaxHeight: height,
  });
  widget.serialize = false;
  widget.hycSetLines = (next, { stale = false } = {}) => {
    element.style.opacity = stale ? "0.5" : "1";
    keepAboveFrontendWidgets(node, widget);
    const same = next.length === lines.length && next.every((l, i) => l.text === lines[i].text && l.color === lines[i].color);
    if (same) return;
    lines = next;
    element.title = MAX_ROWS[name] ? lines.map((line) => line.text).join("\n") : "";
    element.replaceChildren(...lines.map((line) => {
      const row = document.createElement("div");
      row.textContent = line.text;
      row.style.color = line.color;
      return row;
    }));
    fitNode(node);
  };
  widget.hycMarkStale = () => { element.style.opacity = "0.5"; };
  return widget;
}

/** The frontend's own preview widgets ("$$canvas-image-preview" for a step preview, progress
 * text) fill the rest of a classic node: our lines go before them, or the image covered them. */
function keepAboveFrontendWidgets(node, widget) {
  const widgets = node.widgets ?? [];
  const first = widgets.findIndex((w) => String(w.name).startsWith("$$"));
  const mine = widgets.indexOf(widget);
  if (first < 0 || mine < first) return;
  widgets.splice(mine, 1);
  widgets.splice(first, 0, widget);
}

function fitNode(node) {
  const wanted = node.computeSize?.();
  if (wanted && node.size && node.size[1] < wanted[1]) node.setSize?.([node.size[0], wanted[1]]);
  node.setDirtyCanvas?.(true, true);
  app.graph?.setDirtyCanvas?.(true, true);
}

function sizeValue(node) {
  return node.widgets?.find((w) => w.name === "size")?.value;
}

function refreshWaveSpeed(node) {
  node.hycShownSize = sizeValue(node);
  linesWidget(node, STATUS_WIDGET).hycSetLines(wavespeedLines(wavespeedNodeStatus(keyAnswer, node.hycShownSize)));
}

function showResult(node, output) {
  const lines = resultLines(output);
  if (lines.length) linesWidget(node, RESULT_WIDGET).hycSetLines(lines);
}

function ourNode(id) {
  if (id === undefined || id === null || String(id).includes(":")) return null; // inside a subgraph: not ours to place
  const node = app.graph?.getNodeById?.(id);
  return node && isOurNodeType(node.type) ? node : null;
}

function showProblem(id, lines) {
  const node = ourNode(id);
  if (!node || !lines.length) return;
  linesWidget(node, PROBLEM_WIDGET).hycSetLines(lines);
  app.canvas?.bringToFront?.(node); // grown by the lines: drawn over its neighbour, not under it
}

function clearProblems() {
  for (const node of graphNodes()) node.widgets?.find((w) => w.name === PROBLEM_WIDGET)?.hycSetLines?.([]);
}

function showNodeErrors(nodeErrors) {
  for (const [id, entry] of Object.entries(nodeErrors ?? {})) showProblem(id, nodeErrorLines(entry));
}

/** Both frontends queue through api.queuePrompt and get /prompt's node errors back from it, in its
 * answer (accepted with some outputs dropped) or in the error it throws (refused). */
function watchQueue() {
  const queuePrompt = api.queuePrompt;
  if (typeof queuePrompt !== "function" || queuePrompt.hycWatched) return;
  // Not an async wrapper: the frontend awaits the original promise itself, so a refusal's error (which
  // the frontend reports) carries none of our frames; we only watch the same promise.
  const watched = function () {
    clearProblems();
    const answer = queuePrompt.apply(this, arguments);
    Promise.resolve(answer).then((result) => showNodeErrors(result?.node_errors),
      (error) => showNodeErrors(error?.response?.node_errors));
    return answer;
  };
  watched.hycWatched = true;
  api.queuePrompt = watched;
}

/** Model Loader: a pick that is not in its folder's list (a template opened before its models were
 * downloaded, e.g. whisper-tiny/) is said on the node when the workflow opens, not first on queue. */
function refreshLoader(node) {
  const picks = {};
  for (const name of Object.keys(LOADER_FOLDERS)) {
    const widget = node.widgets?.find((w) => w.name === name);
    if (!widget) continue;
    const values = widget.options?.values;
    picks[name] = { value: widget.value, options: typeof values === "function" ? values() : values };
  }
  const lines = missingModelLines(picks);
  const existing = node.widgets?.find((w) => w.name === PROBLEM_WIDGET);
  if (lines.length || existing) linesWidget(node, PROBLEM_WIDGET).hycSetLines(lines);
}

function decorateLoaderNode(nodeType) {
  const onConfigure = nodeType.prototype.onConfigure;
  nodeType.prototype.onConfigure = function () {
    const result = onConfigure?.apply(this, arguments);
    const node = this;
    for (const widget of node.widgets ?? []) {
      if (!(widget.name in LOADER_FOLDERS) || widget.hycWatched) continue;
      const callback = widget.callback;
      widget.callback = function () {
        const out = callback?.apply(this, arguments);
        refreshLoader(node);
        return out;
      };
      widget.hycWatched = true;
    }
    refreshLoader(node);
    return result;
  };
}

function decorateWaveSpeedNode(nodeType, nodeData) {
  // The node's tooltip (its description) also carries the hint.
  const hint = wavespeedHint();
  if (nodeData && !String(nodeData.description || "").includes(hint)) {
    nodeData.description = `${nodeData.description ? `${nodeData.description}\n` : ""}${hint}`;
  }

  const onNodeCreated = nodeType.prototype.onNodeCreated;
  nodeType.prototype.onNodeCreated = function () {
    const result = onNodeCreated?.apply(this, arguments);
    const node = this;
    const size = node.widgets?.find((w) => w.name === "size");
    if (size) {
      const callback = size.callback; // both renderers call it when the user picks a size
      size.callback = function () {
        const out = callback?.apply(this, arguments);
        refreshWaveSpeed(node);
        return out;
      };
    }
    refreshWaveSpeed(node);
    refreshKeyStatus();
    return result;
  };

  const onConfigure = nodeType.prototype.onConfigure;
  nodeType.prototype.onConfigure = function () {
    const result = onConfigure?.apply(this, arguments);
    refreshWaveSpeed(this); // a loaded workflow sets the size without a callback
    return result;
  };

  // Classic renderer only: also follows a size set by a script; Vue nodes use the callback.
  const onDrawForeground = nodeType.prototype.onDrawForeground;
  nodeType.prototype.onDrawForeground = function () {
    const result = onDrawForeground?.apply(this, arguments);
    if (sizeValue(this) !== this.hycShownSize) refreshWaveSpeed(this);
    if (Date.now() - keyCheckedAt >= STATUS_MAX_AGE_MS) refreshKeyStatus();
    return result;
  };
}

function decorateResults(nodeType) {
  const onExecuted = nodeType.prototype.onExecuted;
  nodeType.prototype.onExecuted = function (output) {
    const result = onExecuted?.apply(this, arguments);
    showResult(this, output);
    return result;
  };
}

app.registerExtension({
  name: "HunyuanCustom.WebExtension",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!isOurNodeType(nodeData?.name)) return;
    decorateResults(nodeType);
    if (nodeData.name === WAVESPEED_NODE) decorateWaveSpeedNode(nodeType, nodeData);
    if (nodeData.name === SAMPLER_NODE) decorateSamplerNode(nodeType);
    if (nodeData.name === LOADER_NODE) decorateLoaderNode(nodeType);
    if (nodeData.name === LOAD_AUDIO_NODE) addAudioPlayer(nodeData.input?.required);
  },
  // The frontend restores kept outputs (e.g. back on a workflow's tab) through this hook.
  onNodeOutputsUpdated(nodeOutputs) {
    for (const [id, output] of Object.entries(nodeOutputs ?? {})) {
      if (String(id).includes(":")) continue; // inside a subgraph: not ours to place
      const node = app.graph?.getNodeById?.(id);
      if (node && isOurNodeType(node.type)) showResult(node, output);
    }
  },
  afterConfigureGraph() {
    if (graphNodes().some((node) => isOurNodeType(node.type))) {
      keepReadableAfterLoad(app, window.LiteGraph?.NODE_TITLE_HEIGHT ?? 30);
    }
  },
  async setup() {
    watchQueue();
    watchTemplateBrowser();
    api.addEventListener?.("execution_error", ({ detail }) => {
      showProblem(detail?.node_id, problemLines(detail?.exception_message));
    });
    api.addEventListener?.("execution_interrupted", ({ detail }) => {
      showProblem(detail?.node_id, [{ text: "cancelled", color: CANCELLED_COLOR }]);
    });
    api.addEventListener?.("execution_start", () => {
      refreshKeyStatus(true); // a key set or removed while ComfyUI runs shows up with the next run
      for (const node of graphNodes()) node.widgets?.find((w) => w.name === RESULT_WIDGET)?.hycMarkStale?.();
    });
  },
});
