// The PixSearch page: one request at a time (Ask is disabled while it runs), errors shown as
// text, each search step in its own colour (mask tint + contour + crop box, legend), hits and
// evidence under their step, the answer streamed token by token then replaced by the final one.
"use strict";
const $ = (id) => document.getElementById(id);
const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42a5b5",
                 "#f032e6", "#9a6324"];
const colourOf = (i) => COLOURS[i % COLOURS.length];
let img = null, imgB64 = null, busy = false, controller = null, overlays = [];

function esc(t) { const d = document.createElement("div"); d.textContent = t ?? ""; return d.innerHTML; }

function showError(text) { const e = $("error"); e.textContent = text; e.hidden = false; }
function clearError() { $("error").hidden = true; $("error").textContent = ""; }

// an HTTP error answer as text: the server's {error, detail}, else the start of the body
async function httpError(resp) {
  const body = await resp.text();
  try {
    const j = JSON.parse(body);
    if (j && j.detail !== undefined) {
      const detail = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail);
      return `Error ${resp.status} (${j.error || resp.statusText}): ${detail}`;
    }
  } catch (_) { /* not JSON */ }
  return `Error ${resp.status}: ${body.slice(0, 300) || resp.statusText}`;
}

function setImage(dataUrl) {
  imgB64 = dataUrl.split(",")[1];
  img = new Image();
  img.onload = () => { overlays = []; draw(); };
  img.src = dataUrl;
}

function readAsDataUrl(blob) {
  return new Promise((ok, fail) => {
    const r = new FileReader();
    r.onload = () => ok(r.result); r.onerror = () => fail(r.error);
    r.readAsDataURL(blob);
  });
}

$("image").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  clearError();
  if (file.size === 0) { showError("The chosen file is empty."); return; }
  setImage(await readAsDataUrl(file));
});

// the image, then per step: mask tint, contour in the step's colour, crop box
function draw() {
  const c = $("canvas"), ctx = c.getContext("2d");
  if (!img) return;
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  ctx.drawImage(img, 0, 0);
  for (const o of overlays) {
    const [h, w] = o.rle.size, m = decodeRle(o.rle);
    const edge = contourOf(m, h, w, Math.max(1, Math.round(Math.max(h, w) / 300)));
    const off = document.createElement("canvas"); off.width = w; off.height = h;
    const octx = off.getContext("2d"), data = octx.createImageData(w, h);
    const rgb = [1, 3, 5].map((k) => parseInt(o.colour.slice(k, k + 2), 16));
    for (let x = 0; x < w; x++) for (let y = 0; y < h; y++) {
      const j = x * h + y;               // COCO RLE is column-major
      if (!m[j]) continue;
      const i = (y * w + x) * 4;
      data.data[i] = rgb[0]; data.data[i + 1] = rgb[1]; data.data[i + 2] = rgb[2];
      data.data[i + 3] = edge[j] ? 255 : 100;
    }
    octx.putImageData(data, 0, 0);
    ctx.drawImage(off, 0, 0, c.width, c.height);  // the mask may be at another resolution
    if (o.box) {
      const sx = c.width / w, sy = c.height / h, [x0, y0, x1, y1] = o.box;
      ctx.setLineDash([8, 5]); ctx.strokeStyle = o.colour; ctx.lineWidth = Math.max(2, c.width / 300);
      ctx.strokeRect(x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy); ctx.setLineDash([]);
    }
  }
  $("legend").innerHTML = overlays.map((o) =>
    `<li><span class="swatch" style="background:${o.colour}"></span>search ${o.index + 1}: region mask</li>`).join("");
}

function stepEl(index, modality) {
  let li = $("s" + index);
  if (!li) {
    li = document.createElement("li");
    li.id = "s" + index; li.className = "step"; li.style.borderColor = colourOf(index);
    li.innerHTML = `<span class="tag" style="color:${colourOf(index)}">search ${index + 1}: ${esc(modality)}</span> <span class="query"></span><div class="info"></div><div class="hits"></div><div class="evidence"></div>`;
    $("steps").appendChild(li);
  }
  return li;
}

function handle(ev, state) {
  switch (ev.type) {
    case "TokenEvent":
      $("display").textContent += ev.text;
      if (ev.control && ev.text === "<search>") state.inSearch = true;
      else if (ev.control && ev.text === "</search>") state.inSearch = false;
      else if (!ev.control && !state.inSearch) { state.answer += ev.text; $("answer").textContent = state.answer; }
      break;
    case "SearchStarted":
      stepEl(ev.index, ev.modality).querySelector(".query").textContent = ev.query_text || "";
      break;
    case "MaskEvent":
      overlays.push({ index: ev.index, rle: ev.mask_rle, box: ev.box, colour: colourOf(ev.index) });
      draw();
      stepEl(ev.index, "region").querySelector(".info").textContent =
        ev.box ? `crop box [${ev.box.join(", ")}]` : "empty mask";
      break;
    case "HitsEvent":
      stepEl(ev.index, "").querySelector(".hits").innerHTML = ev.hits.map((h, i) =>
        `<div class="hit"><span class="score">${h.score.toFixed(3)}</span>${i + 1}. <b>${esc(h.title)}</b><br>${esc(h.text.slice(0, 140))}</div>`).join("")
        || `<div class="hit">no hits</div>`;
      break;
    case "EvidenceEvent":
      $("display").textContent += "<information>" + ev.evidence.text + "</information>";
      stepEl(ev.index, "").querySelector(".evidence").innerHTML =
        `<details open><summary>evidence given to the model${ev.evidence.truncated ? " (truncated)" : ""}</summary><pre>${esc(ev.evidence.text)}</pre></details>`;
      break;
    case "SearchSkipped": {
      const li = stepEl(ev.step.index, ev.step.modality);
      li.classList.add("skipped");
      li.querySelector(".info").textContent = "skipped: " + ev.step.skipped;
      break;
    }
    case "SearchFailed": {   // the search ran and brought nothing: the answer will abstain
      const li = stepEl(ev.step.index, ev.step.modality);
      li.classList.add("skipped");
      li.querySelector(".info").textContent = "failed: " + ev.step.error;
      break;
    }
    case "DoneEvent": done(ev.answer); state.done = true; break;
    case "ErrorEvent":
      showError(`The answer failed (${ev.error}): ${ev.detail}`);
      $("status").textContent = "failed"; state.done = true; break;
  }
}

