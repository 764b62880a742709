// Skiff dashboard: the little the pages need from a script. Everything works without it but
// the live overview, the "select all" box and the confirmations.
"use strict";

// Live overview: the server sends the table's HTML (rendered and escaped on the server).
document.querySelectorAll("[data-live]").forEach((el) => {
  const source = new EventSource(el.dataset.live);
  source.addEventListener("overview", (event) => {
    el.innerHTML = event.data;
    el.dataset.updated = String(Date.now());
  });
  source.addEventListener("unavailable", () => el.classList.add("stale"));
});

// Confirm destructive actions: a form's or its submit button's data-confirm.
document.addEventListener("submit", (event) => {
  const message = (event.submitter && event.submitter.dataset.confirm) || event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

// "Select all" checkboxes: data-select-all names the boxes they toggle.
document.addEventListener("change", (event) => {
  const name = event.target.dataset && event.target.dataset.selectAll;
  if (!name) return;
  const form = event.target.closest("form");
  form.querySelectorAll(`input[type=checkbox][name="${name}"]`).forEach((box) => {
    box.checked = event.target.checked;
  });
});
