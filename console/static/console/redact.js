// The referral page: shift-click ticks every word between the last one clicked and this one, and a
// count says how many words are hidden; the encryption box follows the force chosen. Without this script the checkboxes work one by one.
(function () {
  "use strict";
  var form = document.getElementById("referral-form");
  if (!form) { return; }
  var count = document.getElementById("redact-count");
  var last = null;

  function boxes(take) {
    return Array.prototype.slice.call(take.querySelectorAll(".redact-word input[type=checkbox]"));
  }

  function update() {
    var hidden = form.querySelectorAll(".redact-word input:checked").length;
    if (count) { count.textContent = hidden + (hidden === 1 ? " word hidden" : " words hidden"); }
  }

  // Encryption follows the force chosen: ticked for a force with a registered key, unticked without.
  var force = document.getElementById("force"), encrypt = document.getElementById("encrypt");
  if (force && encrypt) {
    force.addEventListener("change", function () {
      var option = force.options[force.selectedIndex];
      encrypt.checked = option && option.getAttribute("data-has-key") === "yes";
    });
  }

  form.addEventListener("click", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.closest(".redact-word")) { return; }
    var take = box.closest(".redact-take");
    if (event.shiftKey && last && last.closest(".redact-take") === take) {
      var all = boxes(take);
      var from = all.indexOf(last), to = all.indexOf(box);
      var low = Math.min(from, to), high = Math.max(from, to);
      for (var i = low; i <= high; i += 1) { all[i].checked = box.checked; }
    }
    last = box;
    update();
  });
  update();
})();
