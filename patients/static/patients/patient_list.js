// The patient list's htmx requests leave out empty filters, so the pushed address stays short
// ("/patients/?q=smi", not "?q=smi&condition=&..."). Without JavaScript the plain GET form works.
document.addEventListener("htmx:configRequest", (event) => {
  if (!event.detail.elt.closest || !event.detail.elt.closest("form[data-drop-empty]")) return;
  const params = event.detail.parameters;
  for (const key of Array.from(params.keys())) {
    if (params.get(key) === "") params.delete(key);
  }
});
