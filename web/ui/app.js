// The msdav console: drives, images and parts, kept current by
// /api/events. Every action goes through the same API and share as curl.
import { abs, call, davURL, listFolders, upload } from './api.js';
import * as fmt from './fmt.js';

const $ = id => document.getElementById(id);

const S = {
  drives: [],
  images: new Map(), // store path -> catalog entry
  parts: [],
  folders: [], // subfolders of cwd, from the share
  cwd: '',
  jobs: new Map(),
  lockedDrives: new Set(), // drives whose eject answered 409: offer force
  driveErr: new Map(),
  rowErr: new Map(),
  uploads: [],
  live: false,
};

// A GET sent before an event and answered after it holds older news: the
// events that arrive while a GET is out are kept and applied again on top
// of its answer, so a slow list never undoes an eject.
const inflight = { n: 0, events: [] };

function track(kind, v) {
  if (inflight.n) inflight.events.push([kind, v]);
}

async function fresh(get, apply) {
  inflight.n++;
  const from = inflight.events.length;
  try {
    apply(await get());
    for (const [kind, v] of inflight.events.slice(from)) applyEvent(kind, v);
  } finally {
    if (--inflight.n === 0) inflight.events.length = 0;
  }
}

// h builds an element: h('button', {type: 'button', onclick: f}, 'Eject').
function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) el.append(c.nodeType ? c : String(c));
  return el;
}

const keyOf = (n, i) => n.dataset?.path ?? n.dataset?.drive ?? n.dataset?.part ?? n.dataset?.job ?? n.dataset?.k ?? '#' + i;

// replace gives a list new children but keeps every existing node that
// looks the same: events redraw the lists several times a second during an
// upload, and a click whose button is swapped between press and release is
// lost. Focus goes back to the control the user was on if it was redrawn.
function replace(list, items) {
  const focused = document.activeElement?.dataset?.k;
  const old = new Map([...list.children].map((n, i) => [keyOf(n, i), n]));
  let cur = list.firstChild;
  items.forEach((n, i) => {
    const o = old.get(keyOf(n, i));
    if (o && o.isEqualNode(n)) n = o;
    if (n === cur) { cur = cur.nextSibling; return; }
    list.insertBefore(n, cur);
  });
  while (cur) { const next = cur.nextSibling; cur.remove(); cur = next; }
  if (focused && document.activeElement === document.body) list.querySelector(`[data-k="${CSS.escape(focused)}"]`)?.focus();
}

function showError(el, msg) {
  el.textContent = msg || '';
  el.hidden = !msg;
}

// ---- loading ----

async function loadDrives() {
  try {
    await fresh(() => call('GET', '/api/drives'), r => { S.drives = r.drives || []; });
    showError($('drives-error'), '');
  } catch (e) {
    S.drives = [];
    showError($('drives-error'), e.status === 503 ? e.message + ' The share and the images still work.' : 'Cannot read the drives: ' + e.message);
  }
  renderDrives();
  renderEntries();
}

async function loadImages() {
  try {
    await fresh(() => call('GET', '/api/images'), r => {
      S.images = new Map((r.images || []).map(i => [i.path, i]));
      S.parts = r.parts || [];
    });
    showError($('images-error'), '');
  } catch (e) {
    showError($('images-error'), 'Cannot read the image list: ' + e.message);
  }
  // Show the catalog before the folder listing: a part that stopped
  // answering must not hold the page up if the share's listing waits on it.
  renderEntries();
  renderParts();
  const cwd = S.cwd;
  try {
    const folders = await listFolders(cwd);
    if (cwd !== S.cwd) return; // the user moved on while it loaded
    S.folders = folders;
  } catch (e) {
    if (cwd !== S.cwd) return;
    if (e.status === 404 && cwd) return openFolder(fmt.dir(cwd), true);
    showError($('images-error'), `Cannot list the folder ${cwd || 'store root'}: ${e.message}`);
  }
  renderEntries();
  renderParts();
}

async function loadJobs() {
  try {
    const r = await call('GET', '/api/jobs');
    // Only running ones: finished jobs of earlier visits are history.
    for (const j of Array.isArray(r) ? r : r?.jobs || []) {
      if (j.state !== 'running') continue;
      S.jobs.set(j.id, j);
      pollJob(j.id);
    }
    renderJobs();
  } catch (_) { /* no fetch API in this build: the dialog says so when used */ }
}

