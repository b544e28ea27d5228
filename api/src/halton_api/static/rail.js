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
    if (target.type === "checkbox") return; // several boxes are usually ticked at once: wait for Apply
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
