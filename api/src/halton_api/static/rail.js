// The filter rail without an Apply click: a change submits the form; the custom dates show only for "Custom".
// The form works without this script (its Apply button); this only saves a click.
document.querySelectorAll("form[data-rail]").forEach((form) => {
  const custom = form.querySelector("[data-custom]");
  form.addEventListener("change", (event) => {
    const target = event.target;
    if (target.name === "range") {
      custom.hidden = target.value !== "custom";
      if (target.value === "custom") {
        custom.querySelector("input").focus();
        return;
      }
      custom.querySelectorAll("input").forEach((input) => { input.disabled = true; });
    }
    if (target.type === "checkbox") {
      // Several boxes are usually ticked at once: wait for Apply, and say so until then.
      if (target.name === "provider") followProviders(form);
      showPending(form);
      return;
    }
    if (target.type === "date" && !(form.elements.from.value && form.elements.to.value)) return;
    form.requestSubmit();
  });
  form.addEventListener("submit", () => {
    // Keep URLs short: empty fields (and the dates of a non-custom range) stay out of the query.
    const range = form.querySelector("input[name=range]:checked");
    form.querySelectorAll("input[type=date]").forEach((input) => {
      if (!input.value || (range && range.value !== "custom")) input.disabled = true;
    });
  });
});

// Boxes ticked but not applied: the page still shows the old filter, so the rail says so (the note beside
// Apply, a mark on the list that changed) until Apply is pressed or the boxes are put back.
function showPending(form) {
  let changed = 0;
  form.querySelectorAll("details.multi").forEach((multi) => {
    const moved = [...multi.querySelectorAll("input[type=checkbox]")].filter((box) => box.checked !== box.defaultChecked);
    multi.classList.toggle("pending", moved.length > 0);
    changed += moved.length;
  });
  const note = form.querySelector("[data-pending]");
  note.hidden = changed === 0;
  note.textContent = `${changed} change${changed === 1 ? "" : "s"} not applied yet: press Apply`;
  form.querySelector("button[type=submit]").classList.toggle("attention", changed > 0);
}

// The model list shows the chosen providers' models only (all of them when no provider is chosen); a ticked
// model stays visible so it can be unticked.
function followProviders(form) {
  const chosen = [...form.querySelectorAll("input[name=provider]:checked")].map((box) => box.value);
  form.querySelectorAll("details.multi [data-provider]").forEach((item) => {
    const box = item.querySelector("input");
    item.hidden = chosen.length > 0 && !chosen.includes(item.dataset.provider) && !(box && box.checked);
  });
}

// A multi-select's list closes when the click lands elsewhere (or on Escape), as a select's would.
document.addEventListener("click", (event) => {
  document.querySelectorAll("form[data-rail] details.multi[open]").forEach((open) => {
    if (!open.contains(event.target)) open.open = false;
  });
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  document.querySelectorAll("form[data-rail] details.multi[open]").forEach((open) => {
    open.open = false;
    open.querySelector("summary").focus();
  });
});