// openFolder shows folder p; the hash keeps it, so Back and a reload
// stay in the folder. replace: a folder that vanished is not kept in history.
function openFolder(p, replace = false) {
  S.cwd = p;
  S.folders = [];
  const q = '#' + p.split('/').map(encodeURIComponent).join('/');
  if (location.hash !== q) history[replace ? 'replaceState' : 'pushState'](null, '', q);
  loadImages();
}

// ---- drives ----

function attachedTo(path) {
  return S.drives.filter(d => d.image === path).map(d => d.index);
}

function renderDrives() {
  replace($('drives'), S.drives.map(d => {
    const err = S.driveErr.get(d.index);
    // An image served from a URL (userspace drives) is not a file outside
    // the store: say where it streams from.
    const what = d.image ?? d.url ?? (d.file ? d.file + ' (outside the store)' : null);
    const mode = what ? (d.url ? 'read-only, streamed from its server' : d.rw ? 'writable' : 'read-only') : '';
    // What the drive's state says is wrong: its URL's server not answering
    // (the host's reads fail), or a medium not put back after a restart.
    const trouble = d.medium_error ? 'The image\'s server does not answer; the host\'s reads fail: ' + d.medium_error
      : d.restore_error ? 'Not put back after msdav restarted: ' + d.restore_error : null;
    return h('li', { class: 'drive' + (what ? ' on' : ''), 'data-drive': d.index },
      h('div', { class: 'drive-head' },
        h('h3', {}, `Drive ${d.index}`, d.index === 0 ? h('span', { class: 'sub' }, ' main') : null),
        h('span', { class: 'badge media-' + (d.media || 'none') }, fmt.mediaName(d.media))),
      h('p', { class: 'drive-img' }, what ? h('span', { class: 'path' }, what) : h('span', { class: 'muted' }, 'No image'),
        mode ? h('span', { class: 'muted' }, ' · ' + mode) : null),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', 'data-k': 'attach' + d.index, onclick: () => openAttach(d.index) }, what ? 'Change…' : 'Attach…'),
        what ? h('button', { type: 'button', 'data-k': 'eject' + d.index, onclick: () => eject(d.index, false) }, 'Eject') : null,
        what && S.lockedDrives.has(d.index) ? h('button', { type: 'button', class: 'danger', 'data-k': 'force' + d.index, onclick: () => eject(d.index, true) }, 'Force eject') : null),
      trouble ? h('p', { class: 'error drive-trouble' }, trouble) : null,
      err ? h('p', { class: 'error', role: 'alert' }, err) : null);
  }));
}

function setDriveError(i, msg) {
  if (msg) S.driveErr.set(i, msg); else S.driveErr.delete(i);
  renderDrives();
}

function upsertDrive(d) {
  const i = S.drives.findIndex(x => x.index === d.index);
  if (i >= 0) S.drives[i] = d; else { S.drives.push(d); S.drives.sort((a, b) => a.index - b.index); }
  if (!d.image && !d.file) { S.lockedDrives.delete(d.index); S.driveErr.delete(d.index); }
}

async function eject(i, force) {
  setDriveError(i, '');
  try {
    upsertDrive(await call('DELETE', `/api/drives/${i}` + (force ? '?force=1' : '')));
    S.lockedDrives.delete(i);
    renderDrives();
    renderEntries();
  } catch (e) {
    if (e.status === 409) {
      S.lockedDrives.add(i);
      setDriveError(i, 'The host holds this medium locked: its system is using it. Eject it on the host first, or use Force eject (the host may lose what it had not written yet).');
      return;
    }
    setDriveError(i, 'Eject failed: ' + e.message);
  }
}

async function reconnect() {
  if (!await ask({ title: 'USB reconnect', text: 'The host sees the USB device unplugged and plugged in again, with every drive. Go on?', ok: 'Reconnect' })) return;
  const btn = $('reconnect');
  btn.disabled = true;
  showError($('drives-error'), '');
  try {
    await call('POST', '/api/usb/reconnect');
    await loadDrives();
  } catch (e) {
    showError($('drives-error'), 'USB reconnect failed: ' + e.message);
  } finally {
    btn.disabled = false;
  }
}

