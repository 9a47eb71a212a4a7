// The live job page: stage progress polled from the detail API, the log from the
// paginated API (newest first, older pages on demand) and live lines from the SSE stream.
(() => {
  "use strict";
  const root = document.getElementById("job-page");
  if (!root) return;
  const jobId = root.dataset.jobId;
  const api = `/api/jobs/${jobId}/`;
  const PAGE = 200; // lines per request for older pages
  // Cursors (`line.cursor`, `newer_cursor`, `older_cursor`) are opaque strings: never parsed.
  const MAX_LINES = 3000; // DOM cap: the oldest rendered lines are dropped past this
  const POLL_MS = 1000;
  const LINKED_IMAGES = 20; // image links on one line about a batch (the server lists 20 too)
  const LABELS = { COMPLETED_WITH_ERRORS: "Completed with errors" }; // badge text, else the name

  const $ = (id) => document.getElementById(id);
  const logEl = $("log");
  const state = {
    final: root.dataset.final === "true",
    newest: null, // opaque cursor: the stream resumes after it
    older: null, // opaque cursor: `before` for the next older page, null when none
    paused: false,
    detached: false, // the user paged so far back that the newest lines were dropped
    source: null,
    pending: [], // live lines waiting for the next animation frame
    pendingAfter: null, // the cursor just before the first pending line
    generation: 0, // bumps on every filter change, so late responses are ignored
  };

  // ---- progress ------------------------------------------------------------------------
  function renderJob(job) {
    const status = $("job-status");
    status.textContent = LABELS[job.status] || job.status;
    status.dataset.status = job.status;
    status.className = `status status-${job.status.toLowerCase()}`;
    $("cancel-job").disabled = job.is_final;
    const failure = $("job-failure");
    failure.textContent = job.failure_reason;
    failure.hidden = !job.failure_reason;
    const imagesFailed = $("job-images-failed");
    imagesFailed.textContent = `${job.images.failed} of ${job.images.total} images failed`;
    imagesFailed.hidden = job.images.failed === 0;
    const services = job.processing_services || [];
    $("job-services").querySelector("span").textContent = services.join(", ");
    $("job-services").hidden = services.length === 0;
    for (const stage of job.stages) {
      const el = root.querySelector(`.stage[data-stage="${stage.key}"]`);
      if (!el) continue;
      el.querySelector(".stage-bar").value = stage.progress;
      el.querySelector(".stage-percent").textContent = `${Math.round(stage.progress * 100)}%`;
      el.querySelector(".stage-status").textContent = stage.status;
      for (const name of ["processed", "total", "failed", "detections", "classifications"]) {
        el.querySelector(`.c-${name}`).textContent = stage[name];
      }
    }
    state.final = job.is_final;
  }

  async function pollJob() {
    try {
      const response = await fetch(`${api}?logs_limit=0`, { credentials: "same-origin" });
      if (response.ok) renderJob(await response.json());
    } finally {
      if (!state.final) setTimeout(pollJob, POLL_MS);
    }
  }

  async function act(action) {
    const response = await fetch(`${api}${action}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": root.dataset.csrf },
    });
    const body = await response.json();
    if (action === "retry" && response.ok) window.location = `/jobs/${body.id}/`;
    else if (response.ok) renderJob(body);
    else setLogState(body.detail || `${action} failed`);
  }

  // ---- log -------------------------------------------------------------------------------
  function filterQuery() {
    const params = new URLSearchParams();
    const level = $("log-level").value;
    const q = $("log-search").value.trim();
    if (level) params.set("level", level);
    if (q) params.set("q", q);
    return params;
  }

  function lineNode(line) {
    const row = document.createElement("div");
    row.className = `line lvl-${Math.min(50, Math.floor(line.level / 10) * 10)}`;
    row.dataset.id = line.id;
    row.dataset.cursor = line.cursor;
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = line.created_at.slice(11, 23);
    ts.title = line.created_at;
    const lvl = document.createElement("span");
    lvl.className = "lvl";
    lvl.textContent = line.level_name;
    const msg = document.createElement("span");
    msg.className = "msg";
    msg.textContent = line.message;
    row.append(ts, lvl, msg);
    // A line about one image names it in image_id; a line about a batch lists image_ids.
    const context = line.context || {};
    const images = Array.isArray(context.image_ids) ? context.image_ids : [context.image_id];
    for (const image of images.filter(Number.isInteger).slice(0, LINKED_IMAGES)) {
      const link = document.createElement("a");
      link.className = "image-link";
      link.href = `/api/images/${image}/`;
      link.textContent = `image ${image}`;
      row.append(" ", link);
    }
    return row;
  }

  function setLogState(text) {
    $("log-state").textContent = text;
  }

  function trimOldest() {
    let dropped = false;
    while (logEl.childElementCount > MAX_LINES) {
      logEl.lastElementChild.remove();
      dropped = true;
    }
    if (dropped) state.older = logEl.lastElementChild.dataset.cursor;
    updateOlderButton();
  }

  // Lines left out past the job's log budget (the count comes with every page).
  function showElided(lines) {
    const el = $("log-elided");
    el.dataset.lines = lines;
    el.textContent = `${lines} lines elided: past the job's log budget, only its first and last lines and every warning are kept`;
    el.hidden = !lines;
  }

  function updateOlderButton() {
    $("log-older").hidden = state.older === null;
  }

  // Lines newest first: `lines` arrive oldest first, so each goes on top of the previous.
  function showLive(lines) {
    const fragment = document.createDocumentFragment();
    for (let i = lines.length - 1; i >= 0; i--) fragment.append(lineNode(lines[i]));
    logEl.prepend(fragment);
    trimOldest();
  }

  function flushPending() {
    const lines = state.pending;
    state.pending = [];
    if (lines.length && !state.detached) showLive(lines);
  }

  function openStream() {
    closeStream();
    if (state.paused || state.detached) return;
    const params = filterQuery();
    if (state.newest !== null) params.set("after", state.newest);
    params.set("tail", "0");
    const url = `${api}logs/stream?${params}`;
    const source = new EventSource(url);
    state.source = source;
    source.onopen = () => setLogState("live");
    source.addEventListener("log", (event) => {
      const line = JSON.parse(event.data);
      if (state.pending.length === 0) state.pendingAfter = state.newest;
      state.newest = line.cursor;
      if (state.pending.push(line) === 1) requestAnimationFrame(flushPending);
    });
    source.addEventListener("end", () => {
      closeStream();
      setLogState("job finished · log complete");
    });
    source.onerror = () => {
      if (state.source !== source) return;
      // CLOSED: the server refused the stream (a 400, 403, 404), so EventSource will not
      // retry; ask the same URL once for the reason and show it instead of looping.
      if (source.readyState === EventSource.CLOSED) showStreamRefusal(url);
      else setLogState("reconnecting…");
    };
  }

  async function showStreamRefusal(url) {
    closeStream();
    const request = new AbortController();
    try {
      const response = await fetch(url, { credentials: "same-origin", signal: request.signal });
      if (response.ok) {
        request.abort(); // a stream after all: do not read it here
        setLogState("error: the live log closed; reload the page");
        return;
      }
      const body = await response.json();
      setLogState(`error: ${Object.values(body).join("; ") || response.statusText}`);
    } catch (error) {
      setLogState(`error: the live log is unavailable (${error.message})`);
    }
  }

  function closeStream() {
    if (state.source) state.source.close();
    state.source = null;
  }

  async function fetchPage(params) {
    const response = await fetch(`${api}logs?${params}`, { credentials: "same-origin" });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(Object.values(body).join("; ") || response.statusText);
    }
    return response.json();
  }

  async function loadNewest() {
    const generation = ++state.generation;
    closeStream();
    state.pending = [];
    state.detached = false;
    $("log-jump").hidden = true;
    const params = filterQuery();
    params.set("limit", PAGE);
    try {
      const page = await fetchPage(params);
      if (generation !== state.generation) return;
      logEl.replaceChildren(...page.results.map(lineNode));
      state.newest = page.newer_cursor;
      state.older = page.older_cursor;
      updateOlderButton();
      showElided(page.elided_lines);
      if (state.paused) setLogState("paused");
      openStream();
    } catch (error) {
      setLogState(`error: ${error.message}`);
    }
  }

  async function loadOlder() {
    if (state.older === null) return;
    const generation = state.generation;
    const params = filterQuery();
    params.set("before", state.older);
    params.set("limit", PAGE);
    const page = await fetchPage(params);
    if (generation !== state.generation) return;
    logEl.append(...page.results.map(lineNode));
    state.older = page.older_cursor;
    let droppedNewest = false;
    while (logEl.childElementCount > MAX_LINES) {
      logEl.firstElementChild.remove();
      droppedNewest = true;
    }
    if (droppedNewest) {
      state.detached = true;
      closeStream();
      $("log-jump").hidden = false;
      setLogState("browsing older lines");
    }
    updateOlderButton();
  }

  function togglePause() {
    state.paused = !state.paused;
    $("log-pause").textContent = state.paused ? "Resume" : "Pause";
    if (state.paused) {
      closeStream();
      // Lines received but not yet drawn stay undrawn: resume fetches them again.
      if (state.pending.length) state.newest = state.pendingAfter;
      state.pending = [];
      setLogState("paused");
    } else {
      openStream();
    }
  }

  let searchTimer = null;
  $("log-level").addEventListener("change", loadNewest);
  $("log-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadNewest, 300);
  });
  $("log-pause").addEventListener("click", togglePause);
  $("log-older").addEventListener("click", loadOlder);
  $("log-jump").addEventListener("click", loadNewest);
  $("cancel-job").addEventListener("click", () => act("cancel"));
  $("retry-job").addEventListener("click", () => act("retry"));

  pollJob();
  loadNewest();
})();
