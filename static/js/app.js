// Small progressive enhancements; every page works without them.

// The phone menu (base.html): the toggle is shown and the menu folded only once this runs, so
// without JavaScript the navigation stays open. Run at once (the script is deferred: the header is
// parsed) so the menu does not flash open before folding.
(() => {
  const toggle = document.querySelector(".menu-toggle");
  const menu = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
  if (!menu) return;
  const header = toggle.closest(".topbar");
  header.classList.add("has-menu");
  toggle.hidden = false;
  const setOpen = (open) => {
    toggle.setAttribute("aria-expanded", String(open));
    header.classList.toggle("menu-open", open);
  };
  toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
      setOpen(false);
      toggle.focus();
    }
  });
})();

document.addEventListener("DOMContentLoaded", () => {
  // The organization switcher submits on change; its button stays for keyboard and no-JS users.
  document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
    select.addEventListener("change", () => select.form.requestSubmit());
  });

  // Print buttons (the access report): the print stylesheet hides the navigation and controls.
  document.querySelectorAll("button[data-print]").forEach((button) => {
    button.addEventListener("click", () => window.print());
  });

  // New patient: the preferred channel the answers give, as patients.services.default_channel decides.
  const choice = document.querySelector("[data-channel-choice]");
  if (choice) {
    const form = choice.closest("form");
    const update = () => {
      const value = (name) => form.elements[name] && form.elements[name].value.trim();
      const checked = (name) => form.elements[name] && form.elements[name].checked;
      choice.textContent = value("phone_mobile") && checked("sms_consent") ? "Text message"
        : value("email") && checked("email_consent") ? "Email" : "No outreach";
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
  }
});