// ---- attach dialog ----

function cdFirst(img) {
  if (['iso9660', 'udf', 'hybrid'].includes(img?.kind)) return true;
  if (['disk', 'fat'].includes(img?.kind)) return false;
  return /\.iso$/i.test(img?.path || '');
}

function openAttach(drive, image) {
  const dlg = $('attach-dlg');
  const form = dlg.querySelector('form');
  const ds = $('attach-drive');
  ds.replaceChildren(...S.drives.map(d => h('option', { value: d.index }, `Drive ${d.index}` + (d.image ? ` (now ${d.image})` : ''))));
  ds.value = String(drive ?? S.drives.find(d => !d.image)?.index ?? 0);
  const is = $('attach-image');
  const imgs = [...S.images.values()].filter(i => i.complete).sort((a, b) => a.path.localeCompare(b.path));
  is.replaceChildren(...imgs.map(i => h('option', { value: i.path }, `${i.path} (${fmt.size(i.size)})`)));
  const cur = S.drives.find(d => d.index === Number(ds.value));
  is.value = image || cur?.image || imgs[0]?.path || '';
  const pickMedia = () => {
    const img = S.images.get(is.value);
    const cd = image || !cur?.image ? cdFirst(img) : cur.cdrom;
    form.media.value = cd ? 'cdrom' : 'flash';
    syncRW();
  };
  const syncRW = () => {
    const flash = form.media.value === 'flash';
    $('attach-rw').disabled = !flash;
    if (!flash) $('attach-rw').checked = false;
  };
  is.onchange = () => { form.media.value = cdFirst(S.images.get(is.value)) ? 'cdrom' : 'flash'; syncRW(); };
  for (const r of form.querySelectorAll('input[name=media]')) r.onchange = syncRW;
  pickMedia();
  $('attach-rw').checked = !!(cur?.rw && !image);
  syncRW();
  runDialog(dlg, async () => {
    const i = Number(ds.value);
    const body = { image: is.value, cdrom: form.media.value === 'cdrom', rw: $('attach-rw').checked };
    if (!body.image) throw new Error('Choose an image: upload one first if the list is empty.');
    upsertDrive(await call('PUT', `/api/drives/${i}`, body));
    S.driveErr.delete(i);
    renderDrives();
    renderEntries();
  });
}

// runDialog shows a modal form; action runs on OK and its error is shown
// inside the dialog, which stays open so the user can correct it.
function runDialog(dlg, action) {
  const form = dlg.querySelector('form');
  const err = form.querySelector('.error');
  showError(err, '');
  // Cancel is a plain button, so Enter in a field submits with OK.
  form.querySelector('button[value=cancel]').onclick = () => dlg.close('cancel');
  // The opener may have been redrawn meanwhile: find it again by its key.
  const opener = document.activeElement?.dataset?.k;
  dlg.addEventListener('close', () => {
    if (opener && !document.activeElement?.closest('main')) {
      document.querySelector(`[data-k="${CSS.escape(opener)}"]`)?.focus();
    }
  }, { once: true });
  form.onsubmit = async e => {
    e.preventDefault();
    const ok = form.querySelector('button.primary');
    ok.disabled = true;
    try {
      await action(form);
      dlg.close('ok');
    } catch (x) {
      showError(err, x.message);
    } finally {
      ok.disabled = false;
    }
  };
  dlg.showModal();
}

// ask is a modal confirm or prompt: resolves to the value (true for a
// confirm) or null when cancelled.
function ask({ title, text = '', label = '', value = '', ok = 'OK', danger = false, check }) {
  const dlg = $('ask-dlg');
  $('ask-h').textContent = title;
  $('ask-text').textContent = text;
  $('ask-text').hidden = !text;
  $('ask-label').hidden = !label;
  $('ask-label').querySelector('span').textContent = label;
  $('ask-input').required = !!label;
  $('ask-input').value = value;
  $('ask-ok').textContent = ok;
  $('ask-ok').classList.toggle('danger', danger);
  return new Promise(resolve => {
    let result = null;
    dlg.onclose = () => resolve(result);
    runDialog(dlg, async () => {
      const v = label ? $('ask-input').value.trim() : true;
      if (check) await check(v);
      result = v;
    });
    if (label) { $('ask-input').focus(); $('ask-input').select(); }
  });
}

