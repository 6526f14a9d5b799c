// Run with: node --test web/tests/
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  addAudioPlayer,
  REMOTE_SIZES, WAVESPEED_FIXED, KEY_STATUS_ROUTE, parseSize, isRemoteSize, remoteModelFor, keyBadge,
  wavespeedHint, sizeWarning, wavespeedNodeStatus, BADGE_COLORS, HINT_COLOR, wrapText, wrappedRows, wavespeedLines,
  RESULT_COLOR, resultLines, isOurNodeType,
  legacyCacheValue, cardDescription, isOurCard, isFolderHeading, readableView, READABLE_SCALE,
} from "../hyc_logic.js";

test("parseSize reads W*H and rejects everything else", () => {
  assert.deepEqual(parseSize("1280*720"), { width: 1280, height: 720 });
  assert.deepEqual(parseSize(" 832 x 480 "), { width: 832, height: 480 });
  assert.deepEqual(parseSize("480X832"), { width: 480, height: 832 });
  for (const bad of ["", "1280", "1280*", "*720", "a*b", "0*720", "-1*720", "1280*720*1", null, undefined, 1280]) {
    assert.equal(parseSize(bad), null, String(bad));
  }
});

test("only WaveSpeed's four sizes are remote-OK", () => {
  for (const size of REMOTE_SIZES) assert.ok(isRemoteSize(size), size);
  assert.ok(isRemoteSize("1280x720"));
  for (const size of ["960*544", "544*960", "1920*1080", "720*720", "nonsense"]) assert.ok(!isRemoteSize(size), size);
  assert.equal(remoteModelFor("1280*720"), "720p");
  assert.equal(remoteModelFor("720*1280"), "720p");
  assert.equal(remoteModelFor("832*480"), "480p");
  assert.equal(remoteModelFor("480*832"), "480p");
  assert.equal(remoteModelFor("960*544"), null);
});

test("badge text follows the route answer and never shows a key", () => {
  assert.deepEqual(keyBadge({ configured: true }), { text: "WaveSpeed key: set", state: "ok" });
  assert.equal(keyBadge({ configured: false }).state, "missing");
  assert.match(keyBadge({ configured: false }).text, /WAVESPEED_API_KEY/);
  for (const bad of [null, undefined, new Error("offline"), {}, { configured: "yes" }, "true"]) {
    assert.equal(keyBadge(bad).state, "unknown");
  }
  // Even if a server wrongly sent more, the badge only says yes/no.
  const leaky = keyBadge({ configured: true, api_key: "wsk-SECRET" });
  assert.ok(!leaky.text.includes("wsk-SECRET"));
  for (const state of ["ok", "missing", "unknown"]) assert.ok(BADGE_COLORS[state]);
});

test("hint names what WaveSpeed fixes and its sizes", () => {
  assert.deepEqual({ ...WAVESPEED_FIXED }, { num_frames: 129, steps: 30, fps: 25 });
  const hint = wavespeedHint();
  for (const part of ["129 frames", "30 steps", "25 fps", ...REMOTE_SIZES]) assert.ok(hint.includes(part), part);
  assert.equal(sizeWarning("832*480"), null);
  assert.match(sizeWarning("960*544"), /960\*544.*local-only/);
});

test("node status combines badge, colours and size warning", () => {
  const fine = wavespeedNodeStatus({ configured: true }, "1280*720");
  assert.equal(fine.badge.state, "ok");
  assert.equal(fine.badgeColor, BADGE_COLORS.ok);
  assert.equal(fine.warning, null);
  const bad = wavespeedNodeStatus(null, "544*960");
  assert.equal(bad.badge.state, "unknown");
  assert.ok(bad.warning && bad.warningColor === BADGE_COLORS.error);
  assert.equal(KEY_STATUS_ROUTE, "/hunyuan_custom/wavespeed_key_status");
});

// One unit per character: easy widths to reason about.
const charWidth = (text) => text.length;

test("wrapText keeps every line within the width and loses no word", () => {
  const text = "size 960*544 is local-only: WaveSpeed renders 1280*720, 720*1280, 832*480, 480*832";
  for (const width of [10, 25, 40, 200]) {
    const lines = wrapText(text, width, charWidth);
    assert.equal(lines.join(" "), text, String(width));
    for (const line of lines) assert.ok(line.length <= width || !line.includes(" "), `${width}: ${line}`);
  }
  assert.deepEqual(wrapText("a b c", 3, charWidth), ["a b", "c"]);
  assert.deepEqual(wrapText("averyveryverylongword x", 5, charWidth), ["averyveryverylongword", "x"]);
  assert.deepEqual(wrapText("", 10, charWidth), []);
});

