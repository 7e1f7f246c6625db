// pixlink's page: everything it does goes through the public API (/v1/...). No build step, no CDN.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = {
  imageId: null, width: 0, height: 0, mode: "click", points: [], labels: [], box: null, drag: null,
  painting: false, paint: null, tab: "link", busy: 0, seq: 0, thumbs: new Map(),
};

// ------------------------------------------------------------------------------------------
// API
// ------------------------------------------------------------------------------------------
function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = $("#apikey").value.trim();
  if (key) h["X-API-Key"] = key;
  return h;
}

async function api(path, opts) {
  const o = Object.assign({}, opts || {});
  o.headers = headers(o.headers);
  const r = await fetch(path, o);
  const ctype = r.headers.get("content-type") || "";
  const body = ctype.includes("json") ? await r.json() : await r.blob();
  if (!r.ok) {
    const msg = body && body.message ? body.message : `HTTP ${r.status}`;
    const err = new Error(msg);
    err.code = body && body.code;
    err.status = r.status;
    throw err;
  }
  return body;
}

function working(on) {
  state.busy += on ? 1 : -1;
  const busy = state.busy > 0;
  $("#working").hidden = !busy;
  $("#answer").setAttribute("aria-busy", busy ? "true" : "false");
  document.body.classList.toggle("busy", busy);
}

function showError(e) {
  const el = $("#error");
  if (!e) { el.hidden = true; el.textContent = ""; return; }
  el.hidden = false;
  el.textContent = e.message || String(e);
}

async function waitReady() {
  for (;;) {
    try {
      const r = await fetch("/ready");
      const b = await r.json();
      if (r.ok) {
        $("#status").textContent = `ready · KB ${b.kb.name} (${b.kb.entities} entities)`;
        return b;
      }
      $("#status").textContent = b.code === "E728" ? b.message : "loading models…";
    } catch (e) {
      $("#status").textContent = "server not reachable";
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
}

// ------------------------------------------------------------------------------------------
// image
// ------------------------------------------------------------------------------------------
async function openFile(file) {
  if (!file) return;
  showError(null);
  working(true);
  try {
    const info = await api("/v1/images", { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    state.imageId = info.id; state.width = info.width; state.height = info.height;
    const url = URL.createObjectURL(file);
    const img = new Image();
    await new Promise((res, rej) => { img.onload = res; img.onerror = () => rej(new Error("the browser cannot show this image")); img.src = url; });
    for (const c of [$("#img"), $("#overlay")]) { c.width = info.width; c.height = info.height; }
    $("#img").getContext("2d").drawImage(img, 0, 0, info.width, info.height);
    $("#drop").hidden = true; $("#canvas-wrap").hidden = false;
    document.body.dataset.image = info.id;
    clearPrompt();
    $("#overlay").focus();
  } catch (e) { showError(e); } finally { working(false); }
}

// ------------------------------------------------------------------------------------------
// COCO RLE (compressed counts) <-> masks, as pycocotools
// ------------------------------------------------------------------------------------------
function rleCounts(s) {
  const cnts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20; p++; k++;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (cnts.length > 2) x += cnts[cnts.length - 2];
    cnts.push(x);
  }
  return cnts;
}

function drawMask(ctx, rle, rgba) {
  const [h, w] = rle.size;
  const counts = typeof rle.counts === "string" ? rleCounts(rle.counts) : rle.counts;
  const img = ctx.createImageData(w, h);
  let idx = 0, on = false;
  for (const n of counts) {
    if (on) {
      for (let i = idx; i < idx + n; i++) {
        const x = Math.floor(i / h), y = i % h, o = 4 * (y * w + x);
        img.data[o] = rgba[0]; img.data[o + 1] = rgba[1]; img.data[o + 2] = rgba[2]; img.data[o + 3] = rgba[3];
      }
    }
    idx += n; on = !on;
  }
  const tmp = document.createElement("canvas");
  tmp.width = w; tmp.height = h;
  tmp.getContext("2d").putImageData(img, 0, 0);
  ctx.drawImage(tmp, 0, 0);
}

function paintedRle() {
  // the painted mask (alpha > 0) as uncompressed COCO RLE (column-major run lengths)
  const w = state.width, h = state.height;
  const data = state.paint.getContext("2d").getImageData(0, 0, w, h).data;
  const counts = [];
  let cur = 0, run = 0, any = false;
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) {
      const v = data[4 * (y * w + x) + 3] > 0 ? 1 : 0;
      if (v) any = true;
      if (v !== cur) { counts.push(run); run = 0; cur = v; }
      run++;
    }
  }
  counts.push(run);
  return any ? { size: [h, w], counts } : null;
}

// ------------------------------------------------------------------------------------------
// prompts
// ------------------------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  document.querySelectorAll("#tools [data-mode]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === mode)));
  $("#send-mask").hidden = mode !== "mask";
  clearPrompt();
}