// ---- images ----

function renderCrumbs() {
  const segs = S.cwd ? S.cwd.split('/') : [];
  const items = [h('button', { type: 'button', class: 'link', 'data-k': 'crumb', onclick: () => openFolder('') }, 'Store')];
  segs.forEach((s, i) => {
    const p = segs.slice(0, i + 1).join('/');
    items.push(h('span', { class: 'sep', 'aria-hidden': 'true' }, '/'));
    items.push(i === segs.length - 1
      ? h('span', { 'aria-current': 'page' }, s)
      : h('button', { type: 'button', class: 'link', 'data-k': 'crumb' + p, onclick: () => openFolder(p) }, s));
  });
  if (!segs.length) items[0] = h('span', { 'aria-current': 'page' }, 'Store');
  replace($('crumbs'), items);
}

function partAt(p) { return S.parts.find(x => x.path === p); }

function renderEntries() {
  renderCrumbs();
  const cwd = S.cwd;
  const folders = new Set(S.folders);
  const files = [];
  const prefix = cwd ? cwd + '/' : '';
  for (const img of S.images.values()) {
    if (!img.path.startsWith(prefix)) continue;
    const rest = img.path.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash >= 0) folders.add(prefix + rest.slice(0, slash));
    else files.push(img);
  }
  for (const p of S.parts) if (p.path !== '.' && fmt.dir(p.path) === cwd) folders.add(p.path);
  const items = [];
  for (const f of [...folders].sort()) items.push(folderRow(f));
  files.sort((a, b) => a.path.localeCompare(b.path));
  for (const f of files) items.push(fileRow(f));
  if (!items.length) items.push(h('li', { class: 'empty muted' }, 'This folder is empty. Upload images, drop them here, or fetch one from a URL.'));
  replace($('entries'), items);
}

function rowError(path) {
  const e = S.rowErr.get(path);
  return e ? h('p', { class: 'error', role: 'alert' }, e) : null;
}

function setRowError(path, msg) {
  if (msg) S.rowErr.set(path, msg); else S.rowErr.delete(path);
  renderEntries();
}

function folderRow(p) {
  const part = partAt(p);
  const name = fmt.base(p);
  return h('li', { class: 'entry folder', 'data-path': p },
    h('div', { class: 'name' },
      h('span', { class: 'icon', 'aria-hidden': 'true' }, '▸'),
      h('button', { type: 'button', class: 'link', 'data-k': 'open:' + p, onclick: () => openFolder(p) }, name + '/')),
    h('div', { class: 'meta' + (part ? '' : ' plain') }, part ? partSummary(part) : h('span', { class: 'muted' }, 'folder')),
    h('div', { class: 'buttons' },
      h('button', { type: 'button', 'data-k': 'mv:' + p, onclick: () => move(p, true) }, 'Rename/move'),
      h('button', { type: 'button', class: 'danger', 'data-k': 'rm:' + p, onclick: () => remove(p, true) }, 'Delete')),
    rowError(p));
}

