// Small progressive enhancements; every page works without them.
document.addEventListener("DOMContentLoaded", () => {
  // The organization switcher submits on change; its button stays for keyboard and no-JS users.
  document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
    select.addEventListener("change", () => select.form.requestSubmit());
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
