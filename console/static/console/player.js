/* The take player: audio streamed with Range, its waveform, and the transcript beside it with the
 * word being spoken highlighted, click-to-seek, keyboard control and corrections.
 *
 * Everything comes from data-* attributes on each .player (templates/console/media/player.html):
 * the CSP allows no inline script or style. No dependency: the waveform is drawn here on a <canvas>
 * from the min/max peaks the console computes from the decrypted audio (/media/takes/N/peaks), rather
 * than with wavesurfer.js, because wavesurfer 7 renders into a shadow DOM with an injected <style>
 * element and inline style attributes, which that CSP (style-src 'self') blocks; drawing 800 bars is
 * a few lines, and there is then no vendored library to keep patched.
 */
(function () {
  "use strict";

  var BACK_SECONDS = 5;
  var HIGHLIGHT_GAP = 0.5; // keep a word lit this long after it ends, so short pauses do not flicker
  var players = [];
  var lastActive = null;

  function Player(root) {
    this.root = root;
    this.id = root.dataset.recordingId;
    this.audio = root.querySelector("audio.take-audio");
    this.canvas = root.querySelector("canvas.waveform");
    this.speed = root.querySelector("select.playback-speed");
    this.box = root.querySelector(".transcript");
    this.versionLabel = root.querySelector(".transcript-version");
    this.meta = root.querySelector(".transcript-meta");
    this.correctButton = root.querySelector("button.correct-selection");
    this.editor = root.querySelector(".correction-editor");
    this.input = root.querySelector("#correction-text-" + this.id);
    this.saveButton = root.querySelector("button.save-correction");
    this.cancelButton = root.querySelector("button.cancel-correction");
    this.spanLabel = root.querySelector(".correction-span");
    this.message = root.querySelector(".correction-message");
    this.threshold = parseFloat(root.dataset.lowConfidence || "0.6");
    this.words = [];
    this.spans = [];
    this.version = null;
    this.selection = null; // {start, end}: word indices, inclusive
    this.anchor = null;
    this.now = -1;
    this.peaks = null;
    this.drawnAt = -1;
    this.frame = null;
    this.wire();
    this.loadTranscript();
    this.loadPeaks();
  }

  Player.prototype.wire = function () {
    var self = this;
    var audio = this.audio;
    ["timeupdate", "seeked", "seeking", "loadedmetadata"].forEach(function (name) {
      audio.addEventListener(name, function () { self.follow(); });
    });
    audio.addEventListener("play", function () { lastActive = self; self.loop(); });
    // While Chromium's own audio controls have focus the page gets no key presses, so after the
    // built-in play button is used, focus moves to the transcript and the player's keys keep working.
    ["play", "pause"].forEach(function (name) {
      audio.addEventListener(name, function () {
        if (document.activeElement === audio) { self.box.focus({ preventScroll: true }); }
      });
    });
    audio.addEventListener("error", function () { self.say("The audio could not be loaded."); });
    audio.addEventListener("ratechange", function () {
      var option = self.speed && self.speed.querySelector('option[value="' + audio.playbackRate + '"]');
      if (option) { self.speed.value = option.value; }
    });
    if (this.speed) {
      this.speed.addEventListener("change", function () { audio.playbackRate = parseFloat(self.speed.value) || 1; });
    }
    this.box.addEventListener("click", function (event) { self.clickWord(event); });
    this.box.addEventListener("mouseup", function () { self.takeTextSelection(); });
    this.box.addEventListener("keyup", function () { self.takeTextSelection(); });
    this.root.addEventListener("focusin", function () { lastActive = self; });
    this.root.addEventListener("pointerdown", function () { lastActive = self; });
    this.correctButton.addEventListener("click", function () { self.openEditor(); });
    this.saveButton.addEventListener("click", function () { self.save(); });
    this.cancelButton.addEventListener("click", function () { self.closeEditor(); });
    this.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); self.save(); }
      if (event.key === "Escape") { event.preventDefault(); self.closeEditor(); }
    });
    if (this.canvas) {
      this.canvas.addEventListener("click", function (event) { self.clickWaveform(event); });
      window.addEventListener("resize", function () { self.drawnAt = -1; self.draw(); });
    }
  };

  Player.prototype.say = function (text) { this.message.textContent = text; };

  Player.prototype.getJSON = function (url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().catch(function () { return { error: problemText(response.status, "It could not be loaded") }; })
          .then(function (body) { return { status: response.status, body: body }; });
      });
  };

  // --- the transcript --------------------------------------------------------------------------------

  Player.prototype.loadTranscript = function () {
    var self = this;
    return this.getJSON(this.root.dataset.transcriptUrl).then(function (reply) {
      if (reply.status !== 200) {
        self.showStatus(reply.body.error || "The transcript could not be loaded.");
        return;
      }
      self.render(reply.body);
    }).catch(function () { self.showStatus("The transcript could not be loaded."); });
  };

  Player.prototype.showStatus = function (text) {
    this.box.textContent = "";
    var note = document.createElement("p");
    note.className = "muted transcript-status";
    note.textContent = text;
    this.box.appendChild(note);
  };

  Player.prototype.render = function (doc) {
    this.words = doc.words || [];
    this.spans = [];
    this.now = -1;
    this.selection = this.anchor = null;
    this.closeEditor();
    if (typeof doc.low_confidence === "number") { this.threshold = doc.low_confidence; }
    if (doc.status !== "done" || doc.version == null) {
      this.version = null;
      this.versionLabel.textContent = "No transcript";
      this.meta.textContent = "";
      this.showStatus(doc.message || "The transcript is not ready yet.");
      this.updateButton();
      return;
    }
    this.version = doc.version;
    this.versionLabel.textContent = "Version " + doc.version;
    this.meta.textContent = doc.machine ? "machine transcript"
      : "corrected by " + (doc.author || "a former account") + ", " + new Date(doc.created_at).toLocaleString("en-GB");
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < this.words.length; i++) {
      var word = this.words[i];
      var span = document.createElement("span");
      span.className = "word";
      if (word.corrected) { span.classList.add("corrected"); }
      else if (word.confidence < this.threshold) { span.classList.add("low"); }
      span.dataset.start = word.start;
      span.dataset.end = word.end;
      span.dataset.index = i;
      span.title = word.corrected ? "corrected" : "confidence " + Math.round(word.confidence * 100) + "%";
      span.textContent = word.text;
      fragment.appendChild(span);
      fragment.appendChild(document.createTextNode(" "));
      this.spans.push(span);
    }
    this.box.textContent = "";
    if (!this.words.length) { this.showStatus("The transcript has no words (nothing was heard)."); }
    this.box.appendChild(fragment);
    this.updateButton();
    this.follow();
  };

  // The word at time t: the last one started, while it lasts (and a moment after).
  Player.prototype.wordAt = function (t) {
    var low = 0, high = this.words.length - 1, found = -1;
    while (low <= high) {
      var middle = (low + high) >> 1;
      if (this.words[middle].start <= t) { found = middle; low = middle + 1; } else { high = middle - 1; }
    }
    if (found >= 0 && t > this.words[found].end + HIGHLIGHT_GAP) { return -1; }
    return found;
  };

  Player.prototype.setNow = function (index) {
    if (index === this.now) { return; }
    if (this.now >= 0 && this.spans[this.now]) { this.spans[this.now].classList.remove("now"); }
    this.now = index;
    if (index >= 0 && this.spans[index]) {
      this.spans[index].classList.add("now");
      if (!this.audio.paused) { this.keepVisible(this.spans[index]); }
    }
  };

  // Scroll the transcript box, not the page, so the spoken word stays in view.
  Player.prototype.keepVisible = function (span) {
    var box = this.box;
    var top = span.offsetTop - box.offsetTop;
    if (top < box.scrollTop || top + span.offsetHeight > box.scrollTop + box.clientHeight) {
      box.scrollTop = Math.max(0, top - box.clientHeight / 3);
    }
  };

  Player.prototype.follow = function () {
    this.setNow(this.wordAt(this.audio.currentTime));
    this.draw();
  };

  // timeupdate fires only about four times a second; follow every frame while playing as well.
  Player.prototype.loop = function () {
    var self = this;
    if (this.frame !== null) { return; }
    var step = function () {
      self.follow();
      if (self.audio.paused || self.audio.ended) { self.frame = null; return; }
      self.frame = window.requestAnimationFrame(step);
    };
    this.frame = window.requestAnimationFrame(step);
  };

  Player.prototype.seek = function (seconds) {
    this.audio.currentTime = Math.max(0, seconds);
    this.follow();
  };

  Player.prototype.clickWord = function (event) {
    var span = event.target.closest ? event.target.closest(".word") : null;
    if (!span || !this.box.contains(span)) { return; }
    var index = parseInt(span.dataset.index, 10);
    lastActive = this;
    if (event.shiftKey || event.ctrlKey || event.metaKey || event.altKey) {
      // A modifier click chooses words to correct: from the last word clicked to this one.
      event.preventDefault();
      var from = this.anchor === null ? index : this.anchor;
      this.select(Math.min(from, index), Math.max(from, index));
      return;
    }
    var chosen = window.getSelection && window.getSelection();
    if (chosen && !chosen.isCollapsed && this.box.contains(chosen.anchorNode)) { return; } // the end of a drag
    this.anchor = index;
    this.select(index, index);
    this.seek(this.words[index].start);
  };

  Player.prototype.select = function (start, end) {
    this.spans.forEach(function (span, i) { span.classList.toggle("selected", i >= start && i <= end); });
    this.selection = { start: start, end: end };
    this.updateButton();
  };

  // Text selected across words becomes the words it touches (a word counts if any of its letters are in it).
  Player.prototype.takeTextSelection = function () {
    var chosen = window.getSelection && window.getSelection();
    if (!chosen || chosen.isCollapsed || !chosen.rangeCount) { return; }
    var range = chosen.getRangeAt(0);
    if (!this.box.contains(range.commonAncestorContainer)) { return; }
    var first = -1, last = -1;
    for (var i = 0; i < this.spans.length; i++) {
      if (!range.intersectsNode(this.spans[i])) { continue; }
      var part = document.createRange();
      part.selectNodeContents(this.spans[i]);
      if (range.compareBoundaryPoints(Range.START_TO_START, part) > 0) { part.setStart(range.startContainer, range.startOffset); }
      if (range.compareBoundaryPoints(Range.END_TO_END, part) < 0) { part.setEnd(range.endContainer, range.endOffset); }
      if (part.toString().trim() === "") { continue; }
      if (first < 0) { first = i; }
      last = i;
    }
    if (first >= 0) { this.anchor = first; this.select(first, last); }
  };

  Player.prototype.updateButton = function () {
    this.correctButton.disabled = this.version === null || this.selection === null;
    if (this.selection) {
      var count = this.selection.end - this.selection.start + 1;
      this.correctButton.textContent = count === 1 ? "Correct this word" : "Correct these " + count + " words";
    } else {
      this.correctButton.textContent = "Correct selected words";
    }
  };

  // --- corrections ---------------------------------------------------------------------------------

  Player.prototype.openEditor = function () {
    if (!this.selection || this.version === null) { this.say("Click a word, or select several, first."); return; }
    var texts = [];
    for (var i = this.selection.start; i <= this.selection.end; i++) { texts.push(this.words[i].text); }
    this.input.value = texts.join(" ");
    this.spanLabel.textContent = this.selection.start === this.selection.end
      ? "(word " + (this.selection.start + 1) + ")"
      : "(words " + (this.selection.start + 1) + " to " + (this.selection.end + 1) + ")";
    this.editor.hidden = false;
    this.say("");
    this.input.focus();
    this.input.select();
  };

  Player.prototype.closeEditor = function () {
    if (this.editor) { this.editor.hidden = true; }
  };

  Player.prototype.save = function () {
    var self = this;
    if (!this.selection || this.version === null || this.saving) { return; }
    this.saving = true;
    this.saveButton.disabled = true;
    this.say("Saving…");
    fetch(this.root.dataset.correctionsUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": this.root.dataset.csrfToken },
      body: JSON.stringify({ base_version: this.version, start: this.selection.start, end: this.selection.end, text: this.input.value })
    }).then(function (response) {
      return response.json().catch(function () {
        return { error: problemText(response.status, "The correction could not be saved") };
      }).then(function (body) { return { status: response.status, body: body }; });
    }).then(function (reply) {
      if (reply.status === 200) {
        self.render(reply.body);
        self.say("Saved as version " + reply.body.version + ".");
      } else if (reply.status === 409) {
        self.say(reply.body.error);
        return self.loadTranscript().then(function () { self.say(reply.body.error); });
      } else {
        self.say(reply.body.error || "The correction could not be saved.");
      }
    }).catch(function () {
      self.say("The correction could not be saved: the console did not answer.");
    }).then(function () {
      self.saving = false;
      self.saveButton.disabled = false;
    });
  };

  // --- the waveform ----------------------------------------------------------------------------------

  Player.prototype.loadPeaks = function () {
    var self = this;
    if (!this.canvas) { return; }
    this.getJSON(this.root.dataset.peaksUrl).then(function (reply) {
      if (reply.status === 200) { self.peaks = reply.body; self.drawnAt = -1; self.draw(); }
    }).catch(function () { /* the player works without its waveform */ });
  };

  Player.prototype.duration = function () {
    var d = this.audio.duration;
    if (isFinite(d) && d > 0) { return d; }
    return this.peaks ? this.peaks.duration : 0;
  };

  Player.prototype.draw = function () {
    var canvas = this.canvas;
    if (!canvas || !this.peaks) { return; }
    var ratio = window.devicePixelRatio || 1;
    var width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    var height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    var duration = this.duration();
    var played = duration ? Math.round(Math.min(1, this.audio.currentTime / duration) * width) : 0;
    if (canvas.width === width && canvas.height === height && played === this.drawnAt) { return; }
    canvas.width = width;
    canvas.height = height;
    this.drawnAt = played;
    var style = window.getComputedStyle(canvas);
    var playedColour = style.getPropertyValue("--wave-played").trim() || "#0b5cad";
    var restColour = style.getPropertyValue("--wave-rest").trim() || "#9aa5b1";
    var context = canvas.getContext("2d");
    context.clearRect(0, 0, width, height);
    var minima = this.peaks.min, maxima = this.peaks.max, count = minima.length;
    var middle = height / 2, barWidth = Math.max(1, width / count);
    for (var i = 0; i < count; i++) {
      var x = i * width / count;
      var top = middle - maxima[i] * middle, bottom = middle - minima[i] * middle;
      context.fillStyle = x < played ? playedColour : restColour;
      context.fillRect(x, top, barWidth, Math.max(1, bottom - top));
    }
    context.fillStyle = playedColour;
    context.fillRect(Math.min(played, width - 1), 0, Math.max(1, ratio), height);
  };

  Player.prototype.clickWaveform = function (event) {
    var box = this.canvas.getBoundingClientRect();
    if (!box.width) { return; }
    lastActive = this;
    this.seek((event.clientX - box.left) / box.width * this.duration());
  };

  // --- keys ----------------------------------------------------------------------------------------

  Player.prototype.togglePlay = function () {
    if (this.audio.paused) {
      var playing = this.audio.play();
      if (playing && playing.catch) { playing.catch(function () { /* refused (e.g. no audio): the error event says so */ }); }
    } else {
      this.audio.pause();
    }
  };

  Player.prototype.nextLowWord = function () {
    var t = this.audio.currentTime, count = this.words.length, from = 0;
    while (from < count && this.words[from].start <= t + 0.01) { from++; } // the first word after now
    for (var step = 0; step < count; step++) {
      var i = (from + step) % count; // wraps round to the first after the last
      if (this.spans[i] && this.spans[i].classList.contains("low")) {
        this.anchor = i;
        this.select(i, i);
        this.seek(this.words[i].start);
        this.setNow(i);
        this.keepVisible(this.spans[i]);
        return;
      }
    }
    this.say("No words are marked unsure in this version.");
  };

  // What to tell the handler when the console answers with a page instead of JSON.
  function problemText(status, what) {
    if (status === 401) { return what + ": you are signed out. Sign in again, then retry."; }
    if (status === 400) { return what + ": the console refused the request. Reload the page and try again."; }
    return what + " (the console answered " + status + "). Try again; if it happens again, tell an admin.";
  }

  function isTyping(target) {
    return !!(target && target.closest && target.closest("input, textarea, select, [contenteditable]"));
  }

  function activePlayer() {
    var focused = document.activeElement;
    for (var i = 0; i < players.length; i++) {
      if (players[i].root.contains(focused)) { return players[i]; }
    }
    return lastActive || players[0] || null;
  }

  function onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) { return; }
    var player = activePlayer();
    if (!player) { return; }
    var nativeControl = event.target.closest && event.target.closest("button, a, audio");
    var key = event.key;
    if ((key === " " || key === "k" || key === "K") && !(key === " " && nativeControl)) {
      event.preventDefault();
      player.togglePlay();
    } else if ((key === "j" || key === "J" || key === "ArrowLeft") && !(key === "ArrowLeft" && nativeControl)) {
      event.preventDefault();
      player.seek(player.audio.currentTime - BACK_SECONDS);
    } else if (key === "n" || key === "N") {
      event.preventDefault();
      player.nextLowWord();
    }
  }

  function start() {
    var roots = document.querySelectorAll(".player[data-recording-id]");
    for (var i = 0; i < roots.length; i++) { players.push(new Player(roots[i])); }
    if (players.length) { document.addEventListener("keydown", onKey); }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
