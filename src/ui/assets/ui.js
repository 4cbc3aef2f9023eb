// private-registry web UI: optional enhancements only; every page works
// without this script. Filter forms marked data-live re-fetch their results
// as one types; buttons marked data-copy copy a command.
"use strict";

function liveFilter(form) {
  var input = form.querySelector("input[name=q]");
  var target = document.getElementById(form.getAttribute("data-live"));
  if (!input || !target) return;
  var timer = null, seq = 0;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var url = form.getAttribute("action") + "?q=" + encodeURIComponent(input.value);
      var mine = ++seq;
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (text) {
          if (mine !== seq) return;
          var doc = new DOMParser().parseFromString(text, "text/html");
          var fresh = doc.getElementById(target.id);
          if (fresh) target.replaceChildren.apply(target, Array.from(fresh.childNodes));
          history.replaceState(null, "", url);
        })
        .catch(function () { /* the form still works by submitting */ });
    }, 200);
  });
}

function copyButton(button) {
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-live]").forEach(liveFilter);
  document.querySelectorAll("button[data-copy]").forEach(copyButton);
});
