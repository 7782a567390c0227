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
    $('views').hidden = false;
    $('export-view').hidden = false;
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
    $('export-view').hidden = true;
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
        setStatus(li, `${label} job ${job.jobId} failed: ${v.error || 'no reason given'}`, 'failed');
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
    $('export-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      runPreview(0);
    });
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
