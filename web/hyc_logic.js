// Pure logic for the HunyuanCustom web extension: no DOM, no ComfyUI imports, so node's test
// runner can check it (web/tests/hyc_logic.test.mjs). Keep REMOTE_SIZES and WAVESPEED_FIXED in
// step with pipelines/schema.py (tests/test_web.py compares them).

/** Sizes WaveSpeed renders, "W*H" (720p model, then 480p model). */
export const REMOTE_SIZES = Object.freeze(["1280*720", "720*1280", "832*480", "480*832"]);

/** What WaveSpeed decides for you: these are not widgets on the remote node. */
export const WAVESPEED_FIXED = Object.freeze({ num_frames: 129, steps: 30, fps: 25 });

export const KEY_STATUS_ROUTE = "/hunyuan_custom/wavespeed_key_status";

/** "1280*720" (also "1280x720", spaces allowed) -> {width, height}; null if not W*H. */
export function parseSize(text) {
  if (typeof text !== "string") return null;
  const match = /^\s*(\d+)\s*[*xX]\s*(\d+)\s*$/.exec(text);
  if (!match) return null;
  const width = Number(match[1]);
  const height = Number(match[2]);
  if (!(width > 0 && height > 0)) return null;
  return { width, height };
}

/** Whether WaveSpeed accepts this size. */
export function isRemoteSize(text) {
  const size = parseSize(text);
  return size !== null && REMOTE_SIZES.includes(`${size.width}*${size.height}`);
}

/** Which WaveSpeed model renders a size ("720p" / "480p"), or null when it renders none. */
export function remoteModelFor(text) {
  if (!isRemoteSize(text)) return null;
  const { width, height } = parseSize(text);
  return Math.max(width, height) >= 1280 ? "720p" : "480p";
}

/**
 * Badge for the WaveSpeed node from the key-status route's answer.
 * `answer` is the parsed JSON ({configured: bool}), or null/an Error when the request failed.
 * Returns {text, state} with state "ok" | "missing" | "unknown".
 */
export function keyBadge(answer) {
  if (answer && typeof answer === "object" && !(answer instanceof Error) && typeof answer.configured === "boolean") {
    return answer.configured
      ? { text: "WaveSpeed key: set", state: "ok" }
      : { text: "WaveSpeed key: missing (set WAVESPEED_API_KEY)", state: "missing" };
  }
  return { text: "WaveSpeed key: unknown", state: "unknown" };
}

/** Badge colours by state (text colour on the dark node title). */
export const BADGE_COLORS = Object.freeze({ ok: "#4caf50", missing: "#ff9800", unknown: "#9e9e9e", error: "#f44336" });

/** Colour of the hint line. */
export const HINT_COLOR = "#888";

/** One-line reminder of what the remote node fixes, drawn under it. */
export function wavespeedHint() {
  const { num_frames, steps, fps } = WAVESPEED_FIXED;
  return `WaveSpeed fixes ${num_frames} frames, ${steps} steps, ${fps} fps; sizes ${REMOTE_SIZES.join(", ")}`;
}

/** A warning when the chosen size is one WaveSpeed will refuse; null when it is fine. */
export function sizeWarning(size) {
  if (isRemoteSize(size)) return null;
  return `size ${size} is local-only: WaveSpeed renders ${REMOTE_SIZES.join(", ")}`;
}

/** Everything the WaveSpeed node shows, from the route answer and the size widget's value. */
export function wavespeedNodeStatus(answer, size) {
  const badge = keyBadge(answer);
  const warning = size === undefined ? null : sizeWarning(size);
  return {
    badge,
    badgeColor: BADGE_COLORS[badge.state],
    warning,
    warningColor: warning ? BADGE_COLORS.error : null,
    hint: wavespeedHint(),
  };
}

/**
 * Split `text` into lines no wider than `maxWidth` (as `measure(text)` reports widths), breaking
 * at spaces; a single word wider than maxWidth gets a line of its own. The lines widget wraps with
 * CSS; this predicts how many rows that takes, so that the node makes room for them.
 */