test("lines of the WaveSpeed node: key line first, then the size warning, then the hint", () => {
  const ok = wavespeedLines(wavespeedNodeStatus({ configured: true }, "1280*720"));
  assert.deepEqual(ok, [{ text: "WaveSpeed key: set", color: BADGE_COLORS.ok }, { text: wavespeedHint(), color: HINT_COLOR }]);
  const bad = wavespeedLines(wavespeedNodeStatus({ configured: false }, "960*544"));
  assert.deepEqual(bad.map((l) => l.color), [BADGE_COLORS.missing, BADGE_COLORS.error, HINT_COLOR]);
  assert.match(bad[1].text, /960\*544 is local-only/);
});

test("wrappedRows counts the rows the lines take at a width", () => {
  const lines = [{ text: "a b c" }, { text: "" }, { text: "averyveryverylongword x" }];
  assert.equal(wrappedRows(lines, 100, charWidth), 3); // an empty line still takes a row
  assert.equal(wrappedRows(lines, 3, charWidth), 2 + 1 + 2);
  assert.equal(wrappedRows([], 10, charWidth), 0);
});

test("result lines come from the node's UI output text, one per line, nothing else", () => {
  assert.deepEqual(resultLines({ text: ["129 frames, 1280*720, 25 fps", "seed 5488044736"] }).map((l) => l.text),
    ["129 frames, 1280*720, 25 fps", "seed 5488044736"]);
  assert.deepEqual(resultLines({ text: "saved a.mp4\nin output/x" }).map((l) => l.text), ["saved a.mp4", "in output/x"]);
  assert.ok(resultLines({ text: ["x"] }).every((l) => l.color === RESULT_COLOR));
  for (const none of [null, undefined, {}, { images: [{ filename: "a.mp4" }] }, { text: [] }, { text: [3, null, " "] }, "text"]) {
    assert.deepEqual(resultLines(none), [], JSON.stringify(none));
  }
});

test("every node of the pack gets result lines, others not", () => {
  for (const name of ["HunyuanCustomSampler", "HunyuanCustomSaveVideo", "HunyuanCustomWaveSpeed", "HunyuanCustomAudio"]) {
    assert.ok(isOurNodeType(name), name);
  }
  for (const name of ["SaveVideo", "PreviewAny", "", undefined, null]) assert.ok(!isOurNodeType(name), String(name));
});

test("an old workflow's deep_cache true/false shows as the cache it means", () => {
  assert.equal(legacyCacheValue(true), "deepcache");
  assert.equal(legacyCacheValue(false), "off");
  assert.equal(legacyCacheValue("true"), "deepcache");
  for (const value of ["teacache", "off", "deepcache", undefined]) assert.equal(legacyCacheValue(value), value);
});

test("our Load Audio gets core Load Audio's player, placed before the upload button", () => {
  const required = { audio: [["song.mp3"], { audio_upload: true }], upload: ["AUDIOUPLOAD", {}] };
  assert.equal(addAudioPlayer(required), required); // changed in place, as the frontend's extensions do
  assert.deepEqual(Object.keys(required), ["audio", "audioUI", "upload"]);
  assert.deepEqual(required.audioUI, ["AUDIO_UI", {}]);
  const later = { audio: [["a.wav"], { audio_upload: true }] }; // the button's extension not run yet
  assert.deepEqual(Object.keys(addAudioPlayer(later)), ["audio", "audioUI"]);
  const twice = addAudioPlayer(addAudioPlayer({ audio: [[], { audio_upload: true }], upload: ["AUDIOUPLOAD", {}] }));
  assert.deepEqual(Object.keys(twice), ["audio", "audioUI", "upload"]);
  for (const other of [{ audio: [[], {}] }, { image: [[], { image_upload: true }] }, undefined]) {
    assert.deepEqual(addAudioPlayer(other), other);
  }
});

import { problemLines, nodeErrorLines, PROBLEM_COLOR } from "../hyc_logic.js";

test("a run's error shows the pack's own words, line by line, capped", () => {
  const lines = problemLines("WaveSpeed: not enough credits.\nTop up at wavespeed.ai, then queue again.\n");
  assert.deepEqual(lines.map((l) => l.text), ["WaveSpeed: not enough credits.", "Top up at wavespeed.ai, then queue again."]);
  assert.ok(lines.every((l) => l.color === PROBLEM_COLOR));
  assert.deepEqual(problemLines(""), []);
  assert.deepEqual(problemLines(undefined), []);
  assert.equal(problemLines(Array.from({ length: 30 }, (_, i) => `row ${i}`).join("\n")).length, 13);
});

test("queue-time errors name the input once, without ComfyUI's repetitions", () => {
  const entry = {
    errors: [
      { message: "Custom validation failed for node", details: "size - '50*64' is not valid: W*H", extra_info: { input_name: "size" } },
      { message: "Custom validation failed for node", details: "transformer: t.pt holds a VAE.", extra_info: { input_name: "transformer" } },
      { message: "Custom validation failed for node", details: "transformer: t.pt holds a VAE.", extra_info: { input_name: "transformer" } },
      { message: "Value not in list", details: "", extra_info: { input_name: "dtype" } },
    ],
  };
  assert.deepEqual(nodeErrorLines(entry).map((l) => l.text), [
    "size: '50*64' is not valid: W*H", "transformer: t.pt holds a VAE.", "dtype: Value not in list"]);
  assert.deepEqual(nodeErrorLines(null), []);
});

