// fastnst web page: plain JavaScript, no build step. Talks to the same server's /v1 API.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  model: null,
  models: {}, // name -> the model's card from /v1/models
  file: null,
  key: sessionStorage.getItem("fastnst-api-key") || "",
  originalUrl: null,
  resultUrl: null,
  busy: false,
  again: false, // settings changed while a request was running: run once more when it ends
};

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
  status.classList.remove("muted");
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.key) headers["X-API-Key"] = state.key;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    $("key-panel").hidden = false;
    throw new Error("This server needs an API key (enter it above).");
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.detail) detail = body.detail;
    } catch (_) { /* not JSON: keep the status line */ }
    const retry = response.headers.get("Retry-After");
    throw new Error(retry ? `${detail} (retry in ${retry} s)` : detail);
  }
  return response;
}

async function loadModels() {
  try {
    const { models } = await (await api("/v1/models")).json();
    renderStyles(models);
  } catch (error) {
    $("styles").replaceChildren();
    setStatus(error.message, true);
  }
}

function renderStyles(models) {
  const box = $("styles");
  box.replaceChildren();
  if (!models.length) {
    setStatus("No styles are loaded on this server yet.", true);
    return;
  }
  state.models = Object.fromEntries(models.map((model) => [model.name, model]));
  for (const model of models) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "style";
    button.dataset.model = model.name;
    button.setAttribute("role", "radio");
    button.setAttribute("aria-checked", "false");
    const img = document.createElement("img");
    img.alt = "";
    img.width = 96;
    img.height = 96;
    const label = document.createElement("span");
    label.textContent = (model.style && model.style.name ? model.style.name : model.name).replaceAll("_", " ");
    button.append(img, label);
    button.addEventListener("click", () => { selectModel(model.name); stylize(); });
    box.append(button);
    loadThumbnail(model.thumbnail, img);
  }
  selectModel(models[0].name);
}

async function loadThumbnail(url, img) {
  try {
    img.src = URL.createObjectURL(await (await api(url)).blob());
  } catch (_) { /* a missing preview is not worth an error message */ }
}

function selectModel(name) {
  state.model = name;
  for (const button of document.querySelectorAll(".style")) {
    button.setAttribute("aria-checked", String(button.dataset.model === name));
  }
  renderBlend((state.models[name] && state.models[name].styles) || []);
  updateButton();
}

// A multi-style model: two of its styles and the share of the second (0 % = the first style alone).
function renderBlend(styles) {
  $("blend").hidden = styles.length < 2;
  for (const [id, chosen] of [["style-a", 0], ["style-b", Math.min(1, styles.length - 1)]]) {
    $(id).replaceChildren(...styles.map((style, index) => {
      const option = new Option(style.name.replaceAll("_", " "), style.name);
      option.selected = index === chosen;
      return option;
    }));
  }
}

function styleParams() {
  if ($("blend").hidden) return {};
  const first = $("style-a").value;
  const second = $("style-b").value;
  const share = Number($("blend-amount").value) / 100;
  if (first === second || share === 0) return { style: first };
  if (share === 1) return { style: second };
  return { mix: `${first}=${(1 - share).toFixed(2)},${second}=${share.toFixed(2)}` };
}

function setFile(file) {
  if (!file) return;
  state.file = file;
  if (state.originalUrl) URL.revokeObjectURL(state.originalUrl);
  state.originalUrl = URL.createObjectURL(file);
  const original = $("original");
  original.src = state.originalUrl;
  original.hidden = false;
  $("drop-text").textContent = file.name || "photo";
  updateButton();
  stylize();
}

function updateButton() {
  $("go").disabled = state.busy || !state.model || !state.file;
}

function downloadName(response) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : "stylized.jpg";
}

async function stylize() {
  if (!state.model || !state.file) return;
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  updateButton();
  setStatus("Stylizing…");
  const params = new URLSearchParams({
    model: state.model,
    strength: String(Number($("strength").value) / 100),
    preserve_color: String($("preserve").checked),
    max_side: $("max-side").value,
    ...styleParams(),
  });
  const form = new FormData();
  form.append("file", state.file, state.file.name || "photo");
  const started = performance.now();
  try {
    const response = await api(`/v1/stylize?${params}`, { method: "POST", body: form });
    const blob = await response.blob();
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = URL.createObjectURL(blob);
    $("result").src = state.resultUrl;
    $("result-box").hidden = false;
    $("download").href = state.resultUrl;
    $("download").download = downloadName(response);
    setStatus(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    state.busy = false;
    updateButton();
    if (state.again) {
      state.again = false;
      stylize();
    }
  }
}

function wire() {
  $("file").addEventListener("change", (event) => setFile(event.target.files[0]));
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    setFile(event.dataTransfer.files[0]);
  });
  $("strength").addEventListener("input", () => { $("strength-value").textContent = `${$("strength").value}%`; });
  $("strength").addEventListener("change", stylize);
  $("preserve").addEventListener("change", stylize);
  $("max-side").addEventListener("change", stylize);
  $("blend-amount").addEventListener("input", () => {
    $("blend-value").textContent = `${$("blend-amount").value}%`;
  });
  for (const id of ["blend-amount", "style-a", "style-b"]) $(id).addEventListener("change", stylize);
  $("go").addEventListener("click", stylize);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("api-key").value.trim();
    sessionStorage.setItem("fastnst-api-key", state.key);
    $("key-panel").hidden = true;
    loadModels();
  });
}

wire();
loadModels();
