/* Switchboard website chat widget, v1. Served by Switchboard at /widget/v1.js.
 *
 * Embed with one tag naming the chat channel's public key:
 *   <script src="https://switchboard.example.com/widget/v1.js" data-key="PUBLIC_KEY" async></script>
 *
 * Plain JavaScript, no framework. The widget lives in a shadow root so the page's styles and
 * its own do not mix. The visitor's token and the messages seen so far are kept in
 * localStorage, so the conversation survives page loads; the live socket resumes from the last
 * message seen. Keyboard: the launcher is a button, Escape closes the panel and gives focus
 * back to it; the message list is a live region.
 *
 * The team's replies are acknowledged as seen (a `seen` frame) only while the panel is open and
 * the page visible: a reply the visitor did not see may go out by e-mail to the address they
 * left.
 *
 * A message is the visitor's until the server acknowledges it: an `ack`, or its echo (a
 * `message` frame naming its `clientId`; an echo is never matched by its text). Until then it
 * stays pending, in localStorage too. Pending messages go in order, one at a time: only the
 * oldest is out, the others wait behind it until it is acknowledged, so retries neither reorder
 * them nor burst past the rate limit. The oldest is sent again with the same `clientId` whenever
 * the socket opens, when a refusal that may pass (RATE_LIMITED, UNAVAILABLE) has waited its
 * time, and when the visitor presses a Retry button. The server derives the message's id from
 * the `clientId`, so however often it is sent it is recorded once. Meanwhile it is shown as not
 * sent, and the failure is announced (the alert region). A message refused for good (a field at
 * fault, refused, a bad frame) is never thrown away: its bubble stays, marked not sent with the
 * reason (in localStorage too), and its Edit button puts its text back in the box, after what is
 * there already. */