function fileRow(img) {
  const drives = attachedTo(img.path);
  const growing = !img.complete;
  const meta = [];
  if (growing) {
    const exp = img.expected || 0;
    meta.push(h('span', {}, `uploading: ${fmt.size(img.received || 0)}` + (exp ? ` of ${fmt.size(exp)}` : '')));
    if (exp) meta.push(h('progress', { max: exp, value: img.received || 0, 'aria-label': 'upload of ' + img.path }));
  } else {
    meta.push(h('span', {}, fmt.size(img.size)));
    meta.push(h('span', {}, fmt.date(img.mtime)));
    if (img.kind && img.kind !== 'unknown') meta.push(h('span', {}, fmt.kind(img.kind)));
    if (img.sha256) meta.push(h('span', { class: 'sha', title: 'SHA-256 ' + img.sha256 }, 'sha256 ' + img.sha256.slice(0, 12) + '…'));
  }
  for (const d of drives) meta.push(h('span', { class: 'badge on' }, `in drive ${d}`));
  return h('li', { class: 'entry file' + (drives.length ? ' attached' : ''), 'data-path': img.path },
    h('div', { class: 'name' }, h('span', { class: 'icon', 'aria-hidden': 'true' }, '◦'), h('span', { class: 'path' }, fmt.base(img.path))),
    h('div', { class: 'meta' }, meta),
    growing ? h('div', { class: 'buttons' }) : h('div', { class: 'buttons' },
      S.drives.length ? h('button', { type: 'button', 'data-k': 'at:' + img.path, onclick: () => openAttach(undefined, img.path) }, 'Attach…') : null,
      h('a', { class: 'button', href: davURL(img.path), download: fmt.base(img.path), 'data-k': 'dl:' + img.path }, 'Download'),
      h('button', { type: 'button', 'data-k': 'mv:' + img.path, onclick: () => move(img.path, false) }, 'Rename/move'),
      h('button', { type: 'button', class: 'danger', 'data-k': 'rm:' + img.path, onclick: () => remove(img.path, false) }, 'Delete')),
    rowError(img.path));
}

function lockedWords(e, what) {
  return `${what} is in use: ${e.message}. Eject it from its drive first.`;
}

async function remove(p, folder) {
  setRowError(p, '');
  const ok = await ask({
    title: 'Delete ' + fmt.base(p) + (folder ? '/' : ''),
    text: folder ? `Delete the folder ${p} and everything in it? This cannot be undone.` : `Delete ${p}? This cannot be undone.`,
    ok: 'Delete', danger: true,
  });
  if (!ok) return;
  try {
    await call('DELETE', davURL(p, folder));
    S.images.delete(p);
    S.folders = S.folders.filter(f => f !== p);
    if (folder) for (const k of [...S.images.keys()]) if (k.startsWith(p + '/')) S.images.delete(k);
    renderEntries();
    loadImages();
  } catch (e) {
    setRowError(p, e.status === 423 ? lockedWords(e, p) : 'Delete failed: ' + e.message);
  }
}

async function move(p, folder) {
  setRowError(p, '');
  const to = await ask({
    title: 'Rename or move', text: 'A new name, or a path from the store root to move it into another folder.',
    label: 'New path', value: p, ok: 'Move',
    check: async v => {
      if (!v || v === p) throw new Error('Type a different name or path.');
      try {
        await call('MOVE', davURL(p, folder), undefined, { Destination: location.origin + davURL(v, folder), Overwrite: 'F' });
      } catch (e) {
        if (e.status === 412) throw new Error(`${v} already exists: choose another name, or delete that one first.`);
        if (e.status === 423) throw new Error(lockedWords(e, p));
        if (e.status === 409) throw new Error(`The folder for ${v} does not exist: create it first.`);
        throw new Error('Move failed: ' + e.message);
      }
    },
  });
  if (to) loadImages();
}

async function mkdir() {
  const name = await ask({
    title: 'New folder', label: 'Name', value: '', ok: 'Create',
    check: async v => {
      if (v.includes('/') && !v.split('/').every(Boolean)) throw new Error('A folder name cannot be empty between slashes.');
      try {
        await call('MKCOL', davURL(fmt.join(S.cwd, v), true));
      } catch (e) {
        if (e.status === 405) throw new Error(`${v} already exists.`);
        if (e.status === 409) throw new Error('Create the parent folders one at a time.');
        throw new Error('Cannot create the folder: ' + e.message);
      }
    },
  });
  if (name) loadImages();
}

// ---- parts ----

function partSummary(p) {
  const bits = [h('span', { class: 'badge' }, p.fstype)];
  if (!p.available) {
    bits.push(h('span', { class: 'warn' }, `unavailable: ${p.reason || 'it did not answer in time'}; its images are hidden until it answers`));
    return bits;
  }
  bits.push(h('meter', { min: 0, max: p.size || 1, value: (p.size || 0) - (p.free || 0), high: (p.size || 1) * 0.9, 'aria-label': 'space used on ' + partName(p) }));
  bits.push(h('span', {}, `${fmt.size(p.free)} free of ${fmt.size(p.size)}`));
  if (!p.writable) bits.push(h('span', { class: 'warn' }, 'read-only' + (p.reason ? ': ' + p.reason : '')));
  return bits;
}

