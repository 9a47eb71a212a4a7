// The jobs list: statuses and stage bars of unfinished jobs refresh from the jobs API.
(() => {
  "use strict";
  const table = document.getElementById("jobs-table");
  if (!table) return;
  const POLL_MS = 3000;
  // The final statuses (ami/jobs/states.py FINAL_STATES) and the badge text of a status.
  const FINAL = ["SUCCESS", "COMPLETED_WITH_ERRORS", "FAILURE", "REVOKED"];
  const LABELS = { COMPLETED_WITH_ERRORS: "Completed with errors" };

  function render(job) {
    const row = table.querySelector(`tr[data-job-id="${job.id}"]`);
    if (!row) return;
    const status = row.querySelector(".status");
    status.textContent = LABELS[job.status] || job.status;
    status.dataset.status = job.status;
    status.className = `status status-${job.status.toLowerCase()}`;
    for (const stage of job.stages) {
      const bar = row.querySelector(`progress[data-stage="${stage.key}"]`);
      if (!bar) continue;
      bar.value = stage.progress;
      bar.title = `${stage.key} ${stage.processed}/${stage.total}`;
    }
  }

  async function poll() {
    const unfinished = [...table.querySelectorAll(".status")].some(
      (el) => !FINAL.includes(el.dataset.status),
    );
    if (!unfinished) return;
    try {
      const response = await fetch("/api/jobs/?limit=100", { credentials: "same-origin" });
      if (response.ok) (await response.json()).results.forEach(render);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  setTimeout(poll, POLL_MS);
})();
