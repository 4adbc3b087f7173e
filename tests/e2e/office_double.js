/*
 * A test double for Office.js, served in place of /taskpane/office-js/office.js by the end-to-end tests.
 * It implements the part of the API the pane's host glue uses (src/hosts/*.ts), over the data the test
 * puts in `window.__officeDouble` before the page loads:
 *   { host: "outlook" | "word" | "none", sets: { Mailbox: "1.8", WordApi: "1.4" },
 *     theme: { bodyBackgroundColor: "#ffffff" },
 *     item: { subject, from: [name, address], to: [[name, address]], body, itemId (EWS form), mode: "read" | "compose" },
 *     document: { body, selection, mode (Word's changeTrackingMode, "Off" unless given) } }
 * Every call that changes Office (reply forms, insertions, tracking mode) is recorded in
 * `window.__officeCalls` for the test to check. Word's document is `window.__wordDocument`:
 *   { body, selection, mode (changeTrackingMode), trackedChanges: [{ type: "Deleted" | "Added", text }] }
 * As in Word, text inserted while the mode is not "Off" becomes tracked changes (the replaced text a
 * deletion, the new text an addition) for the user to accept or reject; with tracking off it just replaces.
 */
(function () {
  "use strict";
  var config = window.__officeDouble || { host: "none" };
  var calls = (window.__officeCalls = []);
  var Succeeded = "succeeded";
  function ok(value) { return { status: Succeeded, value: value, error: null }; }
  function later(fn) { setTimeout(fn, 5); }
  function person(pair) { return { displayName: pair[0], emailAddress: pair[1] }; }
  function atLeast(have, want) {
    if (have === undefined) return false;
    var a = String(have).split("."), b = String(want || "1.1").split(".");
    for (var i = 0; i < Math.max(a.length, b.length); i++) {
      var x = parseInt(a[i] || "0", 10), y = parseInt(b[i] || "0", 10);
      if (x !== y) return x > y;
    }
    return true;
  }
  var sets = config.sets || {};
  var HostType = { Word: "Word", Excel: "Excel", PowerPoint: "PowerPoint", Outlook: "Outlook", OneNote: "OneNote", Project: "Project", Access: "Access" };
  var EventType = { ItemChanged: "olkItemSelectedChanged", DocumentSelectionChanged: "documentSelectionChanged", OfficeThemeChanged: "officeThemeChanged" };
  var context = {
    requirements: { isSetSupported: function (name, version) { return atLeast(sets[name], version); } },
    officeTheme: config.theme || { bodyBackgroundColor: "#ffffff" },
    displayLanguage: "en-US",
  };

  if (config.host === "outlook") {
    var it = config.item || {};
    var item = {
      itemType: "message",
      itemId: it.itemId || "AAMkAGI2-test-item",
      conversationId: "AAQkAGI2-test-conversation",
      body: {
        getAsync: function (coercion, options, callback) {
          var cb = typeof options === "function" ? options : callback;
          later(function () { cb(ok(it.body || "")); });
        },
        setSelectedDataAsync: function (data, options, callback) {
          calls.push(["body.setSelectedDataAsync", data]);
          later(function () { (typeof options === "function" ? options : callback)(ok()); });
        },
      },
      categories: { addAsync: function (list, cb) { calls.push(["categories.addAsync", list]); later(function () { cb(ok()); }); } },
      displayReplyForm: function (data) { calls.push(["displayReplyForm", data]); },
      displayReplyAllForm: function (data) { calls.push(["displayReplyAllForm", data]); },
    };
    if (it.mode === "compose") {
      var asyncValue = function (value) { return { getAsync: function (cb) { later(function () { cb(ok(value)); }); } }; };
      item.subject = asyncValue(it.subject || "");
      item.subject.setAsync = function (value, cb) { calls.push(["subject.setAsync", value]); later(function () { cb(ok()); }); };
      item.to = asyncValue((it.to || []).map(person));
      item.cc = asyncValue([]);
    } else {
      item.subject = it.subject || "";
      item.from = person(it.from || ["", ""]);
      item.to = (it.to || []).map(person);
      item.cc = [];
      item.dateTimeCreated = new Date(it.date || "2026-11-20T09:12:00Z");
    }
    context.mailbox = {
      item: item,
      userProfile: { displayName: "Bob Lee", emailAddress: "bob@example.com" },
      // Office gives EWS ids; the REST (Graph) form swaps "/" and "+" for "-" and "_" (Mailbox 1.3).
      convertToRestId: function (id) {
        return String(id).replace(/\//g, "-").replace(/\+/g, "_");
      },
      addHandlerAsync: function () {},
      removeHandlerAsync: function () {},
    };
  }

  if (config.host === "word") {
    var doc = config.document || {};
    var state = (window.__wordDocument = {
      body: doc.body || "", selection: doc.selection || "", mode: doc.mode || "Off", trackedChanges: [],
    });
    context.document = {
      url: "C:\\Users\\bob\\Documents\\Supply agreement.docx",
      addHandlerAsync: function () {},
      removeHandlerAsync: function () {},
    };
    window.Word = {
      InsertLocation: { replace: "Replace", start: "Start", end: "End", before: "Before", after: "After" },
      ChangeTrackingMode: { off: "Off", trackAll: "TrackAll", trackMineOnly: "TrackMineOnly" },
      run: function (callback) {
        var range = {
          text: undefined,
          load: function () { range.text = state.selection; return range; },
          insertText: function (text, where) {
            // Queued after the mode was set in the same batch, so it runs under the mode set (as Word does).
            var mode = document_.changeTrackingMode;
            calls.push(["insertText", text, where, mode]);
            if (where !== "Replace") throw new Error("the double only models Replace, not " + where);
            if (mode !== "Off") {
              if (state.selection) state.trackedChanges.push({ type: "Deleted", text: state.selection });
              if (text) state.trackedChanges.push({ type: "Added", text: text });
            }
            var at = state.selection ? state.body.indexOf(state.selection) : -1;
            if (at >= 0) state.body = state.body.slice(0, at) + text + state.body.slice(at + state.selection.length);
            state.selection = text;
            return range;
          },
        };
        var body = { text: undefined, load: function () { body.text = state.body; return body; } };
        var document_ = {
          body: body,
          changeTrackingMode: state.mode,
          load: function () { document_.changeTrackingMode = state.mode; return document_; },
          getSelection: function () { return range; },
        };
        var ctx = {
          document: document_,
          sync: function () {
            if (document_.changeTrackingMode !== state.mode) {
              calls.push(["changeTrackingMode", document_.changeTrackingMode]);
              state.mode = document_.changeTrackingMode;
            }
            return new Promise(function (resolve) { later(resolve); });
          },
        };
        return Promise.resolve().then(function () { return callback(ctx); });
      },
    };
  }

  var info = {
    host: config.host === "outlook" ? HostType.Outlook : config.host === "word" ? HostType.Word : null,
    platform: config.host === "none" ? null : "PC",
  };
  window.Office = {
    HostType: HostType,
    EventType: EventType,
    CoercionType: { Text: "text", Html: "html" },
    MailboxEnums: { RestVersion: { v1_0: "v1.0", v2_0: "v2.0", Beta: "beta" } },
    AsyncResultStatus: { Succeeded: Succeeded, Failed: "failed" },
    context: context,
    onReady: function (callback) {
      return new Promise(function (resolve) {
        later(function () { if (callback) callback(info); resolve(info); });
      });
    },
  };
})();
