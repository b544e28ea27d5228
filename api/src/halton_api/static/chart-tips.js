// Chart values on hover and on keyboard focus: every chart mark carries its values in an SVG <title> (what a
// screen reader reads, and the browser's own tooltip without this script); this shows the same text at once,
// in a styled box beside the mark. Marks that are not links get a tab stop so the keyboard reaches them too.
// No inline style or script (the pages' Content-Security-Policy): the box is placed through the CSSOM.
(() => {
  const MARKS = "figure.chart svg rect, figure.chart svg circle, figure.chart svg polygon, figure.chart svg polyline";
  const marks = [...document.querySelectorAll(MARKS)].filter((mark) => mark.querySelector(":scope > title"));
  if (!marks.length) return;

  const tip = document.createElement("div");
  tip.className = "chart-tip";
  tip.setAttribute("role", "tooltip");
  tip.hidden = true;
  document.body.appendChild(tip);
  let shown = null;

  // "12 Nov: $1,234.56 (Anthropic $1,000.00; OpenAI $234.56)" → a bold head, the value, one line per part.
  function fill(text) {
    tip.replaceChildren();
    const split = /^(.*?): (.*)$/.exec(text);
    const head = document.createElement("strong");
    head.textContent = split ? split[1] : text;
    tip.appendChild(head);
    if (!split) return;
    const parts = /^(.*?) \((.*)\)$/.exec(split[2]);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = parts ? parts[1] : split[2];
    tip.appendChild(value);
    if (!parts) return;
    const list = document.createElement("ul");
    parts[2].split("; ").forEach((part) => {
      const item = document.createElement("li");
      item.textContent = part;
      list.appendChild(item);
    });
    tip.appendChild(list);
  }

  function place(x, y) {
    const gap = 12;
    const { width, height } = tip.getBoundingClientRect();
    const left = x + gap + width > window.innerWidth ? x - gap - width : x + gap;
    const top = y - gap - height < 0 ? y + gap : y - gap - height;
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${Math.max(4, top)}px`;
  }

  // While the pointer is on a mark its <title> is emptied, so the browser's tooltip does not repeat ours.
  function show(mark, x, y, fromPointer) {
    hide();
    const title = mark.querySelector(":scope > title");
    fill(title.textContent);
    if (fromPointer) {
      mark.dataset.tip = title.textContent;
      title.textContent = "";
    }
    shown = mark;
    mark.classList.add("tipped");
    tip.hidden = false;
    place(x, y);
  }

  function hide() {
    if (!shown) return;
    const title = shown.querySelector(":scope > title");
    if (shown.dataset.tip !== undefined) {
      title.textContent = shown.dataset.tip;
      delete shown.dataset.tip;
    }
    shown.classList.remove("tipped");
    shown = null;
    tip.hidden = true;
  }

  marks.forEach((mark) => {
    if (!mark.closest("a")) mark.setAttribute("tabindex", "0");
    mark.addEventListener("pointerenter", (event) => show(mark, event.clientX, event.clientY, true));
    mark.addEventListener("pointermove", (event) => shown === mark && place(event.clientX, event.clientY));
    mark.addEventListener("pointerleave", () => shown === mark && hide());
  });
  // Focus lands on the mark or on the link around it: the box sits above the mark's top edge, and follows it
  // when the page scrolls (focusing scrolls the mark into view); a box shown by the pointer just goes.
  function besideFocused() {
    const box = shown.getBoundingClientRect();
    place(box.left + box.width / 2, box.top);
  }
  document.addEventListener("focusin", (event) => {
    const target = event.target;
    const mark = target.matches(MARKS) ? target : target.querySelector && target.querySelector(":scope > rect");
    if (!mark || !marks.includes(mark)) return hide();
    const box = mark.getBoundingClientRect();
    show(mark, box.left + box.width / 2, box.top, false);
  });
  document.addEventListener("focusout", (event) => shown && event.target.contains(shown) && hide());
  document.addEventListener("keydown", (event) => event.key === "Escape" && hide());
  window.addEventListener("scroll", () => shown && (shown.dataset.tip !== undefined ? hide() : besideFocused()), { passive: true });
})();
