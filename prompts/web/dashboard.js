// The dashboard's only script (served from /dashboard/app.js; the page's CSP allows nothing else).
// It swaps in the figures the server pushes over server-sent events, and sends the task buttons.
(function () {
  "use strict";
  var body = document.body;
  var figures = document.getElementById("figures");
  var live = document.getElementById("live");
  var flash = document.getElementById("flash");
  var csrf = body.getAttribute("data-csrf") || "";
  var staff = body.getAttribute("data-staff") || "";

  function stamp(iso) {
    var at = new Date(iso);
    return "Updated " + at.toISOString().slice(11, 19) + " UTC";
  }

  function say(text, ok) {
    flash.textContent = text;
    flash.className = "flash " + (ok ? "done" : "error");
  }

  function enableButtons() {
    var buttons = figures.querySelectorAll("button[data-task]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = !staff;
      if (!staff) { buttons[i].title = "Sign in with your staff id to act on tasks"; }
    }
  }

  var held = null;  // a snapshot that came while a Reassign picker was open: shown once it closes

  function apply(message) {
    if (figures.querySelector("[data-give]")) { held = message; return; }
    figures.innerHTML = message.html;  // rendered and escaped by the server's templates
    body.setAttribute("data-seq", String(message.seq));
    live.textContent = stamp(message.snapshot.generated_at);
    live.className = "live on";
    enableButtons();
  }

  function connect() {
    var source = new EventSource("/dashboard/stream?seq=" + encodeURIComponent(body.getAttribute("data-seq")));
    source.addEventListener("open", function () { live.className = "live on"; });
    source.addEventListener("snapshot", function (e) { apply(JSON.parse(e.data)); });
    source.addEventListener("error", function () {
      live.className = "live off";  // the browser reconnects by itself
    });
  }

  function detail(body) {
    if (typeof body.detail === "string") { return body.detail; }
    if (body.detail && body.detail.length && body.detail[0].msg) { return body.detail[0].msg; }
    return "not done";
  }

  function call(method, path) {
    return fetch(path, {
      method: method, credentials: "same-origin", headers: {"X-CSRF-Token": csrf, "Accept": "application/json"}
    }).then(function (r) {
      return r.json().then(function (j) { return {ok: r.ok, body: j}; });
    });
  }

  var DONE = {take: " is yours.", finish: " is done.", reassign: " is reassigned."};

  function act(button, id, action, query) {
    button.disabled = true;
    call("POST", "/dashboard/tasks/" + encodeURIComponent(id) + "/" + action + (query || "")).then(function (r) {
      if (r.ok) {
        say("Task " + id + DONE[action], true);
        if (action === "reassign") {
          button.previousSibling.remove();  // the picker
          button.remove();
          if (held) { var next = held; held = null; apply(next); }
        }
      } else {
        say("Task " + id + ": " + detail(r.body), false);
        button.disabled = false;
      }
    }).catch(function () {
      say("Task " + id + ": the server did not answer.", false);
      button.disabled = false;
    });
  }

  // Reassign: ask who may get the task, then offer them in a picker next to the button.
  function pick(button, id) {
    button.disabled = true;
    call("GET", "/dashboard/tasks/" + encodeURIComponent(id) + "/choices").then(function (r) {
      if (!r.ok) { say("Task " + id + ": " + detail(r.body), false); button.disabled = false; return; }
      if (!r.body.choices.length) { say("Task " + id + ": nobody else can work it.", false); return; }
      var select = document.createElement("select");
      select.setAttribute("aria-label", "Give task " + id + " to");
      r.body.choices.forEach(function (c) {
        var option = document.createElement("option");
        option.value = c.staff_id;
        option.textContent = c.name;
        select.appendChild(option);
      });
      var give = document.createElement("button");
      give.type = "button";
      give.textContent = "Give";
      give.setAttribute("data-give", id);
      give.addEventListener("click", function () {
        act(give, id, "reassign", "?to=" + encodeURIComponent(select.value));
      });
      button.replaceWith(select, give);
    }).catch(function () {
      say("Task " + id + ": the server did not answer.", false);
      button.disabled = false;
    });
  }

  figures.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("button[data-task]") : null;
    if (!button || button.disabled) { return; }
    var id = button.getAttribute("data-task");
    var action = button.getAttribute("data-action");
    if (action === "reassign") { pick(button, id); } else { act(button, id, action); }
  });

  enableButtons();
  if (window.EventSource) { connect(); }
})();
