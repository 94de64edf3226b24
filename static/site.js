// Behaviour every page shares, bound here rather than in inline on* attributes, which the
// Content-Security-Policy (webapp/security.py) does not run: forms with data-confirm ask first,
// controls with data-autosubmit submit their form when changed.
document.addEventListener("submit", (e) => {
  const question = e.target.dataset && e.target.dataset.confirm;
  if (question && !window.confirm(question)) e.preventDefault();
}, true);
document.addEventListener("change", (e) => {
  if (e.target.matches && e.target.matches("[data-autosubmit]") && e.target.form) e.target.form.submit();
});
