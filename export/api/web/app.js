// worklog web page (SPEC §11). Plain JavaScript, no framework, no build step.
//
// Everything the page shows comes from the public API, called with the
// bearer token the user enters. The token lives in the variable `token`
// for this tab only: never in a URL, a cookie or storage. The filter
// builder, the table columns and the download buttons are built from the
// API's catalogue (GET /api/mind/catalog/reporting_worklog), so the page
// holds no list of fields, comparators or formats of its own.
'use strict';

(() => {
  const API = '/api/mind';
  const EXPORT_PATH = API + '/export/reporting_worklog';
  const CATALOG_PATH = API + '/catalog/reporting_worklog';
  const CONFIG_PATH = '/ui/config.json';

  let token = ''; // the bearer token of this tab; see the header comment
  let catalog = null; // the catalogue answered for this token
  let filterSeq = 0; // next filters[i] index (indices need not be contiguous)
  let previewSeq = 0; // guards against a late answer overwriting a newer one
  let applied = null; // the query of the preview shown: paging keeps it
  let offset = 0;
  let pageTotal = 0;
  let view = 'export'; // the view shown: export or analytics
  let analyticsSeq = 0; // as previewSeq, for the analytics requests

  const $ = (id) => document.getElementById(id);

  // ATTRS are set as attributes by el: they have no property, or one that
  // does not mean the same (spellcheck="false" as a property is truthy).
  const ATTRS = new Set(['role', 'for', 'spellcheck', 'list', 'scope']);

  // el builds an element: props are set as properties, except names with a
  // dash (data-*, aria-*) and ATTRS, which are attributes; children are nodes
  // or text. A prop that is undefined, null or false is left out.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.includes('-') || ATTRS.has(k)) e.setAttribute(k, v === true ? '' : v);
      else e[k] = v;
    }
    for (const c of children) e.append(c);
    return e;
  }

  // ApiError is an API error body {"error":{"code","message","param"}}.
  class ApiError extends Error {
    constructor(status, code, message, param) {
      super(message);
      this.status = status;
      this.code = code;
      this.param = param || '';
    }
  }

  async function errorOf(resp) {
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      // not JSON: fall through to the status text
    }
    const e = body && body.error;
    if (e && e.message) return new ApiError(resp.status, e.code, e.message, e.param);
    return new ApiError(resp.status, 'http_' + resp.status, `The server answered ${resp.status} ${resp.statusText}.`);
  }

  // apiFetch calls the API with the bearer token and throws ApiError for
  // any answer that is not 2xx.
  async function apiFetch(path, params) {
    const url = params ? path + '?' + params.toString() : path;
    let resp;
    try {
      resp = await fetch(url, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
    } catch (err) {
      throw new ApiError(0, 'network', 'The server could not be reached: ' + err.message);
    }
    if (!resp.ok) throw await errorOf(resp);
    return resp;
  }

  // ---- errors next to the control that caused them ----

  // controlFor finds the control an error's param names, trying the param
  // and then its shorter prefixes: filters[2][values][] → filters[2][values]
  // → filters[2] → filters.
  function controlFor(param) {
    let p = param;
    while (p) {
      const c = document.querySelector(`[data-param="${CSS.escape(p)}"]`);
      if (c && !c.closest('[hidden]')) return c;
      const shorter = p.replace(/\[[^\]]*\]$/, '');
      if (shorter === p) break;
      p = shorter;
    }
    return null;
  }

  function showErrorAt(control, message) {
    const id = control.id + '-error';
    let msg = document.getElementById(id);
    if (!msg) {
      msg = el('p', { id, className: 'error field-error', role: 'alert' });
      if (control.tagName === 'FIELDSET') control.append(msg);
      else control.after(msg);
    }
    msg.textContent = message;
    control.setAttribute('aria-invalid', 'true');
    const described = (control.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    if (!described.includes(id)) control.setAttribute('aria-describedby', described.concat(id).join(' '));
  }

  function clearErrors() {
    for (const m of document.querySelectorAll('.field-error')) {
      const control = document.querySelector(`[aria-describedby~="${m.id}"]`);
      if (control) {
        control.removeAttribute('aria-invalid');
        const rest = control.getAttribute('aria-describedby').split(' ').filter((x) => x !== m.id);
        if (rest.length) control.setAttribute('aria-describedby', rest.join(' '));
        else control.removeAttribute('aria-describedby');
      }
      m.remove();
    }
    for (const id of ['page-error', 'export-error']) {
      $(id).hidden = true;
      $(id).textContent = '';
    }
  }

  // describe turns an API error into a sentence for the user.
  function describe(err) {
    switch (err.status) {
      case 401:
        return 'The token was not accepted: ' + err.message + '. Sign in again with a valid token.';
      case 403:
        return 'Not allowed: ' + err.message;
      case 429:
        return 'The server is busy: ' + err.message;
      default:
        return err.message;
    }
  }

  // showError puts an error next to its control, or in the view's error
  // line when no control matches.
  function showError(err, fallbackId) {
    const control = err.param ? controlFor(err.param) : null;
    if (control) {
      showErrorAt(control, describe(err));
      return;
    }
    const box = $(fallbackId || 'export-error');
    box.textContent = (err.param ? err.param + ': ' : '') + describe(err);
    box.hidden = false;
  }

  // ---- sign-in ----

  async function signIn(value) {
    clearErrors();
    token = value.trim();
    if (!token) {
      showErrorAt($('token'), 'Enter a bearer token.');
      return;
    }
    let cat;
    try {
      cat = await (await apiFetch(CATALOG_PATH)).json();
    } catch (err) {
      token = '';
      showErrorAt($('token'), describe(err));
      return;
    }
    catalog = cat;
    $('signout-button').hidden = false;
    showPrivacy();
    buildExportView();
    buildAnalyticsView();
    $('views').hidden = false;
    $('query-form').hidden = false;
    setView('export');
    await runPreview(0);
  }

  function signOut() {
    token = '';
    catalog = null;
    applied = null;
    $('token').value = '';
    $('signout-button').hidden = true;
    $('privacy').hidden = true;
    $('views').hidden = true;
    $('query-form').hidden = true;
    for (const e of document.querySelectorAll('main [data-view]')) e.hidden = true;
    $('charts').replaceChildren();
    $('groups-table').replaceChildren();
    $('groups-total').textContent = '';
    $('filter-list').replaceChildren();
    $('preview-table').replaceChildren();
    $('download-status').replaceChildren();
    $('total').textContent = '';
    $('page-info').textContent = '';
    clearErrors();
    $('token').focus();
  }

  function showPrivacy() {
    const parts = [`Privacy level in force: ${catalog.privacyLevel}.`];
    if (catalog.omittedFields > 0) {
      parts.push(`${catalog.omittedFields} ${catalog.omittedFields === 1 ? 'field is' : 'fields are'} omitted at this level and not shown.`);
    }
    const dateOnly = catalog.fields.filter((f) => f.treatment === 'dateOnly').map((f) => f.name);
    if (dateOnly.length) parts.push(`${dateOnly.join(', ')}: day only, no time of day.`);
    const pseudo = catalog.fields.filter((f) => f.treatment === 'pseudonym').map((f) => f.name);
    if (pseudo.length) parts.push(`${pseudo.join(', ')}: pseudonyms, not real names.`);
    $('privacy').textContent = parts.join(' ');
    $('privacy').hidden = false;
  }

  // ---- the filter builder ----

  function fieldByName(name) {
    return catalog.fields.find((f) => f.name === name);
  }

  function comparatorByName(name) {
    return catalog.comparators.find((c) => c.name === name);
  }

  function control(labelText, input) {
    return el('div', { className: 'control' }, el('label', { for: input.id }, labelText), input);
  }

  function renumberFilters() {
    const rows = $('filter-list').querySelectorAll('.filter');
    rows.forEach((row, n) => {
      row.querySelector('legend').textContent = `Filter ${n + 1}`;
      row.querySelector('.remove').setAttribute('aria-label', `Remove filter ${n + 1}`);
    });
  }

  function addFilter() {
    const i = filterSeq++;
    const prefix = `filters[${i}]`;
    const row = el('fieldset', { className: 'filter', id: `filter-${i}`, 'data-param': prefix, 'data-index': i });
    const key = el('select', { id: `f${i}-key`, 'data-param': prefix + '[key]' });
    for (const f of catalog.fields.filter((x) => x.filterable)) {
      key.append(el('option', { value: f.name, title: f.description }, f.name));
    }
    const comparator = el('select', { id: `f${i}-comparator`, 'data-param': prefix + '[comparator]' });
    const operands = el('div', { className: 'operands' });
    const remove = el('button', { type: 'button', className: 'remove' }, 'Remove');
    row.append(el('legend'), control('Field', key), control('Comparator', comparator), operands, remove);

    const fillComparators = () => {
      const f = fieldByName(key.value);
      const keep = comparator.value;
      comparator.replaceChildren(...f.comparators.map((c) => el('option', { value: c }, c)));
      if (f.comparators.includes(keep)) comparator.value = keep;
      fillOperands();
    };
    const fillOperands = () => {
      const f = fieldByName(key.value);
      const c = comparatorByName(comparator.value);
      const old = {};
      for (const input of operands.querySelectorAll('input, textarea')) old[input.dataset.operand] = input.value;
      operands.replaceChildren(...c.operands.map((op) => operandControl(i, prefix, f, op, old[op])));
    };
    key.addEventListener('change', fillComparators);
    comparator.addEventListener('change', fillOperands);
    remove.addEventListener('click', () => {
      row.remove();
      renumberFilters();
      $('add-filter').focus();
    });
    $('filter-list').append(row);
    fillComparators();
    renumberFilters();
    return row;
  }

  function placeholderFor(f) {
    switch (f.kind) {
      case 'dateTime':
        return f.treatment === 'dateOnly' ? 'YYYY-MM-DD' : 'YYYY-MM-DD or YYYY-MM-DD HH:MM:SS';
      case 'integer':
        return f.minimum !== undefined ? `${f.minimum} to ${f.maximum}` : 'a whole number';
      case 'flag':
        return '0 or 1';
      case 'number':
        return 'a number';
      case 'list':
        return 'an element, or ["a", "b"] for the whole list';
      default:
        return '';
    }
  }

  function choicesOf(f) {
    if (f.enum) return f.enum;
    if (f.kind === 'flag') return ['0', '1'];
    if (f.minimum !== undefined && f.maximum - f.minimum <= 20) {
      const out = [];
      for (let v = f.minimum; v <= f.maximum; v++) out.push(String(v));
      return out;
    }
    return null;
  }

  // OPERAND_LABELS are the visible labels of the operand sub-keys.
  const OPERAND_LABELS = { value: 'Value', from: 'From', to: 'To' };

  // operandControl is the input of one operand sub-key: value, from, to
  // (one text field each, with the field's choices as suggestions) or
  // values (a multiple choice for enumerable fields, else one per line).
  function operandControl(i, prefix, f, op, oldValue) {
    const id = `f${i}-${op}`;
    const choices = choicesOf(f);
    if (op === 'values') {
      if (choices) {
        const sel = el('select', { id, multiple: true, 'data-param': prefix + '[values]', 'data-operand': op });
        sel.append(...choices.map((v) => el('option', { value: v }, v)));
        return control('Values', sel);
      }
      const ta = el('textarea', { id, 'data-param': prefix + '[values]', 'data-operand': op, spellcheck: 'false' });
      if (oldValue !== undefined) ta.value = oldValue;
      return control('Values (one per line)', ta);
    }
    const input = el('input', { id, type: 'text', 'data-param': `${prefix}[${op}]`, 'data-operand': op,
      placeholder: placeholderFor(f), spellcheck: 'false' });
    if (f.kind === 'integer' || f.kind === 'number' || f.kind === 'flag') input.inputMode = 'decimal';
    if (oldValue !== undefined) input.value = oldValue;
    const wrap = control(OPERAND_LABELS[op] || op, input);
    if (choices) {
      const list = el('datalist', { id: id + '-choices' }, ...choices.map((v) => el('option', { value: v })));
      input.setAttribute('list', list.id);
      wrap.append(list);
    }
    return wrap;
  }

  // queryParams is the form as API parameters (without format, limit, offset).
  function queryParams() {
    const p = new URLSearchParams();
    for (const row of $('filter-list').querySelectorAll('.filter')) {
      const i = row.dataset.index;
      p.append(`filters[${i}][key]`, row.querySelector(`#f${i}-key`).value);
      p.append(`filters[${i}][comparator]`, row.querySelector(`#f${i}-comparator`).value);
      for (const c of row.querySelectorAll('[data-operand]')) {
        const op = c.dataset.operand;
        if (op !== 'values') {
          p.append(`filters[${i}][${op}]`, c.value);
        } else if (c.tagName === 'SELECT') {
          for (const o of c.selectedOptions) p.append(`filters[${i}][values][]`, o.value);
        } else {
          for (const line of c.value.split('\n')) if (line.trim() !== '') p.append(`filters[${i}][values][]`, line.trim());
        }
      }
    }
    p.set('orderByField', $('order-field').value);
    p.set('orderByDirection', $('order-direction').value);
    return p;
  }

  // ---- the export view ----

  function buildExportView() {
    filterSeq = 0;
    $('filter-list').replaceChildren();
    const order = $('order-field');
    order.replaceChildren(...catalog.fields.filter((f) => f.sortable).map((f) => el('option', { value: f.name, title: f.description }, f.name)));
    order.value = catalog.orderByField;
    $('order-direction').value = catalog.orderByDirection;
    const buttons = catalog.formats.map((fmt) => {
      const b = el('button', { type: 'button', id: 'download-' + fmt, 'data-param': fmt === catalog.formats[0] ? 'format' : null },
        'Download ' + fmt.toUpperCase());
      b.addEventListener('click', () => download(fmt));
      return b;
    });
    $('download-buttons').replaceChildren(...buttons);
    buildTableHead();
  }

  function buildTableHead() {
    const tr = el('tr');
    for (const f of catalog.fields) tr.append(el('th', { scope: 'col', title: f.description }, f.name));
    $('preview-table').replaceChildren(el('thead', {}, tr), el('tbody'));
  }

  function cell(f, v) {
    if (v === null || v === undefined) return el('td', { className: 'null' });
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    const td = el('td', {}, text);
    if (typeof v === 'number') td.className = 'num';
    else if (text.length > 60) {
      td.className = 'long';
      td.title = text;
    }
    return td;
  }

  const fmtInt = new Intl.NumberFormat('en-US');

  async function runPreview(newOffset, params) {
    clearErrors();
    const seq = ++previewSeq;
    const q = new URLSearchParams(params || queryParams());
    const limit = Number($('page-size').value);
    q.set('format', 'json');
    q.set('limit', String(limit));
    q.set('offset', String(newOffset));
    let rows;
    let total;
    try {
      const resp = await apiFetch(EXPORT_PATH, q);
      total = Number(resp.headers.get('X-Total-Count'));
      rows = await resp.json();
    } catch (err) {
      if (seq === previewSeq) showError(err);
      return;
    }
    if (seq !== previewSeq) return;
    applied = params || queryParams();
    offset = newOffset;
    pageTotal = total;
    const tbody = el('tbody');
    for (const row of rows) {
      const tr = el('tr');
      for (const f of catalog.fields) tr.append(cell(f, row[f.name]));
      tbody.append(tr);
    }
    $('preview-table').querySelector('tbody').replaceWith(tbody);
    $('total').textContent = `${fmtInt.format(total)} ${total === 1 ? 'row matches' : 'rows match'}`;
    $('total').dataset.total = String(total);
    $('page-info').textContent = rows.length ? `Rows ${fmtInt.format(offset + 1)}–${fmtInt.format(offset + rows.length)} of ${fmtInt.format(total)}` : 'No rows';
    $('prev-page').disabled = offset === 0;
    $('next-page').disabled = offset + rows.length >= total;
    if (!performance.getEntriesByName('worklog-first-preview').length) performance.mark('worklog-first-preview');
  }

  // ---- downloads ----

  function statusLine(text) {
    const li = el('li', {}, el('span', {}, text));
    $('download-status').prepend(li);
    return li;
  }

  function setStatus(li, text, state) {
    li.firstChild.textContent = text;
    li.className = state || '';
  }

  function fileNameOf(resp, fallback) {
    const cd = resp.headers.get('Content-Disposition') || '';
    const m = /filename="?([^";]+)"?/.exec(cd);
    return m ? m[1] : fallback;
  }

  function save(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  async function download(format) {
    clearErrors();
    const label = format.toUpperCase();
    const q = queryParams();
    q.set('format', format);
    const li = statusLine(`${label}: preparing…`);
    let resp;
    try {
      resp = await apiFetch(EXPORT_PATH, q);
    } catch (err) {
      setStatus(li, `${label}: ${describe(err)}`, 'failed');
      showError(err);
      return;
    }
    if (resp.status === 202) {
      const job = await resp.json();
      setStatus(li, `${label}: ${fmtInt.format(job.rows)} rows are more than the ${fmtInt.format(catalog.syncLimits[format])} answered at once, ` +
        `so they are exported in the background (job ${job.jobId}; the file is also e-mailed to ${job.deliverTo}). Status: queued.`);
      li.dataset.job = job.jobId;
      pollJob(job, li, format);
      return;
    }
    const rows = resp.headers.get('X-Total-Count');
    const blob = await resp.blob();
    const name = fileNameOf(resp, `reporting_worklog.${format}`);
    save(blob, name);
    setStatus(li, `${label}: downloaded ${name} (${fmtInt.format(Number(rows))} rows).`, 'done');
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // pollJob follows a background export until it is done or failed, then
  // offers its file.
  async function pollJob(job, li, format) {
    const label = format.toUpperCase();
    const myToken = token;
    let delay = 300;
    for (;;) {
      await sleep(delay);
      delay = Math.min(delay * 1.5, 5000);
      if (token !== myToken) return; // signed out or another token
      let v;
      try {
        v = await (await apiFetch(job.statusUrl)).json();
      } catch (err) {
        setStatus(li, `${label} job ${job.jobId}: ${describe(err)}`, 'failed');
        return;
      }
      li.dataset.status = v.status;
      if (v.status === 'failed') {
        setStatus(li, `${label} job ${job.jobId} failed: ${(v.error && v.error.message) || 'no reason given'}`, 'failed');
        return;
      }
      if (v.status !== 'done') {
        setStatus(li, `${label} job ${job.jobId}: ${v.status}, ${fmtInt.format(v.rows)} rows.`);
        continue;
      }
      setStatus(li, `${label} job ${job.jobId} is done: ${fmtInt.format(v.rows)} rows.`, 'done');
      if (v.downloadUrl) li.append(fileButton(v, label));
      return;
    }
  }

  function fileButton(v, label) {
    const b = el('button', { type: 'button', className: 'primary' }, `Download ${label} file`);
    b.addEventListener('click', async () => {
      const li = b.closest('li');
      const url = new URL(v.downloadUrl, location.href);
      if (url.origin !== location.origin) {
        // A signed link elsewhere (public URL) needs no token: open it.
        window.open(url.href, '_blank', 'noopener');
        return;
      }
      try {
        const resp = await apiFetch(url.pathname + url.search);
        save(await resp.blob(), fileNameOf(resp, `reporting_worklog.${v.format}`));
      } catch (err) {
        li.append(el('span', { className: 'failed' }, describe(err)));
      }
    });
    return b;
  }

  // ---- the analytics view ----
  //
  // Requests (SPEC §10), all with the export view's filters:
  //  1. the top N values of the dimension by event count,
  //  2. the groups bucket × dimension with the chosen measures (the table),
  //  3. the buckets alone for the events of every other value ("other"),
  // so that "other" is exact for every measure, averages and rates included.

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#17becf'];
  const OTHER_COLOR = '#868e96';

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }

  // formatValue writes a measure value in its unit: seconds as m:ss (h:mm:ss
  // from an hour), ratios as %, counts with thousands separators.
  function formatValue(v, unit) {
    if (v === null || v === undefined) return '';
    if (typeof v !== 'number') return String(v);
    switch (unit) {
      case 'seconds': {
        const neg = v < 0;
        let s = Math.round(Math.abs(v));
        const h = Math.floor(s / 3600);
        s -= h * 3600;
        const m = Math.floor(s / 60);
        s -= m * 60;
        const ss = String(s).padStart(2, '0');
        const text = h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
        return (neg ? '−' : '') + text;
      }
      case 'ratio':
        return (v * 100).toFixed(1) + ' %';
      case 'count':
        return fmtInt.format(v);
      default:
        return Number.isInteger(v) ? fmtInt.format(v) : v.toFixed(2);
    }
  }

  function unitLabel(unit) {
    return { seconds: 'm:ss', ratio: '%', count: 'events' }[unit] || '';
  }

  // niceTicks returns about n round tick values covering [lo, hi]: steps of
  // 1, 2 or 5 times a power of ten, or whole minutes and hours for seconds.
  function niceTicks(lo, hi, n, unit) {
    if (lo === hi) hi = lo + 1;
    const raw = (hi - lo) / n;
    let steps;
    if (unit === 'seconds' && raw > 30) {
      steps = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    } else {
      const mag = 10 ** Math.floor(Math.log10(raw));
      steps = [1, 2, 5, 10].map((k) => k * mag);
    }
    const step = steps.find((x) => x >= raw) || raw;
    const out = [];
    let v = Math.floor(lo / step) * step;
    for (;;) {
      out.push(Number(v.toPrecision(12)));
      if (v >= hi) return out; // the last tick is at or above the largest value
      v += step;
    }
  }

  // drawChart draws one line per series over the buckets as inline SVG.
  // series: [{name, color, values: [number|null per bucket]}].
  function drawChart(title, buckets, series, unit) {
    const W = 720;
    const H = 300;
    const M = { top: 28, right: 40, bottom: 44, left: 64 };
    const values = series.flatMap((s) => s.values).filter((v) => v !== null);
    if (!values.length) values.push(0);
    let lo = Math.min(0, ...values);
    let hi = Math.max(...values, lo + (unit === 'ratio' ? 0.01 : 1));
    if (unit === 'ratio') hi = Math.max(hi, 0);
    const ticks = niceTicks(lo, hi, 5, unit);
    lo = ticks[0];
    hi = ticks[ticks.length - 1];
    const x = (i) => M.left + (buckets.length === 1 ? (W - M.left - M.right) / 2 : (i * (W - M.left - M.right)) / (buckets.length - 1));
    const y = (v) => M.top + (H - M.top - M.bottom) * (1 - (v - lo) / (hi - lo));
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title} by ${buckets.length} time buckets, ${series.length} series` });
    root.append(svg('title', {}, title));
    root.append(svg('text', { x: M.left, y: 16, class: 'chart-title' }, title));
    for (const t of ticks) {
      root.append(svg('line', { x1: M.left, x2: W - M.right, y1: y(t), y2: y(t), class: 'grid' }));
      root.append(svg('text', { x: M.left - 6, y: y(t) + 4, class: 'tick y', 'text-anchor': 'end' }, formatValue(t, unit)));
    }
    root.append(svg('text', { x: 12, y: M.top + (H - M.top - M.bottom) / 2, class: 'axis-label', 'text-anchor': 'middle',
      transform: `rotate(-90 12 ${M.top + (H - M.top - M.bottom) / 2})` }, unitLabel(unit)));
    const every = Math.max(1, Math.ceil(buckets.length / 8));
    buckets.forEach((b, i) => {
      if (i % every !== 0 && i !== buckets.length - 1) return;
      root.append(svg('text', { x: x(i), y: H - M.bottom + 18, class: 'tick x', 'text-anchor': 'middle' }, b));
    });
    for (const s of series) {
      const g = svg('g', { class: 'series', 'data-series': s.name, stroke: s.color, fill: s.color });
      let d = '';
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null) {
          pen = false;
          return;
        }
        d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
        g.append(svg('circle', { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5 }, svg('title', {}, `${s.name}, ${buckets[i]}: ${formatValue(v, unit)}`)));
      });
      g.prepend(svg('path', { d, fill: 'none', 'stroke-width': 2 }));
      root.append(g);
    }
    return root;
  }

  // setView shows one view: its tab pressed, its fieldset and section shown.
  function setView(name) {
    view = name;
    clearErrors();
    for (const tab of document.querySelectorAll('#views button')) tab.setAttribute('aria-pressed', String(tab.dataset.view === name));
    for (const e of document.querySelectorAll('main [data-view]')) e.hidden = e.dataset.view !== name;
  }

  function buildAnalyticsView() {
    const a = catalog.analytics;
    $('tab-analytics').hidden = !a;
    if (!a) return;
    $('time-bucket').replaceChildren(...a.timeBuckets.map((b) => el('option', { value: b }, b.replace(/^.*:/, ''))));
    $('time-bucket').value = a.timeBuckets.includes('date:week') ? 'date:week' : a.timeBuckets[0];
    $('dimension').replaceChildren(el('option', { value: '' }, '(none)'),
      ...a.dimensions.map((d) => el('option', { value: d.name, title: d.description || '' }, d.name)));
    $('measures').replaceChildren(...a.measures.map((m) => el('option', { value: m.name, selected: m.name === a.measures[0].name }, m.name)));
  }

  function measureUnit(name) {
    const m = catalog.analytics.measures.find((x) => x.name === name);
    return m ? m.unit : '';
  }

  // analyticsFetch asks the analytics endpoint and returns the groups and
  // the response headers.
  async function analyticsFetch(params) {
    const resp = await apiFetch(catalog.analytics.path, params);
    return { rows: await resp.json(), headers: resp.headers };
  }

  function filtersOnly() {
    const q = queryParams();
    q.delete('orderByField');
    q.delete('orderByDirection');
    return q;
  }

  async function runAnalytics() {
    clearErrors();
    const seq = ++analyticsSeq;
    const bucket = $('time-bucket').value;
    const dim = $('dimension').value;
    const measures = [...$('measures').selectedOptions].map((o) => o.value);
    const topN = Number($('top-n').value);
    const base = filtersOnly();
    const withGroups = (q, groups) => {
      groups.forEach((g, i) => q.append(`groupBy[${i}]`, g));
      for (const [i, m] of measures.entries()) q.append(`measures[${i}]`, m);
      return q;
    };
    let table;
    let top = [];
    let other = null;
    let noOther = false; // more values than lines, and no "other" line
    try {
      // 2. the table: every group of bucket × dimension.
      const tq = withGroups(new URLSearchParams(base), dim ? [bucket, dim] : [bucket]);
      tq.set('limit', String(catalog.analytics.maxLimit));
      table = await analyticsFetch(tq);
      if (dim) {
        // 1. the top values of the dimension by events.
        const q1 = new URLSearchParams(base);
        q1.append('groupBy[0]', dim);
        q1.append('measures[0]', 'count');
        q1.set('orderByField', 'count');
        q1.set('orderByDirection', 'desc');
        q1.set('limit', String(topN + 1));
        const r1 = await analyticsFetch(q1);
        top = r1.rows.slice(0, topN).map((r) => r[dim]);
        // "other" needs a filter on the dimension, which the level may
        // refuse (name where names are pseudonyms): then there is none.
        const filterable = catalog.fields.some((f) => f.name === dim && f.filterable);
        noOther = r1.rows.length > topN && !filterable;
        if (r1.rows.length > topN && filterable) {
          // 3. "other": the buckets of the events of every other value.
          const q3 = withGroups(new URLSearchParams(base), [bucket]);
          // Indices past the builder's: they never name one of its filters.
          const k = `filters[${filterSeq}]`;
          const named = top.filter((v) => v !== null);
          if (named.length) {
            q3.append(`${k}[key]`, dim);
            q3.append(`${k}[comparator]`, 'notIn');
            for (const v of named) q3.append(`${k}[values][]`, String(v));
          }
          if (named.length < top.length) {
            q3.append(`filters[${filterSeq + 1}][key]`, dim);
            q3.append(`filters[${filterSeq + 1}][comparator]`, 'isNotNull');
          }
          q3.set('limit', String(catalog.analytics.maxLimit));
          other = (await analyticsFetch(q3)).rows;
        }
      }
    } catch (err) {
      if (seq === analyticsSeq) showError(err);
      return;
    }
    if (seq !== analyticsSeq) return;
    renderAnalytics(bucket, dim, measures, table, top, other);
    if (noOther) {
      $('groups-total').textContent += `; the chart shows the top ${top.length} values of ${dim} only (the level does not allow filtering on it, which "other" needs)`;
    }
  }

  // numberOrNull keeps numbers; a measure over no value is null (no point).
  function numberOrNull(v) {
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  }

  function seriesName(v) {
    return v === null || v === undefined ? '(none)' : String(v);
  }

  function renderAnalytics(bucket, dim, measures, table, top, other) {
    const rows = table.rows;
    const total = Number(table.headers.get('X-Total-Count'));
    const suppressed = Number(table.headers.get('X-Suppressed-Groups') || 0);
    let text = `${fmtInt.format(total)} ${total === 1 ? 'group' : 'groups'}`;
    if (rows.length < total) text += `, the first ${fmtInt.format(rows.length)} shown`;
    if (suppressed > 0) text += `; ${fmtInt.format(suppressed)} left out for having too few agents`;
    $('groups-total').textContent = text;
    $('groups-total').dataset.total = String(total);

    const buckets = [...new Set(rows.map((r) => r[bucket]).concat((other || []).map((r) => r[bucket])))]
      .filter((b) => b !== null).sort();
    const at = new Map(buckets.map((b, i) => [b, i]));
    const charts = measures.map((m) => {
      const series = [];
      const lines = dim ? top : [undefined];
      lines.forEach((v, n) => {
        const values = buckets.map(() => null);
        for (const r of rows) if ((!dim || r[dim] === v) && at.has(r[bucket])) values[at.get(r[bucket])] = numberOrNull(r[m]);
        series.push({ name: dim ? seriesName(v) : m, color: PALETTE[n % PALETTE.length], values });
      });
      if (other) {
        const values = buckets.map(() => null);
        for (const r of other) if (at.has(r[bucket])) values[at.get(r[bucket])] = numberOrNull(r[m]);
        series.push({ name: 'other', color: OTHER_COLOR, values });
      }
      const figure = el('figure', { className: 'chart-figure', 'data-measure': m });
      figure.append(drawChart(`${m} by ${bucket.replace(/^.*:/, '')}${dim ? ' and ' + dim : ''}`, buckets, series, measureUnit(m)));
      const legend = el('ul', { className: 'legend' });
      for (const s of series) {
        const swatch = el('span', { className: 'swatch', 'aria-hidden': 'true' });
        swatch.append(svgSwatch(s.color));
        legend.append(el('li', {}, swatch, s.name));
      }
      figure.append(el('figcaption', {}, legend));
      return figure;
    });
    $('charts').replaceChildren(...charts);

    // The table: the endpoint's groups as answered, values in their units.
    const cols = rows.length ? Object.keys(rows[0]) : (dim ? [bucket, dim] : [bucket]).concat(measures);
    const head = el('tr', {}, ...cols.map((c) => el('th', { scope: 'col', 'data-key': c },
      measures.includes(c) && unitLabel(measureUnit(c)) ? `${c} (${unitLabel(measureUnit(c))})` : c)));
    const body = el('tbody');
    for (const r of rows) {
      body.append(el('tr', {}, ...cols.map((c) => {
        const v = r[c];
        if (v === null || v === undefined) return el('td', { className: 'null' });
        const td = el('td', { 'data-value': typeof v === 'number' ? String(v) : v }, measures.includes(c) ? formatValue(v, measureUnit(c)) : String(v));
        if (typeof v === 'number') td.className = 'num';
        return td;
      })));
    }
    $('groups-table').replaceChildren(el('thead', {}, head), body);
  }

  function svgSwatch(color) {
    return svg('svg', { viewBox: '0 0 12 12', width: 12, height: 12 }, svg('rect', { width: 12, height: 12, rx: 2, fill: color }));
  }

  // ---- wiring ----

  function init() {
    $('signin').addEventListener('submit', (ev) => {
      ev.preventDefault();
      signIn($('token').value);
    });
    $('signout-button').addEventListener('click', signOut);
    $('add-filter').addEventListener('click', () => {
      const row = addFilter();
      row.querySelector('select').focus();
    });
    $('query-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (view === 'analytics') runAnalytics();
      else runPreview(0);
    });
    for (const tab of document.querySelectorAll('#views button')) {
      tab.addEventListener('click', () => setView(tab.dataset.view));
    }
    $('prev-page').addEventListener('click', () => runPreview(Math.max(0, offset - Number($('page-size').value)), applied));
    $('next-page').addEventListener('click', () => runPreview(offset + Number($('page-size').value), applied));
    $('page-size').addEventListener('change', () => applied && runPreview(0, applied));

    // serve --demo on loopback hands the page its demo token.
    fetch(CONFIG_PATH, { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : {}))
      .then((cfg) => {
        if (cfg.demoToken && !token) {
          $('token').value = cfg.demoToken;
          signIn(cfg.demoToken);
        }
      })
      .catch(() => {});
  }

  init();
})();
