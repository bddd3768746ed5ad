// featviz gallery: keyboard navigation between pages.
// Unit pages: ArrowLeft / k = previous unit, ArrowRight / j = next unit, u / Escape = layer page.
// Layer pages: the same keys move between layers and up to the index.
// Targets come from the page's visible pager links (<a data-nav="prev|next|up">).
(function () {
  "use strict";
  var roles = { ArrowLeft: "prev", k: "prev", ArrowRight: "next", j: "next", u: "up", Escape: "up" };

  function typingInto(target) {
    if (!target || !target.tagName) {
      return false;
    }
    return target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName);
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) {
      return;
    }
    if (typingInto(event.target)) {
      return;
    }
    var role = roles[event.key];
    if (!role) {
      return;
    }
    var link = document.querySelector('a[data-nav="' + role + '"]');
    if (!link) {
      return;
    }
    event.preventDefault();
    window.location.href = link.href;
  });
})();