function clearPrompt() {
  state.points = []; state.labels = []; state.box = null; state.drag = null;
  state.paint = document.createElement("canvas");
  state.paint.width = state.width || 1; state.paint.height = state.height || 1;
  redraw(null);
}

function toImage(ev) {
  const c = $("#overlay"), r = c.getBoundingClientRect();
  return [(ev.clientX - r.left) * c.width / r.width, (ev.clientY - r.top) * c.height / r.height];
}

function redraw(answer) {
  const c = $("#overlay"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (answer && answer.region && answer.region.mask) drawMask(ctx, answer.region.mask, [30, 111, 217, 110]);
  ctx.globalAlpha = 0.45; ctx.drawImage(state.paint, 0, 0); ctx.globalAlpha = 1;
  const r = Math.max(4, c.width / 150);
  state.points.forEach(([x, y], i) => {
    ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fillStyle = state.labels[i] ? "#1ec95b" : "#d3342b"; ctx.fill();
    ctx.lineWidth = r / 3; ctx.strokeStyle = "#fff"; ctx.stroke();
  });
  const b = state.drag || state.box;
  if (b) { ctx.lineWidth = Math.max(2, c.width / 400); ctx.strokeStyle = "#f5a623"; ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]); }
}

async function sendLink(prompt) {
  if (!state.imageId) return;
  const seq = ++state.seq;
  showError(null);
  working(true);
  const body = { image_id: state.imageId, prompt, k: 5 };
  const caption = $("#caption").value.trim();
  if (caption) body.text = caption;
  try {
    const ans = await api("/v1/link", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    if (seq === state.seq) showAnswer(ans);  // an older answer never replaces a newer one
  } catch (e) {
    if (e.code === "E721") { showError(new Error(e.message + " (drop the image again)")); } else { showError(e); }
  } finally { working(false); }
}

// ------------------------------------------------------------------------------------------
// answers
// ------------------------------------------------------------------------------------------
async function thumbnail(url) {
  if (!url) return null;
  if (state.thumbs.has(url)) return state.thumbs.get(url);
  const p = api(url).then((blob) => URL.createObjectURL(blob)).catch(() => null);
  state.thumbs.set(url, p);
  return p;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function card(c, i, top) {
  const li = el("li", "card" + (i === 0 && top ? " top" : ""));
  li.dataset.entity = c.id;
  const pic = el("img");
  pic.alt = c.label || c.id;
  li.append(pic);
  thumbnail(c.thumbnail).then((u) => { if (u) pic.src = u; else pic.replaceWith(el("div", "noimg")); });
  const body = el("div");
  const head = el("div");
  head.append(el("span", "label", c.label || c.id), el("span", "id", c.id));
  const score = el("div", "score", `score ${c.score.toFixed(3)}`);
  const sigs = el("div");
  for (const [name, v] of Object.entries(c.signals || {})) {
    const s = el("span", "sig" + (v >= 0.5 ? " agree" : ""), `${name} ${Number(v).toFixed(2)}`);
    s.title = `${name}: raw score ${v}`;
    sigs.append(s);
  }
  body.append(head, el("div", "desc", c.description || ""), score, sigs);
  li.append(body);
  return li;
}

function showAnswer(ans) {
  redraw(ans);
  const nil = $("#nil");
  nil.hidden = !ans.nil;
  nil.textContent = ans.nil
    ? `NIL — not in the KB: the best score ${ans.top_score.toFixed(3)} is below the threshold ${Number(ans.nil_threshold).toFixed(3)}`
    : "";
  const cards = $("#cards");
  cards.replaceChildren(...ans.candidates.map((c, i) => card(c, i, !ans.nil)));
  $("#raw").textContent = JSON.stringify({ backends: ans.backends, signals: ans.signals, notes: ans.notes, timings: ans.timings, kb: ans.kb }, null, 1);
  document.body.dataset.answered = String(state.seq);
}

const COLOURS = ["#1e6fd9", "#d3342b", "#1ec95b", "#f5a623", "#8e44ad", "#16a085"];

function showGmner(res) {
  const c = $("#overlay"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const list = $("#entities");
  list.replaceChildren();
  res.entities.forEach((e, i) => {
    const col = COLOURS[i % COLOURS.length];
    if (e.region) {
      if (e.region.mask) {
        const rgb = col.match(/\w\w/g).map((h) => parseInt(h, 16));
        drawMask(ctx, e.region.mask, [rgb[0], rgb[1], rgb[2], 90]);
      }
      const b = e.region.box;
      ctx.lineWidth = Math.max(2, c.width / 300); ctx.strokeStyle = col; ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    }
    const li = el("li", "ent");
    li.style.setProperty("--c", col);
    const top = e.link && !e.link.nil && e.link.candidates.length ? e.link.candidates[0] : null;
    li.append(el("div", "label", `${e.text} (${e.type})`),
      el("div", "desc", e.groundable ? "in the image" : (e.groundable === false ? "not in the image" : "image not checked")),
      el("div", "desc", top ? `→ ${top.label} (${top.id}), score ${top.score.toFixed(3)}` : (e.link ? "→ NIL (not in the KB)" : "")));
    list.append(li);
  });
  if (!res.entities.length) list.append(el("li", "ent", "no named entity found"));
  $("#raw").textContent = JSON.stringify({ backends: res.backends, notes: res.notes, timings: res.timings }, null, 1);
}

async function runGmner() {
  const text = $("#post").value.trim();
  if (!text) { showError(new Error("write the post's text first")); return; }
  showError(null);
  working(true);
  try {
    const body = { text };
    if (state.imageId) body.image_id = state.imageId;
    showGmner(await api("/v1/gmner", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } }));
  } catch (e) { showError(e); } finally { working(false); }
}

function setTab(tab) {
  state.tab = tab;
  document.querySelectorAll("nav [data-tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === tab)));
  document.querySelectorAll(".linkonly").forEach((e) => { e.hidden = tab !== "link"; });
  document.querySelectorAll(".gmneronly").forEach((e) => { e.hidden = tab !== "gmner"; });
  $("#cards").hidden = tab !== "link"; $("#nil").hidden = true; $("#entities").hidden = tab !== "gmner";
  clearPrompt();
}

// ------------------------------------------------------------------------------------------
// events
// ------------------------------------------------------------------------------------------
function wire() {
  const key = localStorage.getItem("pixlink-api-key");
  if (key) $("#apikey").value = key;
  $("#apikey").addEventListener("change", () => localStorage.setItem("pixlink-api-key", $("#apikey").value.trim()));
  $("#file").addEventListener("change", (e) => openFile(e.target.files[0]));
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); openFile(e.dataTransfer.files[0]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("#file").click(); });
  document.querySelectorAll("#tools [data-mode]").forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
  document.querySelectorAll("nav [data-tab]").forEach((b) => b.addEventListener("click", () => setTab(b.dataset.tab)));
  $("#clear").addEventListener("click", clearPrompt);
  $("#send-mask").addEventListener("click", sendMask);
  $("#run-gmner").addEventListener("click", runGmner);

  const ov = $("#overlay");
  ov.addEventListener("contextmenu", (e) => e.preventDefault());
  ov.addEventListener("pointerdown", (e) => {
    if (state.tab !== "link") return;
    const [x, y] = toImage(e);
    if (state.mode === "box") { state.drag = [x, y, x, y]; ov.setPointerCapture(e.pointerId); }
    if (state.mode === "mask") { state.painting = true; paintAt(x, y, e.button === 2 || e.shiftKey); ov.setPointerCapture(e.pointerId); }
  });
  ov.addEventListener("pointermove", (e) => {
    const [x, y] = toImage(e);
    if (state.drag) { state.drag[2] = x; state.drag[3] = y; redraw(null); }
    if (state.painting) paintAt(x, y, e.buttons === 2 || e.shiftKey);
  });
  ov.addEventListener("pointerup", (e) => {
    if (state.tab !== "link") return;
    const [x, y] = toImage(e);
    if (state.mode === "click") {
      state.points.push([x, y]); state.labels.push(e.button === 2 || e.shiftKey ? 0 : 1);
      redraw(null);
      sendLink({ points: state.points, labels: state.labels });
    } else if (state.mode === "box" && state.drag) {
      const d = state.drag; state.drag = null;
      const b = [Math.min(d[0], d[2]), Math.min(d[1], d[3]), Math.max(d[0], d[2]), Math.max(d[1], d[3])];
      if (b[2] - b[0] < 3 || b[3] - b[1] < 3) { redraw(null); return; }
      state.box = b; redraw(null);
      sendLink({ box: b });
    } else if (state.mode === "mask") { state.painting = false; }
  });
  document.addEventListener("keydown", (e) => {
    const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (e.key === "Enter" && e.ctrlKey && state.tab === "gmner") { runGmner(); return; }
    if (typing) return;
    const k = e.key.toLowerCase();
    if (k === "escape") clearPrompt();
    else if (k === "c") setMode("click");
    else if (k === "b") setMode("box");
    else if (k === "m") setMode("mask");
    else if (k === "l") setTab("link");
    else if (k === "g") setTab("gmner");
    else if (k === "enter" && state.mode === "mask") sendMask();
  });
}

function paintAt(x, y, erase) {
  const ctx = state.paint.getContext("2d");
  const r = Number($("#brush").value) * state.width / Math.max(1, $("#overlay").getBoundingClientRect().width);
  ctx.globalCompositeOperation = erase ? "destination-out" : "source-over";
  ctx.fillStyle = "#1ec95b";
  ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill();
  redraw(null);
}

function sendMask() {
  const rle = paintedRle();
  if (!rle) { showError(new Error("paint the region first")); return; }
  sendLink({ mask: rle });
}

wire();
waitReady();
