// The log search page: matches across your jobs (GET /api/logs) and a per-minute histogram
// by level (GET /api/logs/histogram), drawn as SVG. No inline script: the CSP forbids it.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = { DEBUG: "#8a94a6", INFO: "#2f6fd6", WARNING: "#e0a100", ERROR: "#d1362b", CRITICAL: "#7a0f08" };
  const form = document.getElementById("search-form");
  const results = document.getElementById("search-results");
  const older = document.getElementById("search-older");
  const state = document.getElementById("s-state");
  const chart = document.getElementById("histogram");
  const legend = document.getElementById("histogram-legend");
  let olderUrl = null;

  function params() {
    const p = new URLSearchParams();
    for (const name of ["project", "q", "level", "image"]) {
      const value = form.elements[name].value.trim();
      if (value) p.set(name, value);
    }
    for (const name of ["since", "until"]) {
      const value = form.elements[name].value;
      if (value) p.set(name, new Date(value).toISOString());
    }
    return p;
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(Object.entries(body).map(([k, v]) => `${k}: ${v}`).join("; "));
    return body;
  }

  function lineNode(line) {
    const row = document.createElement("div");
    row.className = `line lvl-${Math.min(50, Math.floor(line.level / 10) * 10)}`;
    row.dataset.cursor = line.cursor;
    const job = document.createElement("a");
    job.className = "job-link";
    job.href = `/jobs/${line.job_id}/`;
    job.textContent = `job ${line.job_id}`;
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = line.created_at.slice(0, 19).replace("T", " ");
    const lvl = document.createElement("span");
    lvl.className = "lvl";
    lvl.textContent = line.level_name;
    const msg = document.createElement("span");
    msg.className = "msg";
    msg.textContent = line.message;
    row.append(job, ts, lvl, msg);
    return row;
  }

  function drawHistogram(body) {
    chart.replaceChildren();
    const width = chart.clientWidth || 800;
    const height = chart.clientHeight || 140;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const since = Date.parse(body.since);
    const span = Math.max(1, Date.parse(body.until) - since);
    const totals = body.buckets.map((b) => Object.values(b.counts).reduce((a, n) => a + n, 0));
    const top = Math.max(1, ...totals);
    const barWidth = Math.max(1, (width * body.bucket_seconds * 1000) / span);
    const seen = new Set();
    body.buckets.forEach((bucket) => {
      const x = ((Date.parse(bucket.start) - since) / span) * width;
      let y = height;
      for (const [level, count] of Object.entries(bucket.counts)) {
        const h = (count / top) * (height - 4);
        const rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("class", "bar");
        rect.setAttribute("x", x.toFixed(1));
        rect.setAttribute("y", (y - h).toFixed(1));
        rect.setAttribute("width", barWidth.toFixed(1));
        rect.setAttribute("height", h.toFixed(1));
        rect.setAttribute("fill", COLORS[level] || "#555");
        rect.dataset.level = level;
        rect.dataset.count = count;
        const title = document.createElementNS(SVG, "title");
        title.textContent = `${bucket.start.slice(0, 16)} ${level}: ${count}`;
        rect.append(title);
        chart.append(rect);
        y -= h;
        seen.add(level);
      }
    });
    legend.textContent = body.buckets.length
      ? `${totals.reduce((a, n) => a + n, 0)} lines; ${[...seen].join(", ")}; tallest minute ${top}`
      : "no lines in this range";
  }

  async function search(event) {
    if (event) event.preventDefault();
    const query = params();
    state.textContent = "searching…";
    results.replaceChildren();
    older.hidden = true;
    try {
      const [page, histogram] = await Promise.all([
        getJson(`/api/logs?${query}&limit=200`),
        getJson(`/api/logs/histogram?${query}`),
      ]);
      page.results.forEach((line) => results.append(lineNode(line)));
      olderUrl = page.older;
      older.hidden = !olderUrl;
      drawHistogram(histogram);
      state.textContent = `${page.results.length}${olderUrl ? "+" : ""} matches`;
    } catch (error) {
      state.textContent = error.message;
    }
  }

  async function loadOlder() {
    if (!olderUrl) return;
    const page = await getJson(olderUrl);
    page.results.forEach((line) => results.append(lineNode(line)));
    olderUrl = page.older;
    older.hidden = !olderUrl;
  }

  form.addEventListener("submit", search);
  older.addEventListener("click", loadOlder);
  search();
})();
