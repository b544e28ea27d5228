// "Go back" on error pages: the browser's history when there is one. (A `javascript:` link would be inline
// script, which the pages' Content-Security-Policy refuses; without this script the link goes home.)
document.querySelectorAll("a[data-back]").forEach((link) => {
  link.addEventListener("click", (event) => {
    if (history.length < 2) return;
    event.preventDefault();
    history.back();
  });
});