import { missingModelLines } from "../hyc_logic.js";

test("a loader pick missing from its folder is said when the workflow opens", () => {
  const lines = missingModelLines({
    transformer: { value: "hunyuancustom_audio_720P/mp_rank_00_model_states.pt", options: ["hunyuancustom_audio_720P/mp_rank_00_model_states.pt"] },
    audio_encoder: { value: "whisper-tiny/", options: ["none"] },
    llava_vision: { value: "auto", options: ["auto"] },
  });
  assert.equal(lines.length, 1);
  assert.match(lines[0].text, /^audio_encoder: whisper-tiny\/ is not in models\/audio_encoders: download .*whisper-tiny/);
  assert.deepEqual(missingModelLines({ audio_encoder: { value: "none", options: ["none"] } }), []);
});

test("a template card's repeated name is replaced by its description", () => {
  const cards = { category: "HunyuanCustom", descriptions: { "Singing avatar": "The subject sings", "a_b": "Under" } };
  assert.equal(cardDescription(cards, "Singing avatar", " Singing avatar "), "The subject sings");
  assert.equal(cardDescription(cards, "a_b", "a b"), "Under");
  assert.equal(cardDescription(cards, "Singing avatar", "Something the frontend wrote"), null);
  assert.equal(cardDescription(cards, "Unknown", "Unknown"), null);
});

test("a card is ours by its thumbnail's address, else by a name no other pack lists", () => {
  const module = "comfyui-hunyuancustom";
  const listing = { [module]: ["Singing avatar", "Local 720p"], "other-pack": ["Local 720p"] };
  const ours = (name, images) => isOurCard(module, name, images, listing);
  assert.equal(ours("Local 720p", ["/api/workflow_templates/comfyui-hunyuancustom/Local%20720p.jpg"]), true);
  assert.equal(ours("Singing avatar", ["/api/workflow_templates/other-pack/Singing%20avatar.jpg"]), false);
  assert.equal(ours("Singing avatar", ["blob:http://127.0.0.1:8188/1f0e"]), true, "1.27's thumbnail: by the listing");
  assert.equal(ours("Singing avatar", [null]), true, "not loaded yet");
  assert.equal(ours("Local 720p", ["blob:x"]), false, "another pack has a template of that name");
  assert.equal(ours("Unknown", []), false);
  assert.equal(isOurCard("", "Singing avatar", [], listing), false);
  assert.equal(ours("Singing avatar", ["/api/workflow_templates/comfyui-hunyuancustom/%E0%A4%A.jpg"]), true,
    "a malformed escape does not throw");
});

test("only a heading that is exactly our install folder's name is ours", () => {
  assert.equal(isFolderHeading("comfyui-hunyuancustom", " comfyui-hunyuancustom "), true);
  assert.equal(isFolderHeading("comfyui-hunyuancustom", "comfyui-hunyuancustom templates"), false);
  assert.equal(isFolderHeading("", ""), false);
});

test("a template fitted below the level-of-detail limit opens readable instead", () => {
  const bounds = [100, 50, 3000, 700];
  const view = readableView({ scale: 0.5, threshold: 8 / 14, savedScale: 0.8, bounds, viewport: [1600, 900] });
  assert.equal(view.scale, READABLE_SCALE);
  // screen = (graph + offset) * scale: the graph's left edge a little inside the window (too wide to
  // fit), its height (700 units = 525 px) centred.
  const screen = (axis, at) => (at + view.offset[axis]) * view.scale;
  assert.ok(screen(0, 100) > 0 && screen(0, 100) < 100);
  assert.ok(Math.abs(screen(1, 50) - (900 - 525) / 2) < 1e-9);
  assert.equal(readableView({ scale: 0.6, threshold: 8 / 14, savedScale: 0.8, bounds, viewport: [1600, 900] }), null, "readable already");
  assert.equal(readableView({ scale: 0.5, threshold: 8 / 14, savedScale: 0.5, bounds, viewport: [1600, 900] }), null, "the file's own view");
  assert.equal(readableView({ scale: 0.5, threshold: 0, bounds, viewport: [1600, 900] }), null, "level of detail switched off");
  assert.equal(readableView({ scale: 0.5, threshold: 2, bounds, viewport: [1600, 900] }), null, "the user's high limit");
  assert.equal(readableView({ scale: 0.5, threshold: 0.8, bounds, viewport: [1600, 900] }).scale, 0.8 * 1.1);
});
