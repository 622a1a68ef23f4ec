// Small progressive enhancements; every page works without them.
document.addEventListener("DOMContentLoaded", () => {
  // The organization switcher submits on change; its button stays for keyboard and no-JS users.
  document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
    select.addEventListener("change", () => select.form.requestSubmit());
  });
});