function partName(p) { return p.path === '.' ? 'store root' : p.path + '/'; }

function renderParts() {
  replace($('parts'), S.parts.map(p => h('li', { class: 'part' + (p.available ? '' : ' down'), 'data-part': p.path },
    h('div', { class: 'name' }, p.path === '.'
      ? h('span', {}, 'Store root')
      : h('button', { type: 'button', class: 'link', 'data-k': 'part:' + p.path, onclick: () => openFolder(p.path) }, p.path + '/')),
    h('div', { class: 'meta' }, partSummary(p)))));
}

// ---- uploads ----

let uploadSeq = 0;

async function enqueue(files) {
  const list = [...files];
  for (const f of list) {
    const path = fmt.join(S.cwd, f.name);
    if (S.images.has(path)) {
      if (attachedTo(path).length) {
        showError($('images-error'), `${path} is in drive ${attachedTo(path).join(', ')}: eject it before replacing it.`);
        continue;
      }
      if (!await ask({ title: 'Replace ' + f.name, text: `${path} exists (${fmt.size(S.images.get(path).size)}). Replace it with the file you chose (${fmt.size(f.size)})?`, ok: 'Replace', danger: true })) continue;
    }
    const u = { id: ++uploadSeq, file: f, path, loaded: 0, events: 0, state: 'queued', ctrl: new AbortController() };
    u.el = uploadRow(u);
    S.uploads.push(u);
    $('uploads').append(u.el);
  }
  pump();
}

function uploadRow(u) {
  const bar = h('progress', { max: u.file.size || 1, value: 0, 'aria-label': 'upload of ' + u.path });
  const text = h('span', { class: 'status', 'aria-live': 'polite' }, 'waiting');
  const btn = h('button', { type: 'button', 'data-k': 'up' + u.id, onclick: () => finishRow(u) }, 'Cancel');
  u.bar = bar; u.text = text; u.btn = btn;
  return h('li', { class: 'upload', 'data-upload': u.path },
    h('div', { class: 'name' }, h('span', { class: 'path' }, u.path), h('span', { class: 'muted' }, ' ' + fmt.size(u.file.size))),
    bar, text, btn);
}

// finishRow cancels a running or queued upload, or dismisses a finished one.
function finishRow(u) {
  if (u.state === 'running' || u.state === 'queued') {
    u.ctrl.abort();
    if (u.state === 'queued') { u.state = 'canceled'; u.text.textContent = 'canceled'; u.btn.textContent = 'Dismiss'; }
    return;
  }
  u.el.remove();
  S.uploads = S.uploads.filter(x => x !== u);
}

function uploadError(e, u) {
  switch (e.status) {
    case 507: return `Not enough space: ${e.message}. Free some space or choose another part.`;
    case 423: return `${u.path} is locked: ${e.message}. Eject it from its drive first.`;
    case 401: return 'Not signed in: reload the page and give your msdav user.';
    case -1: return 'Canceled; nothing was stored.';
    default: return `Upload failed: ${e.message}`;
  }
}

async function pump() {
  if (S.uploads.some(u => u.state === 'running')) return;
  const u = S.uploads.find(x => x.state === 'queued');
  if (!u) return;
  u.state = 'running';
  u.start = performance.now();
  u.text.textContent = 'starting';
  try {
    await upload(u.path, u.file, loaded => {
      u.loaded = loaded;
      u.events++;
      u.el.dataset.events = u.events;
      u.bar.value = loaded;
      const secs = (performance.now() - u.start) / 1000;
      const speed = secs > 0 ? loaded / secs : 0;
      const pct = u.file.size ? Math.floor(loaded * 100 / u.file.size) : 100;
      u.text.textContent = loaded >= u.file.size
        ? 'all sent; msdav is putting it on disk…' // fsync and rename before it answers
        : `${pct} % · ${fmt.rate(speed)} · ${fmt.duration(speed ? (u.file.size - loaded) / speed : Infinity)} left`;
    }, u.ctrl.signal);
    u.state = 'done';
    const secs = (performance.now() - u.start) / 1000;
    u.bar.value = u.bar.max;
    u.text.textContent = `done in ${fmt.duration(secs)} (${fmt.rate(u.file.size / Math.max(secs, 0.001))})`;
    u.el.classList.add('done');
  } catch (e) {
    u.state = e.status === -1 ? 'canceled' : 'failed';
    u.text.textContent = uploadError(e, u);
    u.el.classList.add(u.state);
    if (u.state === 'failed') u.text.setAttribute('role', 'alert');
  }
  u.btn.textContent = 'Dismiss';
  await loadImages();
  pump();
}

