// "Pair this machine": when a Halton Meter answers on this computer's loopback port, pair it with the
// workspace from this page. The meter only answers this dashboard's origin (its CORS allow-list), asks the
// cloud for a code itself, and this page approves that code as the signed-in user (same CSRF-protected
// form as /connect). No code is copied by hand, and nothing here works from any other site.
// The offer is left out when the meter says it is paired with this workspace and the table lists its
// machine as active; after pairing, the table is re-read from this page's own HTML (one template renders
// rows), so the new device shows without a reload.
(function () {
  const section = document.getElementById("pair-this-machine");
  if (!section) return;
  const meter = section.dataset.meter.replace(/\/$/, "");
  const result = section.querySelector('[data-field="pair-result"]');
  const button = section.querySelector('[data-action="pair"]');
  const offer = section.querySelector('[data-field="pair-offer"]');

  async function meterState() {
    try {
      const response = await fetch(meter + "/v1/cloud/state", { mode: "cors", cache: "no-store" });
      return response.ok ? await response.json() : null;
    } catch (error) {
      return null; // no meter on this machine: the section stays hidden
    }
  }

  function activeRow(machineId) {
    return Array.from(document.querySelectorAll("#devices-list tr[data-machine-id]")).some(
      (row) => row.dataset.machineId === machineId && row.dataset.status === "active"
    );
  }

  function pairedHere(state) {
    return (
      state.workspace !== null &&
      state.workspace !== undefined &&
      state.workspace.id === section.dataset.workspaceId &&
      state.state !== "NOT-CONFIGURED" &&
      state.paused_reason !== "paused_unauthorised" &&
      activeRow(state.machine_id)
    );
  }

  async function refreshTable() {
    const response = await fetch(window.location.pathname, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return false;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("devices-list");
    if (!fresh) return false;
    document.getElementById("devices-list").replaceWith(document.importNode(fresh, true));
    return true;
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
      // The device row exists from the approval on: show it now.
      await refreshTable();
      button.hidden = true;
      offer.hidden = true;
      result.textContent = "Paired: code " + body.code + " approved. The meter starts syncing within 15 seconds.";
    } catch (error) {
      result.textContent = "Could not pair this machine: " + error.message;
      button.disabled = false;
    }
  }

  meterState().then((state) => {
    if (!state) return;
    const slug = state.workspace ? state.workspace.slug : null;
    section.querySelector('[data-field="meter-state"]').textContent =
      " (cloud state: " + (state.state || "unknown") + (slug ? ", paired to " + slug : "") + ")";
    if (pairedHere(state)) {
      offer.hidden = true;
      button.hidden = true;
      result.textContent = "This machine is already paired with this workspace.";
    } else {
      button.addEventListener("click", pair);
    }
    section.hidden = false;
  });
})();
