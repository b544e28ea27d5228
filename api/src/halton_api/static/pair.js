// "Pair this machine": when a Halton Meter answers on this computer's loopback port, pair it with the
// workspace from this page. The meter only answers this dashboard's origin (its CORS allow-list), asks the
// cloud for a code itself, and this page approves that code as the signed-in user (same CSRF-protected
// form as /connect). No code is copied by hand, and nothing here works from any other site.
(function () {
  const section = document.getElementById("pair-this-machine");
  if (!section) return;
  const meter = section.dataset.meter.replace(/\/$/, "");
  const result = section.querySelector('[data-field="pair-result"]');
  const button = section.querySelector('[data-action="pair"]');

  async function meterState() {
    try {
      const response = await fetch(meter + "/v1/cloud/state", { mode: "cors", cache: "no-store" });
      return response.ok ? await response.json() : null;
    } catch (error) {
      return null; // no meter on this machine: the section stays hidden
    }
  }

  async function approve(code) {
    const form = new URLSearchParams({
      csrf_token: section.dataset.csrf,
      code: code,
      workspace: section.dataset.workspace,
      decision: "approve",
    });
    const response = await fetch("/connect", { method: "POST", body: form, credentials: "same-origin" });
    return response.ok;
  }

  async function pair() {
    button.disabled = true;
    result.textContent = "Asking the meter for a pairing code…";
    try {
      const response = await fetch(meter + "/v1/cloud/connect", {
        method: "POST",
        mode: "cors",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ base_url: section.dataset.cloud }),
      });
      const body = await response.json();
      if (!response.ok || !body.code) throw new Error(body.error || body.detail || "the meter refused");
      result.textContent = "Approving code " + body.code + "…";
      if (!(await approve(body.code))) throw new Error("the approval was not accepted");
      result.textContent = "Paired: code " + body.code + " approved. The meter starts syncing within 15 seconds.";
      setTimeout(() => window.location.reload(), 2500);
    } catch (error) {
      result.textContent = "Could not pair this machine: " + error.message;
      button.disabled = false;
    }
  }

  meterState().then((state) => {
    if (!state) return;
    section.querySelector('[data-field="meter-state"]').textContent =
      " (cloud state: " + (state.state || "unknown") + (state.workspace_slug ? ", paired to " + state.workspace_slug : "") + ")";
    section.hidden = false;
    button.addEventListener("click", pair);
  });
})();
