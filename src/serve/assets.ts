/**
 * The page's stylesheet and script, served by the server itself from
 * /static/ (the Content-Security-Policy allows no inline code and no other
 * origin): plain CSS and a little plain JavaScript, no build step, nothing
 * fetched from elsewhere, so the pages work offline.
 */

export const STYLE = `
:root {
  color-scheme: light dark;
  --bg: #fbfbfa; --fg: #1d1f21; --muted: #6b7075; --line: #e2e3e0; --head: #f1f2ef; --accent: #0b63c5;
  --danger: #b3261e; --ok: #1e7b34; --warn: #9a6700; --row: #f6f7f4;
  --mono: ui-monospace, "SF Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #16181a; --fg: #e6e6e3; --muted: #9aa0a6; --line: #2c2f33; --head: #1f2226; --accent: #6cb0ff;
    --danger: #ff8a80; --ok: #7bd88f; --warn: #e3b341; --row: #1b1e21; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header.top { display: flex; align-items: baseline; gap: 1rem; padding: .7rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--head); }
header.top .brand { font-weight: 700; color: var(--fg); text-decoration: none; }
header.top .where { color: var(--muted); font-family: var(--mono); font-size: 12.5px; overflow-wrap: anywhere; }
main { padding: 1rem 1.2rem 3rem; max-width: 1400px; }
h1 { font-size: 1.25rem; margin: .2rem 0 .8rem; overflow-wrap: anywhere; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.muted { color: var(--muted); }
.mono, code, pre { font-family: var(--mono); font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .32rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; background: var(--head); }
td.num, th.num { text-align: right; white-space: nowrap; }
td.time, table.backups td.name { white-space: nowrap; }
tbody.chain + tbody.chain tr:first-child td { border-top: 2px solid var(--line); }
${[1, 2, 3, 4, 5, 6, 7, 8].map((d) => `tr.delta.d${d} td.name { padding-left: ${(0.6 + d * 1.1).toFixed(1)}rem; }`).join('\n')}
tr.delta td.name::before { content: "\\21B3  "; color: var(--muted); }
tr.expired td { color: var(--muted); }
.badge { display: inline-block; padding: 0 .4rem; border-radius: .6rem; font-size: 11.5px; border: 1px solid var(--line); color: var(--muted); white-space: nowrap; }
.badge.expired { color: var(--danger); border-color: var(--danger); }
.badge.soon { color: var(--warn); border-color: var(--warn); }
.actions { white-space: nowrap; }
.actions a, .actions button { margin-right: .6rem; }
table.ls { width: auto; min-width: min(60rem, 100%); }
table.ls td { font-family: var(--mono); font-size: 12.5px; white-space: nowrap; padding-top: .18rem; padding-bottom: .18rem; }
table.ls td.name { white-space: pre-wrap; overflow-wrap: anywhere; }
table.ls tr:hover td { background: var(--row); }
.target { color: var(--muted); }
h1.crumbs { font-family: var(--mono); font-size: 1.1rem; font-weight: 600; margin: .2rem 0 .8rem; overflow-wrap: anywhere; }
h1.crumbs .sep { color: var(--muted); margin: 0 .3rem; font-weight: 400; }
.toolbar { display: flex; flex-wrap: wrap; gap: .6rem 1rem; align-items: center; margin: 0 0 .9rem; }
.toolbar form { display: flex; gap: .5rem; align-items: center; margin: 0; }
input[type=text], input[type=search], select { font: inherit; padding: .3rem .5rem; border: 1px solid var(--line); border-radius: 4px; background: var(--bg); color: var(--fg); }
input.wide { width: min(40rem, 100%); font-family: var(--mono); }
button, .button { font: inherit; padding: .32rem .8rem; border-radius: 4px; border: 1px solid var(--line); background: var(--head); color: var(--fg); cursor: pointer; display: inline-block; }
button.primary, .button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.danger, .button.danger { background: var(--danger); border-color: var(--danger); color: #fff; }
button.link { border: 0; background: none; padding: 0; color: var(--accent); }
.pager { display: flex; gap: 1rem; align-items: center; margin: .7rem 0; }
.notice { padding: .6rem .8rem; border: 1px solid var(--line); border-left: 4px solid var(--warn); background: var(--head); margin: .8rem 0; }
.notice.ok { border-left-color: var(--ok); }
.notice.error { border-left-color: var(--danger); }
.confirm { max-width: 50rem; padding: 1rem 1.2rem; border: 1px solid var(--line); border-radius: 6px; background: var(--head); }
.confirm label { display: block; margin: .6rem 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1.2rem; margin: 0 0 1rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; font-family: var(--mono); font-size: 12.5px; overflow-wrap: anywhere; }
pre.text { padding: .8rem 1rem; border: 1px solid var(--line); border-radius: 6px; background: var(--head); overflow: auto; max-height: 75vh; white-space: pre; tab-size: 4; }
progress { width: min(36rem, 100%); height: 1rem; }
.job p { margin: .4rem 0; }
ul.plain { padding-left: 1.1rem; }
footer { color: var(--muted); font-size: 12px; padding: 0 1.2rem 1.2rem; }
`;

export const SCRIPT = `
'use strict';
(function () {
  // The backups page: filter by name as one types (the form also works without script).
  var filter = document.getElementById('filter');
  if (filter) {
    var apply = function () {
      var q = filter.value.trim().toLowerCase();
      var shown = 0;
      document.querySelectorAll('tbody.chain').forEach(function (group) {
        var any = false;
        group.querySelectorAll('tr[data-name]').forEach(function (row) {
          var hit = q === '' || row.getAttribute('data-name').toLowerCase().indexOf(q) >= 0;
          row.hidden = !hit;
          if (hit) { any = true; shown++; }
        });
        group.hidden = !any;
      });
      var count = document.getElementById('count');
      if (count) count.textContent = String(shown);
    };
    filter.addEventListener('input', apply);
    var sort = document.getElementById('sort');
    if (sort) sort.addEventListener('change', function () { sort.form.submit(); });
  }

  // A restore's page: its progress, live.
  var job = document.querySelector('[data-job-status]');
  if (job) {
    var url = job.getAttribute('data-job-status');
    var set = function (id, text) { var el = document.getElementById(id); if (el) el.textContent = text; };
    var bar = function (id, value, max) { var el = document.getElementById(id); if (el) { el.max = max || 1; el.value = value; } };
    var tick = function () {
      fetch(url, { credentials: 'same-origin', cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (s) {
        set('job-state', s.state);
        set('job-download', s.downloadedText);
        set('job-extract', s.extractedText);
        set('job-elapsed', s.elapsedText);
        bar('job-download-bar', s.downloaded, s.total);
        bar('job-extract-bar', Math.min(s.entries, s.entriesTotal), s.entriesTotal);
        job.setAttribute('data-state', s.state);
        if (s.state === 'running') { setTimeout(tick, 200); return; }
        var done = document.getElementById('job-done');
        if (done) { done.hidden = false; done.className = 'notice ' + (s.state === 'done' ? 'ok' : 'error'); done.textContent = s.message; }
        var cancel = document.getElementById('job-cancel');
        if (cancel) cancel.hidden = true;
      }).catch(function () { setTimeout(tick, 1000); });
    };
    tick();
  }
})();
`;
