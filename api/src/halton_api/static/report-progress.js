// A report job's progress page (started by the "Generate PDF" form, a POST): poll the job until the PDF is
// ready, then download it. Without this script the page says where the job is; reloading it shows the link.
const job = document.querySelector("[data-report-job]");
if (job) {
  const bar = job.querySelector("progress");
  const status = job.querySelector("[data-report-status]");
  const download = job.querySelector("[data-report-download]");
  const describe = (j) => {
    if (j.stage === "signing") return [9, "Signing the PDF…"];
    if (j.stage !== "rendering") return [0.5, "Collecting the figures…"];
    if (j.render_step === 5 && j.pages) return [1 + j.render_step, `Laying out page ${j.pages}…`];
    return [1 + j.render_step, `Rendering (step ${j.render_step} of ${j.render_steps})…`];
  };
  const poll = async () => {
    const response = await fetch(job.dataset.reportJob, { headers: { accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) {
      status.textContent = body.detail;
      return;
    }
    if (body.state === "failed") {
      status.textContent = body.error;
      return;
    }
    if (body.state === "done") {
      bar.value = bar.max;
      document.querySelector("[data-report-heading]").textContent = "Your PDF is ready";
      status.textContent = `Ready: ${body.pages} pages. Your download starts now.`;
      download.hidden = false;
      location.assign(body.download_url);
      return;
    }
    [bar.value, status.textContent] = describe(body);
    setTimeout(poll, 250);
  };
  if (download.hidden) poll();
}