(function () {
  "use strict";
  var script = document.currentScript ||
    document.querySelector('script[data-key][src*="/widget/v1.js"]');
  if (!script || !script.getAttribute("data-key")) return;
  var key = script.getAttribute("data-key");
  var base = new URL(script.src, location.href);
  var api = base.origin + "/chat/" + encodeURIComponent(key);
  var wsBase = (base.protocol === "https:" ? "wss://" : "ws://") + base.host +
    "/chat/" + encodeURIComponent(key) + "/live";
  var storeKey = "switchboard-chat:" + key;
  var MAX_KEPT = 200;
  // How long a sent message may go unanswered before the socket is dropped and opened again.
  var ACK_WAIT = 20000;
  // The most a frame may hold: under the server's default socket frame limit (16 KiB).
  var MAX_FRAME_BYTES = 16000;

  // What was kept, of the shape this script writes: anything else (another version, a hand
  // edit) is left out rather than stopping the widget.
  function load() {
    var kept;
    try { kept = JSON.parse(localStorage.getItem(storeKey)); } catch (e) { kept = null; }
    return kept && typeof kept === "object" ? kept : {};
  }
  function listOf(value, keep) { return Array.isArray(value) ? value.filter(keep) : []; }
  function isObject(value) { return !!value && typeof value === "object"; }
  function isOwn(value) {
    return isObject(value) && typeof value.text === "string" && typeof value.clientId === "string" &&
      /^[A-Za-z0-9._:-]{1,64}$/.test(value.clientId);
  }
  var saved = load();
  var state = {
    token: typeof saved.token === "string" ? saved.token : null,
    seq: typeof saved.seq === "number" ? saved.seq : 0,
    messages: listOf(saved.messages, isObject),
    emailGiven: !!saved.emailGiven,
    unacked: listOf(saved.unacked, function (id) { return typeof id === "string"; }),
    // Messages not acknowledged yet: `{type, text, clientId}` frames, oldest first.
    pending: listOf(saved.pending, isOwn),
    // Messages refused for good, kept for the visitor to edit: `{text, clientId, why}`.
    refused: listOf(saved.refused, isOwn),
    info: null,
    socket: null,
    retry: 0,
    open: false
  };
  function save() {
    try {
      localStorage.setItem(storeKey, JSON.stringify({
        token: state.token, seq: state.seq, emailGiven: state.emailGiven,
        unacked: state.unacked.slice(-MAX_KEPT),
        pending: state.pending.slice(-MAX_KEPT).map(function (p) {
          return { type: p.type, text: p.text, clientId: p.clientId };
        }),
        refused: state.refused.slice(-MAX_KEPT),
        messages: state.messages.slice(-MAX_KEPT)
      }));
    } catch (e) { /* private mode: the conversation lasts as long as the page */ }
  }

  var css = [
    ":host{all:initial}[hidden]{display:none!important}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    ".launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:28px;",
    "padding:14px 20px;background:#1f5eff;color:#fff;font-size:15px;font-weight:600;cursor:pointer;",
    "box-shadow:0 4px 14px rgba(0,0,0,.25)}",
    ".launcher:focus-visible,button:focus-visible,textarea:focus-visible,input:focus-visible{",
    "outline:3px solid #ffbf47;outline-offset:2px}",
    ".panel{position:fixed;right:20px;bottom:84px;z-index:2147483001;width:360px;max-width:calc(100vw - 40px);",
    "height:520px;max-height:calc(100vh - 120px);display:flex;flex-direction:column;background:#fff;",
    "color:#1b1b1b;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);overflow:hidden}",
    ".panel[hidden]{display:none}",
    "header{background:#1f5eff;color:#fff;padding:12px 14px;display:flex;align-items:flex-start;gap:8px}",
    "header h2{margin:0;font-size:16px}",
    "header p{margin:4px 0 0;font-size:13px;opacity:.95}",
    ".dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px;background:#bbb}",
    ".dot.on{background:#3ddc84}",
    ".close{margin-left:auto;background:transparent;border:0;color:#fff;font-size:22px;line-height:1;",
    "cursor:pointer;padding:2px 6px}",
    ".log{flex:1;overflow-y:auto;padding:12px;margin:0;list-style:none;background:#f6f7f9}",
    ".msg{max-width:80%;margin:6px 0;padding:8px 11px;border-radius:12px;font-size:14px;",
    "white-space:pre-wrap;word-wrap:break-word}",
    ".visitor{margin-left:auto;background:#1f5eff;color:#fff;border-bottom-right-radius:3px}",
    ".team{background:#fff;border:1px solid #dde1e7;border-bottom-left-radius:3px}",
    ".who{display:block;font-size:11px;font-weight:600;margin-bottom:2px;color:#555}",
    ".sending{opacity:.6}",
    ".failed{background:#fff;color:#1b1b1b;border:1px dashed #b00020}",
    ".note{display:block;font-size:12px;color:#b00020;margin-top:4px}",
    ".note button{margin-left:6px;border:1px solid #b00020;border-radius:6px;background:#fff;",
    "color:#b00020;font-size:12px;cursor:pointer;padding:1px 8px}",
    ".typing{min-height:20px;padding:0 12px;font-size:12px;color:#555;background:#f6f7f9}",
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #e3e6ea;background:#fff}",
    "form.email{flex-wrap:wrap;background:#fff8e1}",
    "form.email p{margin:0;flex-basis:100%;font-size:13px}",
    "label.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}",
    "textarea,input{flex:1;min-width:0;border:1px solid #c5cad3;border-radius:8px;padding:8px;font-size:14px}",
    "textarea{resize:none;height:40px}",
    "form button{border:0;border-radius:8px;background:#1f5eff;color:#fff;font-weight:600;padding:0 14px;",
    "cursor:pointer;min-height:40px}",
    ".error{color:#b00020;font-size:12px;padding:0 12px}",
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;max-width:100vw;height:100%;",
    "max-height:100%;border-radius:0}.launcher{right:12px;bottom:12px}}"
  ].join("");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs) node.setAttribute(name, attrs[name]);
    if (text) node.textContent = text;
    return node;
  }

  var host = el("div", { "data-switchboard-chat": "" });
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var style = el("style");
  style.textContent = css;
  var launcher = el("button", {
    "class": "launcher", type: "button", "aria-haspopup": "dialog",
    "aria-expanded": "false", "aria-controls": "sb-panel"
  }, "Chat with us");
  var panel = el("section", {
    "class": "panel", id: "sb-panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "sb-title", hidden: ""
  });
  var header = el("header");
  var heading = el("div");
  var title = el("h2", { id: "sb-title" }, "Chat");
  var status = el("p", { id: "sb-status" });
  var closeButton = el("button", { "class": "close", type: "button", "aria-label": "Close chat" }, "\u00d7");
  heading.appendChild(title);
  heading.appendChild(status);
  header.appendChild(heading);
  header.appendChild(closeButton);
  var log = el("ol", { "class": "log", role: "log", "aria-live": "polite", "aria-label": "Messages" });
  var typing = el("div", { "class": "typing", "aria-live": "polite" });
  var problem = el("div", { "class": "error", role: "alert", "aria-live": "assertive" });

  var emailForm = el("form", { "class": "email", hidden: "" });
  var emailNote = el("p", { id: "sb-email-note" });
  var emailLabel = el("label", { "class": "sr", "for": "sb-email" }, "Your e-mail address");
  var emailInput = el("input", {
    id: "sb-email", type: "email", autocomplete: "email", required: "",
    placeholder: "you@example.com", "aria-describedby": "sb-email-note"
  });
  var emailButton = el("button", { type: "submit" }, "Save");
  [emailNote, emailLabel, emailInput, emailButton].forEach(function (n) { emailForm.appendChild(n); });

  var composer = el("form");
  var textLabel = el("label", { "class": "sr", "for": "sb-text" }, "Your message");
  var text = el("textarea", { id: "sb-text", rows: "1", placeholder: "Write a message\u2026" });
  var sendButton = el("button", { type: "submit" }, "Send");
  [textLabel, text, sendButton].forEach(function (n) { composer.appendChild(n); });

  [header, log, typing, problem, emailForm, composer].forEach(function (n) { panel.appendChild(n); });
  root.appendChild(style);
  root.appendChild(launcher);
  root.appendChild(panel);

  function request(method, path, body) {
    var headers = {};
    if (state.token) headers.Authorization = "Bearer " + state.token;
    if (body) headers["Content-Type"] = "application/json";
    return fetch(api + path, {
      method: method, headers: headers, body: body ? JSON.stringify(body) : undefined
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (!response.ok) {
          var message = json.error || (json.errors && json.errors[0] &&
            json.errors[0].field + ": " + json.errors[0].message) || ("HTTP " + response.status);
          throw new Error(message);
        }
        return json;
      });
    });
  }

  function render(message, pending) {
    var item = el("li", { "class": "msg " + (message.from === "visitor" ? "visitor" : "team") });
    if (message.id) item.setAttribute("data-id", message.id);
    if (pending) item.className += " sending";
    if (message.from !== "visitor") {
      item.appendChild(el("span", { "class": "who" },
        message.author || (state.info && state.info.teamName) || "Team"));
    }
    item.appendChild(document.createTextNode(message.text));
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function known(id) {
    for (var i = 0; i < state.messages.length; i++) if (state.messages[i].id === id) return true;
    return false;
  }

  function receive(message) {
    if (message.seq > state.seq) state.seq = message.seq;
    if (known(message.id)) { save(); return; }
    state.messages.push({ id: message.id, seq: message.seq, from: message.from,
      author: message.author, text: message.text });
    // Its echo may come before its acknowledgement (or instead of it, when the socket broke in
    // between): it is durable. Only its `clientId` says which message it is, never its text.
    if (message.from === "visitor" && message.clientId && pendingOf(message.clientId)) {
      acknowledged(message.clientId, message.id);
    }
    var shown = log.querySelector('[data-id="' + message.id + '"]');
    if (shown) delivered(shown);
    else render(message);
    if (message.from !== "visitor") {
      typing.textContent = "";
      state.unacked.push(message.id);
    } else giveEmail();
    save();
    ackSeen();
  }

  /* Tells the server the visitor saw the team's replies shown so far: only while the panel is
   * open and the page visible. */
  function ackSeen() {
    if (!state.open || document.visibilityState !== "visible" || !state.unacked.length) return;
    var socket = state.socket;
    if (!socket || socket.readyState !== 1) return;
    while (state.unacked.length) {
      socket.send(JSON.stringify({ type: "seen", ids: state.unacked.splice(0, 100) }));
    }
    save();
  }
  document.addEventListener("visibilitychange", ackSeen);

  var agentTypingTimer = null;
  function onFrame(event) {
    var frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    if (frame.type === "message") receive(frame);
    else if (frame.type === "typing") {
      clearTimeout(agentTypingTimer);
      typing.textContent = frame.typing
        ? ((state.info && state.info.teamName) || "The team") + " is typing\u2026" : "";
      if (frame.typing) agentTypingTimer = setTimeout(function () { typing.textContent = ""; }, 8000);
    } else if (frame.type === "ack") {
      acknowledged(frame.clientId, frame.id);
      save();
    } else if (frame.type === "error") {
      var pending = pendingOf(frame.clientId);
      if (!pending) {
        problem.textContent = frame.message || "Something went wrong.";
      } else if (frame.code === "RATE_LIMITED" || frame.code === "UNAVAILABLE") {
        // It may pass: kept, and sent again (same clientId) once the server's wait is over.
        pending.out = false;
        notSent(pending, frame.message, (frame.retryAfter || 5) * 1000);
      } else {
        refuse(pending, frame.message || "the message was refused.");
      }
    }
  }

  /* `pending` will not pass as it is: no longer pending, but kept, shown as not sent with why,
   * for the visitor to edit; the next message goes. */
  function refuse(pending, why) {
    clearTimeout(pending.timer);
    forget(pending.clientId);
    var refused = { text: pending.text, clientId: pending.clientId, why: why };
    state.refused.push(refused);
    showRefused(refused);
    problem.textContent = "Not sent: " + why + " Your text is kept: press Edit to change it.";
    save();
    flush();
  }
  function showRefused(refused) {
    var item = itemOf(refused.clientId) || render({ from: "visitor", text: refused.text });
    item.setAttribute("data-client", refused.clientId);
    delivered(item);
    item.className += " failed";
    var note = el("span", { "class": "note" }, "Not sent: " + refused.why);
    var edit = el("button", { type: "button", title: "Put this text back in the message box" }, "Edit");
    edit.addEventListener("click", function () { editRefused(refused.clientId); });
    note.appendChild(edit);
    item.appendChild(note);
  }
  // The refused message's text goes back in the box (after what is there) and its bubble goes.
  function editRefused(clientId) {
    state.refused = state.refused.filter(function (r) {
      if (r.clientId !== clientId) return true;
      var kept = text.value.replace(/\s+$/, "");
      text.value = kept ? kept + "\n" + r.text : r.text;
      return false;
    });
    var item = itemOf(clientId);
    if (item) item.parentNode.removeChild(item);
    problem.textContent = "";
    save();
    text.focus();
  }

  function pendingOf(clientId) {
    for (var i = 0; i < state.pending.length; i++) {
      if (state.pending[i].clientId === clientId) return state.pending[i];
    }
    return null;
  }
  function itemOf(clientId) {
    return clientId ? log.querySelector('[data-client="' + clientId + '"]') : null;
  }
  function forget(clientId) {
    state.pending = state.pending.filter(function (p) { return p.clientId !== clientId; });
  }
  // Shown as taken: no longer sending, no note.
  function delivered(item) {
    item.className = item.className.replace(/ (sending|failed)/g, "");
    var note = item.querySelector(".note");
    if (note) item.removeChild(note);
  }
  // The server holds the message `clientId` (its id `id`): it is no longer pending.
  // The next one goes.
  function acknowledged(clientId, id) {
    var pending = pendingOf(clientId);
    if (!pending) return;
    clearTimeout(pending.timer);
    forget(clientId);
    var item = itemOf(clientId);
    var echo = log.querySelector('[data-id="' + id + '"]');
    // Shown once: an echo without its clientId (sent before echoes named it) may be shown already.
    if (item && echo && echo !== item) item.parentNode.removeChild(item);
    else if (item) { item.setAttribute("data-id", id); delivered(item); }
    flush();
  }

  /* Sends the oldest pending message if the socket is open and it is neither out already nor
   * waiting out a refusal; the others wait behind it: in order, one at a time. */
  function flush() {
    var head = state.pending[0];
    var socket = state.socket;
    if (!head || head.out || head.timer || !socket || socket.readyState !== 1) return;
    head.out = true;
    socket.send(frameOf(head));
    // A message neither acknowledged nor refused in time (a half-open connection, a server
    // that never answered) would hold up every one after it: the socket is dropped, and
    // opening again sends it again (the server records a clientId once).
    setTimeout(function () {
      if (state.pending[0] === head && head.out && state.socket === socket) socket.close();
    }, ACK_WAIT);
  }

  /* `pending` was not taken (`why`): shown as not sent with a Retry button, announced, and sent
   * again by itself after `wait` ms if the socket is open then. */
  function notSent(pending, why, wait) {
    var item = itemOf(pending.clientId);
    if (item) {
      item.className = item.className.replace(/ (sending|failed)/g, "") + " failed";
      var note = item.querySelector(".note");
      if (!note) {
        note = el("span", { "class": "note" }, "Not sent.");
        var again = el("button", { type: "button" }, "Retry");
        again.addEventListener("click", function () { retry(pending.clientId); });
        note.appendChild(again);
        item.appendChild(note);
      }
    }
    problem.textContent = "Your message was not sent" + (why ? ": " + why : ".") +
      " It will be sent again; you can also press Retry.";
    clearTimeout(pending.timer);
    pending.timer = wait ? setTimeout(function () { retry(pending.clientId, true); }, wait) : null;
  }

  /* Sends the oldest pending message again now, as it was (the same clientId: the server records
   * it once); `clientId`, whose Retry was pressed, may be waiting behind it. */
  function retry(clientId, quiet) {
    var pending = pendingOf(clientId);
    var head = state.pending[0];
    if (!pending) return;
    clearTimeout(head.timer);
    head.timer = null;
    head.out = false;
    [head, pending].forEach(function (p) {
      var item = itemOf(p.clientId);
      if (item && !quiet) item.className = item.className.replace(/ (sending|failed)/g, "") + " sending";
    });
    if (!quiet) problem.textContent = "";
    ensureVisitor().then(function () {
      if (state.socket && state.socket.readyState === 1) flush();
      else { state.retry = 0; connect(); }
    }).catch(function (e) { notSent(pending, e.message); });
  }
  function frameOf(pending) {
    return JSON.stringify({ type: pending.type, text: pending.text, clientId: pending.clientId });
  }

  function connect() {
    if (!state.token || state.socket) return;
    var socket = new WebSocket(wsBase + "?token=" + encodeURIComponent(state.token) + "&after=" + state.seq);
    state.socket = socket;
    var opened = 0;
    socket.onopen = function () {
      opened = Date.now();
      problem.textContent = "";
      // The oldest goes again, the others behind it.
      state.pending.forEach(function (p) { p.out = false; });
      flush();
      ackSeen();
    };
    socket.onmessage = onFrame;
    socket.onclose = function () {
      state.socket = null;
      // What was sent and not acknowledged may not have arrived: it goes again on reconnecting.
      state.pending.forEach(function (p) { p.out = false; notSent(p, "the connection was lost"); });
      // Refused upgrades (429 when over a limit) never open: the wait doubles up to a minute.
      // Only a socket that stayed open a while starts again from short waits, and each wait is
      // jittered, so visitors behind one proxy do not come back together.
      if (opened && Date.now() - opened > 30000) state.retry = 0;
      var wait = Math.min(60000, 1000 * Math.pow(2, state.retry++));
      setTimeout(connect, wait / 2 + Math.random() * wait / 2);
    };
  }

  /* One visitor per browser: callers while it is being created (opening the panel, then
   * sending before the answer came) wait for the same request. Two requests made two visitors:
   * the socket kept the first one's conversation, and the token saved, used by every reconnect
   * and reload after, was the second's, so the visitor's conversation was lost to them. */
  var creatingVisitor = null;
  function ensureVisitor() {
    if (state.token) return Promise.resolve();
    if (!creatingVisitor) {
      creatingVisitor = request("POST", "/visitors").then(function (visitor) {
        creatingVisitor = null;
        state.token = visitor.token;
        save();
      }, function (e) {
        creatingVisitor = null;
        throw e;
      });
    }
    return creatingVisitor;
  }

  function showInfo(info) {
    state.info = info;
    title.textContent = info.teamName;
    status.textContent = "";
    var dot = el("span", { "class": "dot" + (info.available ? " on" : ""), "aria-hidden": "true" });
    status.appendChild(dot);
    status.appendChild(document.createTextNode(info.available ? "Online. " + info.expectedReply : "Away right now."));
    emailNote.textContent = info.expectedReply;
    emailForm.hidden = !info.askEmail || state.emailGiven;
  }

  function setOpen(open) {
    state.open = open;
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      request("GET", "").then(showInfo).catch(function (e) { problem.textContent = e.message; });
      ensureVisitor().then(connect).catch(function (e) { problem.textContent = e.message; });
      text.focus();
      ackSeen();
    } else {
      launcher.focus();
    }
  }

  var typingSent = 0;
  var typingStop = null;
  function sendTyping(on) {
    if (state.socket && state.socket.readyState === 1) {
      state.socket.send(JSON.stringify({ type: "typing", typing: on }));
    }
  }
  text.addEventListener("input", function () {
    var now = Date.now();
    if (now - typingSent > 3000) { typingSent = now; sendTyping(true); }
    clearTimeout(typingStop);
    typingStop = setTimeout(function () { typingSent = 0; sendTyping(false); }, 4000);
  });
  text.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      composer.requestSubmit ? composer.requestSubmit() : composer.dispatchEvent(new Event("submit"));
    }
  });

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = text.value.trim();
    if (!body) return;
    var limit = (state.info && state.info.maxMessageChars) || 4000;
    if (body.length > limit) { problem.textContent = "Messages are at most " + limit + " characters."; return; }
    problem.textContent = "";
    text.value = "";
    clearTimeout(typingStop);
    typingSent = 0;
    var clientId = "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    var frame = { type: "message", text: body, clientId: clientId };
    // Escaped, a text of control characters grows past what the socket takes in one frame.
    if (new TextEncoder().encode(JSON.stringify(frame)).length > MAX_FRAME_BYTES) {
      text.value = body;
      problem.textContent = "This message is too long to send; please shorten it.";
      return;
    }
    var item = render({ from: "visitor", text: body }, true);
    item.setAttribute("data-client", clientId);
    state.pending.push(frame);
    save();
    ensureVisitor().then(function () {
      if (state.socket && state.socket.readyState === 1) flush();
      else connect();
    }).catch(function (e) { notSent(frame, e.message); });
  });

  // The address is kept with the conversation: before the visitor's first message it waits.
  function giveEmail() {
    var email = state.pendingEmail;
    if (!email || !state.token || !state.messages.some(function (m) { return m.from === "visitor"; })) return;
    state.pendingEmail = null;
    request("POST", "/contact", { email: email }).then(function () {
      state.emailGiven = true;
      save();
    }).catch(function (e) { problem.textContent = e.message; });
  }
  emailForm.addEventListener("submit", function (event) {
    event.preventDefault();
    state.pendingEmail = emailInput.value;
    emailForm.hidden = true;
    typing.textContent = "Thanks: we have your address, " + emailInput.value + ".";
    text.focus();
    giveEmail();
  });

  launcher.addEventListener("click", function () { setOpen(!state.open); });
  closeButton.addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") setOpen(false);
  });

  state.messages.forEach(function (m) { render(m); });
  state.refused.forEach(showRefused);
  // Left from an earlier page: not sent yet; they go when the socket opens.
  state.pending.forEach(function (p) {
    render({ from: "visitor", text: p.text }, true).setAttribute("data-client", p.clientId);
    notSent(p);
  });
  function mount() {
    document.body.appendChild(host);
    if (state.token) connect();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
