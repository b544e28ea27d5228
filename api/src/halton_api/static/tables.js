// Tables people can explore, without a library: every `table[data-table]` sorts by any column (click its
// heading; numbers and money sort as numbers), a long one gets a search box and pages of PAGE rows, and one
// wider than its card scrolls inside it with a visible cue. Without this script the tables are whole and
// in the server's order (the pages stay correct, just less handy).
(() => {
  const PAGE = 25;

  // "$1,234.56", "<$0.01", "12.5%", "1,024", "1.2k", "340 ms" → a number; anything else → null (sorts as text).
  function numeric(text) {
    const t = text.trim().replace(/^[<>~]/, "").replace(/[$,%\s]|ms$/g, "");
    const match = /^([-+−]?\d*\.?\d+)([kMB])?$/.exec(t.replace("−", "-"));
    if (!match) return null;
    const scale = { k: 1e3, M: 1e6, B: 1e9 }[match[2]] || 1;
    return parseFloat(match[1]) * scale;
  }

  // A cell's sort key: its data-sort, else the value of the field it holds (a settings row's name or role is
  // an input or a select), else its text.
  function cellValue(row, index) {
    const cell = row.cells[index];
    if (!cell) return "";
    if (cell.dataset.sort !== undefined) return cell.dataset.sort;
    const field = cell.querySelector("select, input[type=text], input[type=number], input:not([type])");
    if (field) return field.tagName === "SELECT" ? field.selectedOptions[0]?.text ?? "" : field.value;
    return cell.innerText;
  }

  function dataRows(table) {
    // Rows with a cell spanning the table ("No requests in this view.") are messages, and a total row stays
    // where it is (first or last): neither is sorted, paged or searched.
    return [...table.tBodies[0].rows].filter((row) => !row.querySelector("td[colspan]") && !row.classList.contains("total"));
  }

  function makeSortable(table, refresh) {
    const head = table.tHead && table.tHead.rows[table.tHead.rows.length - 1];
    if (!head || table.dataset.sortable === "off") return;
    [...head.cells].forEach((th, index) => {
      const hidden = th.querySelector(".visually-hidden");
      if (th.colSpan > 1 || !th.innerText.trim() || (hidden && hidden.innerText.trim() === th.innerText.trim())) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.title = `Sort by ${th.innerText.trim()}`;
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      th.setAttribute("aria-sort", "none");
      button.addEventListener("click", () => {
        const rows = dataRows(table);
        const descending = th.getAttribute("aria-sort") !== "descending";
        const values = rows.map((row) => cellValue(row, index));
        const numbers = values.every((v) => numeric(v) !== null || v.trim() === "—" || v.trim() === "");
        const keyed = rows.map((row, i) => {
          const v = values[i];
          return { row, i, key: numbers ? (numeric(v) ?? -Infinity) : v.trim().toLowerCase() };
        });
        keyed.sort((a, b) => {
          const order = a.key < b.key ? -1 : a.key > b.key ? 1 : a.i - b.i;
          return descending ? -order : order;
        });
        const body = table.tBodies[0];
        keyed.forEach(({ row }) => body.appendChild(row));
        [...head.cells].forEach((other) => other.hasAttribute("aria-sort") && other.setAttribute("aria-sort", "none"));
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        refresh(true);
      });
    });
  }

  // What a search looks in: the row's text and its hover titles (a shortened hash finds its full value).
  function searchText(row) {
    const titles = [...row.querySelectorAll("[title]")].map((el) => el.title).join(" ");
    return `${row.textContent} ${titles}`.toLowerCase();
  }

  function makePaged(table) {
    const rows = dataRows(table);
    // "server": the page pages it itself; "off": a reference list read whole (the browser's find reaches every row).
    if (rows.length <= PAGE || table.dataset.paged === "server" || table.dataset.paged === "off") return () => {};
    const state = { page: 0, query: "" };
    const bar = document.createElement("div");
    bar.className = "table-tools";
    bar.innerHTML =
      '<label class="visually-hidden">Search this table</label>' +
      '<input type="search" placeholder="Search these rows" data-table-search>' +
      '<span class="muted" data-table-count></span>' +
      '<nav class="pager" aria-label="Table pages"><button type="button" data-prev>← Previous</button>' +
      '<span data-table-page></span><button type="button" data-next>Next →</button></nav>';
    const anchor = table.closest(".table-wrap, .scroll") || table;
    anchor.parentNode.insertBefore(bar, anchor);
    const input = bar.querySelector("input");
    input.id = `search-${table.dataset.table}`;
    bar.querySelector("label").htmlFor = input.id;
    function refresh(keepPage) {
      const matching = dataRows(table).filter((row) => !state.query || searchText(row).includes(state.query));
      const pages = Math.max(1, Math.ceil(matching.length / PAGE));
      if (!keepPage) state.page = 0;
      state.page = Math.min(state.page, pages - 1);
      const shown = new Set(matching.slice(state.page * PAGE, (state.page + 1) * PAGE));
      dataRows(table).forEach((row) => { row.hidden = !shown.has(row); });
      bar.querySelector("[data-table-count]").textContent =
        `${matching.length} of ${rows.length} row${rows.length === 1 ? "" : "s"}`;
      bar.querySelector("[data-table-page]").textContent = `Page ${state.page + 1} of ${pages}`;
      bar.querySelector("[data-prev]").disabled = state.page === 0;
      bar.querySelector("[data-next]").disabled = state.page >= pages - 1;
    }
    input.addEventListener("input", () => { state.query = input.value.trim().toLowerCase(); refresh(false); });
    bar.querySelector("[data-prev]").addEventListener("click", () => { state.page -= 1; refresh(true); });
    bar.querySelector("[data-next]").addEventListener("click", () => { state.page += 1; refresh(true); });
    refresh(false);
    return refresh;
  }

  // A table wider than its card scrolls inside it; the cue says so while there is more to the right.
  function fit(table) {
    let wrap = table.closest(".table-wrap, .scroll");
    if (!wrap) {
      wrap = document.createElement("div");
      wrap.className = "table-wrap";
      table.parentNode.insertBefore(wrap, table);
      wrap.appendChild(table);
    }
    const update = () => {
      const more = wrap.scrollWidth - wrap.clientWidth - wrap.scrollLeft > 2;
      wrap.classList.toggle("scrolls", wrap.scrollWidth > wrap.clientWidth + 2);
      wrap.classList.toggle("more-right", more);
    };
    wrap.addEventListener("scroll", update, { passive: true });
    window.addEventListener("resize", update);
    update();
  }

  document.querySelectorAll("table[data-table]").forEach((table) => {
    if (!table.tBodies.length) return;
    const refresh = makePaged(table);
    makeSortable(table, refresh);
    fit(table);
  });
})();