function done(answer) {
  const t = answer.trace;
  $("answer").textContent = answer.text || "(empty answer)";
  for (const s of t.steps) {  // failures the engine recorded (a search back-end down, …)
    const problem = s.skipped || s.error;
    if (problem && !$("s" + s.index)) stepEl(s.index, s.modality);
    if (problem) { $("s" + s.index).classList.add("skipped"); $("s" + s.index).querySelector(".info").textContent = (s.skipped ? "skipped: " : "failed: ") + problem; }
  }
  const conf = t.p_correct == null ? "" : `confidence ${t.p_correct.toFixed(2)}`;
  const wrote = t.raw_answer ? `; the model had written: "${t.raw_answer}"` : "";
  const why = t.failure ? `no answer: ${t.failure}${wrote}`
    : t.abstained ? `abstained (below threshold ${t.abstain_threshold?.toFixed(2)})${wrote}` : "";
  $("verdict").textContent = [conf, why].filter(Boolean).join(" — ");
  $("status").textContent = `${t.n_generated} tokens, ${t.steps.length} searches, ${(t.timings.total ?? 0).toFixed(2)} s`;
}

// the request body, or a message saying what to fix
function requestBody() {
  const question = $("question").value.trim();
  if (!question) return "Write a question first.";
  const body = { question };
  if (imgB64) body.image = imgB64;
  const budget = $("budget").value.trim();
  if (/^\d+$/.test(budget)) body.max_searches = Number(budget);
  else if (/^(unbounded|none|∞)$/i.test(budget)) body.max_searches = null;
  else if (budget !== "") return `Max searches must be a whole number (0 = no search) or empty for unbounded, not "${budget.slice(0, 20)}".`;
  const mods = [...document.querySelectorAll("#modalities input:checked")].map((i) => i.value);
  if (mods.length === 0) return "Allow at least one query type (or set Max searches to 0).";
  if (mods.length < 3) body.modalities = mods;
  return body;
}

async function ask() {
  if (busy) return;                        // one stream at a time
  clearError();
  const body = requestBody();
  if (typeof body === "string") { showError(body); return; }
  busy = true; $("ask").disabled = true; $("stop").disabled = false;
  $("answer").textContent = ""; $("verdict").textContent = ""; $("steps").innerHTML = "";
  $("display").textContent = ""; $("status").textContent = "thinking…";
  overlays = []; draw();
  controller = new AbortController();
  const state = { inSearch: false, answer: "", done: false };
  const headers = { "Content-Type": "application/json" };
  if ($("api-key").value) headers["X-API-Key"] = $("api-key").value;
  try {
    const resp = await fetch("/api/ask/stream", { method: "POST", headers,
      body: JSON.stringify(body), signal: controller.signal });
    if (!resp.ok) { showError(await httpError(resp)); $("status").textContent = ""; return; }
    const reader = resp.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {   // one SSE message: event/data lines
        const msg = buf.slice(0, cut); buf = buf.slice(cut + 2);
        const data = msg.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (data) handle(JSON.parse(data), state);
      }
    }
    if (!state.done) {
      showError("The connection ended before the answer was complete.");
      $("status").textContent = "";
    }
  } catch (e) {
    if (e.name === "AbortError") $("status").textContent = "stopped";
    else { showError(`The request failed: ${e.message}`); $("status").textContent = ""; }
  } finally {
    busy = false; controller = null; $("ask").disabled = false; $("stop").disabled = true;
  }
}

$("f").addEventListener("submit", (e) => { e.preventDefault(); ask(); });
$("stop").addEventListener("click", () => controller && controller.abort());

async function loadSamples() {
  const resp = await fetch("/api/samples");
  if (!resp.ok) return;
  const samples = await resp.json();
  if (!samples.length) return;
  $("sample-list").innerHTML = samples.map((s) =>
    `<button type="button" class="sample" data-i="${s.id}"><img src="${esc(s.image)}" alt=""><span>${esc(s.question)}</span></button>`).join("");
  for (const b of document.querySelectorAll(".sample")) {
    b.addEventListener("click", async () => {
      if (busy) return;
      const s = samples[Number(b.dataset.i)];
      clearError();
      const r = await fetch(s.image);
      if (!r.ok) { showError(await httpError(r)); return; }
      setImage(await readAsDataUrl(await r.blob()));
      $("image").value = ""; $("question").value = s.question;
    });
  }
  $("samples").hidden = false;
}

async function loadHealth() {
  try {
    const h = await (await fetch("/api/health")).json();
    if (h.auth) $("key-row").hidden = false;
    if (!h.model_loaded) $("status").textContent = h.model_error ? "model failed to load: " + h.model_error : "model loading…";
  } catch (e) { showError(`The server is not answering: ${e.message}`); }
}

loadHealth(); loadSamples();