export function wrapText(text, maxWidth, measure) {
  const lines = [];
  let line = "";
  for (const word of String(text).split(/\s+/).filter(Boolean)) {
    const candidate = line ? `${line} ${word}` : word;
    if (line && measure(candidate) > maxWidth) {
      lines.push(line);
      line = word;
    } else {
      line = candidate;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** Rows that `lines` ([{text}]) take when each is wrapped to `maxWidth`. */
export function wrappedRows(lines, maxWidth, measure) {
  return lines.reduce((rows, line) => rows + Math.max(1, wrapText(line.text, maxWidth, measure).length), 0);
}

/** What the WaveSpeed node shows, in order: [{text, color}] (key line, size warning, hint). */
export function wavespeedLines(status) {
  const lines = [{ text: status.badge.text, color: status.badgeColor }];
  if (status.warning) lines.push({ text: status.warning, color: status.warningColor });
  lines.push({ text: status.hint, color: HINT_COLOR });
  return lines;
}

/** Colour of a node's result lines. */
export const RESULT_COLOR = "#d8d8d8";

/**
 * The result lines of one of our nodes from its UI output (what the server answered for the
 * node's last run, which the frontend keeps after the job): `output.text`, a string or a list of
 * strings, one line each. [] when there is none.
 */
export function resultLines(output) {
  const text = output && typeof output === "object" ? output.text : undefined;
  const parts = Array.isArray(text) ? text : text === undefined || text === null ? [] : [text];
  return parts
    .filter((part) => typeof part === "string")
    .flatMap((part) => part.split("\n"))
    .filter((line) => line.trim())
    .map((line) => ({ text: line, color: RESULT_COLOR }));
}

/** Whether a node type is one of this pack's (their names share the prefix; new nodes included). */
export function isOurNodeType(name) {
  return typeof name === "string" && name.startsWith("HunyuanCustom");
}

/**
 * The sampler's `cache` widget value after loading a workflow saved before it existed: ComfyUI fills
 * widgets by position, so the older deep_cache switch's true/false lands here (the server maps it the
 * same way, nodes/sampler.py legacy_cache). Any other value is returned unchanged.
 */
export function legacyCacheValue(value) {
  if (value === true || value === "true") return "deepcache";
  if (value === false || value === "false") return "off";
  return value;
}

/**
 * The frontend gives an `audio_upload` combo its upload button (an "upload" input added to the
 * node's definition) but its audio player ("audioUI", which the button needs) only to core audio
 * nodes, listed by class name. For our Load Audio node add the player the same way, before the
 * button, because widgets are made in that order and the button looks the player up. Changes
 * `required` in place (as the frontend's own extensions do) and returns it.
 */
export function addAudioPlayer(required) {
  if (!required || required.audioUI || required.audio?.[1]?.audio_upload !== true) return required;
  const upload = required.upload;
  delete required.upload;
  required.audioUI = ["AUDIO_UI", {}];
  if (upload) required.upload = upload;
  return required;
}

/** Colour of a problem line (a refused queue or a failed run), and of a cancelled run's line. */
export const PROBLEM_COLOR = "#ff6b6b";
export const CANCELLED_COLOR = "#ffb74d";
const PROBLEM_MAX_LINES = 12;

/**
 * The lines a node shows for a problem found while it ran (an `execution_error` event's
 * exception_message): the pack's own words, one row per line of the message, at most 12.
 */
export function problemLines(message) {
  if (typeof message !== "string" || !message.trim()) return [];
  const rows = message.split("\n").map((row) => row.trim()).filter(Boolean);
  const shown = rows.slice(0, PROBLEM_MAX_LINES);
  if (rows.length > shown.length) shown.push("...");
  return shown.map((text) => ({ text, color: PROBLEM_COLOR }));
}

/**
 * The lines a node shows for its queue-time errors (one entry of /prompt's node_errors:
 * {errors: [{message, details, extra_info: {input_name}}]}): each error's details, which carry the
 * pack's words, or its message when there are none; "input: " before it when the details do not
 * name the input already. Duplicates (ComfyUI repeats one message per input) shown once.
 */
export function nodeErrorLines(entry) {
  const errors = Array.isArray(entry?.errors) ? entry.errors : [];
  const seen = new Set();
  const lines = [];
  for (const error of errors) {
    const details = typeof error?.details === "string" ? error.details.trim() : "";
    const input = error?.extra_info?.input_name;
    let text = details || String(error?.message ?? "").trim();
    // ComfyUI's own "input - message" form for a VALIDATE_INPUTS answer
    if (input && text.startsWith(`${input} - `)) text = text.slice(input.length + 3);
    if (input && !text.startsWith(`${input}:`) && !text.startsWith(`${input} `)) text = `${input}: ${text}`;
    if (!text || seen.has(text)) continue;
    seen.add(text);
    lines.push(...problemLines(text));
  }
  return lines;
}

/** The Model Loader's file inputs: the model folder each lists, and what to download when missing. */
export const LOADER_FOLDERS = Object.freeze({
  transformer: ["diffusion_models", "the transformer checkpoint (see the Note and README 'Model files')"],
  vae: ["vae", "the VAE (upstream vae_3d/hyvae_v1_0801/ or hunyuan_video_vae_bf16.safetensors)"],
  text_encoder: ["text_encoders", "LLaVA (upstream llava-llama-3-8b-v1_1/ or llava_llama3_fp16.safetensors)"],
  text_encoder_2: ["text_encoders", "CLIP-L (upstream openai_clip-vit-large-patch14/ or clip_l.safetensors)"],
  llava_vision: ["clip_vision", "llava_llama3_vision.safetensors"],
  audio_encoder: ["audio_encoders", "the folder openai/whisper-tiny from Hugging Face as whisper-tiny/"],
});

/**
 * Lines for a Model Loader whose picks are not in its lists (a template opened before the models
 * were downloaded): `picks` maps input name -> {value, options}. "auto" and "none" are always fine.
 */
export function missingModelLines(picks) {
  const lines = [];
  for (const [name, [folder, what]] of Object.entries(LOADER_FOLDERS)) {
    const pick = picks?.[name];
    if (!pick || typeof pick.value !== "string" || ["auto", "none", ""].includes(pick.value)) continue;
    const options = Array.isArray(pick.options) ? pick.options : [];
    if (options.includes(pick.value)) continue;
    lines.push({ text: `${name}: ${pick.value} is not in models/${folder}: download ${what} into ComfyUI/models/${folder}/, then press R`, color: PROBLEM_COLOR });
  }
  return lines;
}

function decoded(text) {
  try {
    return decodeURIComponent(text);
  } catch (error) {
    return text;
  }
}

/**
 * Whether a template card is one of OUR module's: its thumbnail is served from
 * /workflow_templates/<module>/ (1.58), or, while the thumbnail has no such address (1.27 shows it
 * from a blob: URL), `listing` (the /workflow_templates answer: module -> names) has its name under
 * our module and under no other.
 */
export function isOurCard(module, name, imageSources, listing) {
  if (!module) return false;
  const paths = (imageSources ?? []).map((src) => decoded(String(src ?? "")));
  if (paths.some((src) => src.includes(`/workflow_templates/${module}/`))) return true;
  if (paths.some((src) => src.includes("/workflow_templates/"))) return false;
  const owners = Object.entries(listing ?? {}).filter(([, names]) => Array.isArray(names) && names.includes(name));
  return owners.length === 1 && owners[0][0] === module;
}

/**
 * The description to show in place of the text of one of our template cards (or list rows) that the
 * frontend made its description, or null to leave it: only a text that repeats the template's own name
 * (1.27 describes a custom pack's card with its file name, "-" and "_" as spaces), only for a template
 * that web/template_cards.json describes.
 */
export function cardDescription(cards, name, text) {
  const description = cards?.descriptions?.[name];
  if (typeof description !== "string") return null;
  const shown = String(text ?? "").trim();
  return shown === name || shown === name.replace(/[-_]/g, " ").trim() ? description : null;
}

/** Whether a heading shows our install folder's name (1.27's heading of the pack's template page). */
export function isFolderHeading(module, text) {
  return Boolean(module) && String(text ?? "").trim() === module;
}

/** The zoom a template opens at when the frontend's own choice would draw nodes as blank boxes. */
export const READABLE_SCALE = 0.75;

/**
 * A readable view after a workflow with our nodes loads, or null to keep the frontend's.
 * 1.58 fits a template opened from the template browser to the viewport, ignoring its saved view;
 * for a graph of our size that is about 0.5, below the zoom under which the classic canvas draws
 * nodes as blank boxes (`threshold`: the canvas's level-of-detail limit). Then: READABLE_SCALE (or
 * just above the limit), each axis centred when the graph fits it, else its start in view.
 * `savedScale`: the workflow's own saved zoom (extra.ds.scale): a view the frontend restored from
 * the file is the user's and is kept. `bounds` [x, y, w, h] in graph units, `viewport` [w, h] in px.
 */
export function readableView({ scale, threshold, savedScale, bounds, viewport }) {
  if (!(threshold > 0) || !(scale < threshold)) return null;
  if (typeof savedScale === "number" && Math.abs(scale - savedScale) < 1e-3) return null;
  const target = Math.max(READABLE_SCALE, threshold * 1.1);
  if (target > 1.5) return null; // a level-of-detail limit this high is the user's own choice
  const margin = [0.06, 0.08]; // of the viewport: clear of the frontends' floating buttons
  const offset = [0, 1].map((axis) => {
    const start = bounds[axis], length = bounds[axis + 2], room = viewport[axis] / target;
    return length <= room ? (room - length) / 2 - start : room * margin[axis] - start;
  });
  return { scale: target, offset };
}