function setupDrop() {
  const zone = $('images-section');
  let depth = 0;
  zone.addEventListener('dragenter', e => { if (e.dataTransfer?.types.includes('Files')) { depth++; zone.classList.add('dropping'); } });
  zone.addEventListener('dragleave', () => { if (--depth <= 0) { depth = 0; zone.classList.remove('dropping'); } });
  zone.addEventListener('dragover', e => { if (e.dataTransfer?.types.includes('Files')) e.preventDefault(); });
  zone.addEventListener('drop', e => {
    e.preventDefault();
    depth = 0;
    zone.classList.remove('dropping');
    if (e.dataTransfer?.files.length) enqueue(e.dataTransfer.files);
  });
  $('upload').onclick = () => $('pick').click();
  $('pick').onchange = () => { enqueue($('pick').files); $('pick').value = ''; };
}

// ---- blank image and fetch ----

function openBlank() {
  const dlg = $('blank-dlg');
  runDialog(dlg, async form => {
    const body = { path: fmt.join(S.cwd, form.name.value.trim()), size: form.size.value.trim(), fs: form.fs.value };
    if (form.label.value.trim() && body.fs === 'fat32') body.label = form.label.value.trim();
    const img = await call('POST', '/api/images', body);
    if (img?.path) S.images.set(img.path, img);
    loadImages();
  });
}

function openFetch() {
  const dlg = $('fetch-dlg');
  runDialog(dlg, async form => {
    const body = { url: form.url.value.trim(), decompress: form.decompress.value };
    const p = form.path.value.trim();
    if (p) body.path = p.includes('/') ? p : fmt.join(S.cwd, p);
    else if (S.cwd) body.path = fmt.join(S.cwd, decodeURIComponent(new URL(body.url).pathname.split('/').pop() || 'image').replace(/\.(xz|gz|zst|bz2)$/i, m => body.decompress === 'none' ? m : ''));
    if (form.sha256.value.trim()) body.sha256 = form.sha256.value.trim().toLowerCase();
    let job;
    try {
      job = await call('POST', '/api/images/fetch', body);
    } catch (e) {
      if (e.status === 404 || e.status === 405) throw new Error('This msdav cannot fetch from a URL (no /api/images/fetch).');
      throw e;
    }
    if (job?.id != null) { S.jobs.set(job.id, job); renderJobs(); pollJob(job.id); }
  });
}

function renderJobs() {
  const jobs = [...S.jobs.values()].filter(j => !j.dismissed);
  replace($('jobs'), jobs.map(j => {
    const exp = j.expected;
    const pct = exp ? Math.floor((j.received || 0) * 100 / exp) : null;
    let status;
    switch (j.state) {
      case 'running': status = `fetching: ${fmt.size(j.received || 0)}` + (exp ? ` of ${fmt.size(exp)} (${pct} %)` : '') + (j.written && j.written !== j.received ? `, ${fmt.size(j.written)} written` : ''); break;
      case 'done': status = `done: ${j.path}` + (j.sha256 ? `, sha256 ${j.sha256.slice(0, 12)}…` : ''); break;
      case 'failed': status = 'failed: ' + (j.error || 'no reason given'); break;
      case 'canceled': status = 'canceled; nothing was stored'; break;
      default: status = j.state;
    }
    const running = j.state === 'running';
    return h('li', { class: 'upload job ' + j.state, 'data-job': j.id },
      h('div', { class: 'name' }, h('span', { class: 'path' }, j.path || j.url), h('span', { class: 'muted' }, ' from ' + j.url)),
      h('progress', exp ? { max: exp, value: j.received || 0, 'aria-label': 'fetch of ' + j.url } : { 'aria-label': 'fetch of ' + j.url }),
      h('span', { class: 'status', role: j.state === 'failed' || j.note ? 'alert' : null }, status + (j.note ? ' · ' + j.note : '')),
      h('button', {
        type: 'button', 'data-k': 'job' + j.id,
        // By id: a redraw that finds this row unchanged keeps the old closure.
        onclick: () => jobButton(j.id),
      }, running ? 'Cancel' : 'Dismiss'));
  }));
}

