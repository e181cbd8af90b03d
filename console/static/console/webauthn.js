// Security keys (WebAuthn): signing in with one (#use-security-key on the second-factor page) and
// adding one (#add-security-key on the account page). The server sends py_webauthn's options JSON, in
// which binary values are base64url; this turns them into ArrayBuffers for the browser, and the
// browser's answer back into JSON. URLs and the CSRF token come from the button's data- attributes
// (the console's Content-Security-Policy allows no inline script).
(function () {
  "use strict";

  function toBuffer(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var text = atob(base64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBuffer(item.id), transports: item.transports };
    });
  }

  function postJson(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error || "The console refused that (" + response.status + "). Reload the page and try again.");
          error.redirect = data.redirect;
          throw error;
        }
        return data;
      });
    });
  }

  function messageArea() {
    return document.getElementById("webauthn-message");
  }

  function show(text) {
    var area = messageArea();
    if (area) { area.textContent = text; area.hidden = false; }
  }

  function clear() {
    var area = messageArea();
    if (area) { area.textContent = ""; area.hidden = true; }
  }

  function explain(error) {
    if (error && error.name === "NotAllowedError") {
      return "The security key was not used (cancelled, or it took too long). Try again.";
    }
    if (error && error.name === "InvalidStateError") {
      return "That security key is registered already.";
    }
    return (error && error.message) || "Something went wrong with the security key.";
  }

  function signIn(button) {
    clear();
    button.disabled = true;
    postJson(button.dataset.optionsUrl, button.dataset.csrf, {})
      .then(function (options) {
        options.challenge = toBuffer(options.challenge);
        options.allowCredentials = descriptors(options.allowCredentials);
        return navigator.credentials.get({ publicKey: options });
      })
      .then(function (credential) {
        var response = credential.response;
        return postJson(button.dataset.verifyUrl, button.dataset.csrf, {
          credential: {
            id: credential.id,
            rawId: toBase64url(credential.rawId),
            type: credential.type,
            authenticatorAttachment: credential.authenticatorAttachment || null,
            clientExtensionResults: credential.getClientExtensionResults(),
            response: {
              clientDataJSON: toBase64url(response.clientDataJSON),
              authenticatorData: toBase64url(response.authenticatorData),
              signature: toBase64url(response.signature),
              userHandle: response.userHandle ? toBase64url(response.userHandle) : null
            }
          }
        });
      })
      .then(function (result) { window.location.assign(result.redirect); })
      .catch(function (error) {
        if (error.redirect) { window.location.assign(error.redirect); return; }
        show(explain(error));
        button.disabled = false;
      });
  }

  function register(button) {
    clear();
    var labelInput = document.getElementById("security-key-label");
    var label = labelInput ? labelInput.value.trim() : "";
    if (!label) { show("Give the key a name first."); return; }
    button.disabled = true;
    postJson(button.dataset.optionsUrl, button.dataset.csrf, { label: label })
      .then(function (options) {
        options.challenge = toBuffer(options.challenge);
        options.user.id = toBuffer(options.user.id);
        options.excludeCredentials = descriptors(options.excludeCredentials);
        return navigator.credentials.create({ publicKey: options });
      })
      .then(function (credential) {
        var response = credential.response;
        return postJson(button.dataset.verifyUrl, button.dataset.csrf, {
          label: label,
          credential: {
            id: credential.id,
            rawId: toBase64url(credential.rawId),
            type: credential.type,
            authenticatorAttachment: credential.authenticatorAttachment || null,
            clientExtensionResults: credential.getClientExtensionResults(),
            response: {
              clientDataJSON: toBase64url(response.clientDataJSON),
              attestationObject: toBase64url(response.attestationObject),
              transports: response.getTransports ? response.getTransports() : []
            }
          }
        });
      })
      .then(function (result) { window.location.assign(result.redirect); })
      .catch(function (error) {
        show(explain(error));
        button.disabled = false;
      });
  }

  function wire(id, action) {
    var button = document.getElementById(id);
    if (!button) { return; }
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      show("This browser cannot use security keys.");
      return;
    }
    button.addEventListener("click", function () { action(button); });
  }

  wire("use-security-key", signIn);
  wire("add-security-key", register);
})();