async function jobButton(id) {
  const j = S.jobs.get(id);
  if (!j) return;
  if (j.state !== 'running') { j.dismissed = true; return renderJobs(); }
  try {
    S.jobs.set(id, { ...j, note: '', ...await call('DELETE', `/api/jobs/${encodeURIComponent(id)}`) });
  } catch (e) {
    S.jobs.set(id, { ...S.jobs.get(id), note: 'cancel failed: ' + e.message });
  }
  renderJobs();
}

// pollJob follows a job by GET while no job events arrive for it (an
// event stream that is down, or a server that sends none).
async function pollJob(id) {
  for (;;) {
    await new Promise(r => setTimeout(r, 1000));
    const cur = S.jobs.get(id);
    if (!cur || cur.state !== 'running') return;
    if (S.live && Date.now() - (cur.seen || 0) < 1500) continue;
    try {
      const j = await call('GET', `/api/jobs/${encodeURIComponent(id)}`);
      S.jobs.set(id, { ...S.jobs.get(id), ...j });
      renderJobs();
      if (j.state !== 'running') { loadImages(); return; }
    } catch (_) { return; }
  }
}

// ---- events ----

let pollTimer = null;

function setLive(state, text) {
  const el = $('live');
  el.textContent = text;
  el.className = 'live ' + state;
}

// applyEvent puts one event from /api/events into the page.
function applyEvent(kind, v) {
  switch (kind) {
    case 'drive':
      upsertDrive(v);
      renderDrives();
      renderEntries();
      break;
    case 'image':
      if (v.removed) S.images.delete(v.path);
      else S.images.set(v.path, v); // whole: a replaced file's old sha256 must not linger
      renderEntries();
      break;
    case 'part': {
      const i = S.parts.findIndex(x => x.path === v.path);
      if (i >= 0) S.parts[i] = v; else S.parts.push(v);
      renderParts();
      renderEntries();
      break;
    }
    case 'job': {
      const old = S.jobs.get(v.id);
      S.jobs.set(v.id, { ...old, ...v, seen: Date.now() });
      renderJobs();
      if (v.state === 'done' && old?.state !== 'done') loadImages();
      break;
    }
  }
}

function follow() {
  const es = new EventSource(abs('/api/events'));
  es.onopen = () => {
    S.live = true;
    setLive('on', 'live');
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  };
  for (const kind of ['drive', 'image', 'part', 'job']) {
    es.addEventListener(kind, e => {
      const v = JSON.parse(e.data);
      track(kind, v);
      applyEvent(kind, v);
    });
  }
  es.onerror = () => {
    S.live = false;
    if (es.readyState === EventSource.CLOSED) {
      // No event stream (an older msdav, or auth lapsed): poll instead.
      setLive('poll', 'polling');
      if (!pollTimer) {
        let n = 0;
        pollTimer = setInterval(() => { loadDrives(); if (++n % 5 === 0) loadImages(); }, 1000);
      }
      setTimeout(() => { if (!S.live) follow(); }, 30000);
    } else {
      setLive('off', 'reconnecting…');
    }
  };
}

// ---- start ----

function start() {
  $('reconnect').onclick = reconnect;
  $('mkdir').onclick = mkdir;
  $('blank').onclick = openBlank;
  $('fetch').onclick = openFetch;
  setupDrop();
  const hash = decodeURIComponent(location.hash.slice(1));
  S.cwd = hash.split('/').filter(Boolean).join('/');
  window.addEventListener('hashchange', () => {
    const p = decodeURIComponent(location.hash.slice(1)).split('/').filter(Boolean).join('/');
    if (p !== S.cwd) openFolder(p);
  });
  Promise.all([loadDrives(), loadImages(), loadJobs()]).then(() => {
    performance.mark('msdav-ready'); // first render with the store's data, for the browser test's timing
    document.body.dataset.ready = '1';
  });
  follow();
}

start();
