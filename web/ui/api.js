// HTTP helpers: the JSON API, the WebDAV share, and uploads that stream a
// File from disk without reading it into the page.

// abs makes a same-origin URL absolute from location.origin: when the page
// was opened as http://user:pw@box/, relative URLs would carry those
// credentials, and fetch refuses such URLs.
export function abs(url) { return location.origin + url; }

// davURL is the share URL of a store path, every segment escaped.
export function davURL(path, folder = false) {
  const enc = path.split('/').filter(s => s !== '').map(encodeURIComponent).join('/');
  return '/dav/' + enc + (folder && enc ? '/' : '');
}

// APIError carries the server's own words and the status, so callers can
// explain a 409 or a 423 instead of showing a number.
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function errorText(resp) {
  const text = (await resp.text()).trim();
  try {
    const j = JSON.parse(text);
    if (j && typeof j.error === 'string') return j.error;
  } catch (_) { /* a plain-text answer, as the share gives */ }
  return text || `${resp.status} ${resp.statusText}`;
}

// call sends a request and returns parsed JSON (or null), throwing
// APIError with the server's message on any non-2xx answer.
export async function call(method, url, body, headers = {}) {
  const init = { method, headers: { ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let resp;
  try {
    resp = await fetch(abs(url), init);
  } catch (e) {
    throw new APIError(0, `msdav did not answer (${e.message}); is it running?`);
  }
  if (!resp.ok && resp.status !== 207) throw new APIError(resp.status, await errorText(resp));
  const ct = resp.headers.get('Content-Type') || '';
  if (ct.includes('json')) return resp.json();
  if (ct.includes('xml')) return new DOMParser().parseFromString(await resp.text(), 'application/xml');
  return null;
}

// listFolders asks the share for the subfolders of a folder (PROPFIND,
// depth 1): the catalog lists files only, so empty folders come from here.
export async function listFolders(folder) {
  const body = '<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><resourcetype/><getlastmodified/></prop></propfind>';
  const doc = await call('PROPFIND', davURL(folder, true), body, { Depth: '1', 'Content-Type': 'application/xml' });
  const out = [];
  if (!doc) return out;
  const self = davURL(folder, true).replace(/\/$/, '');
  for (const r of doc.getElementsByTagNameNS('DAV:', 'response')) {
    const href = r.getElementsByTagNameNS('DAV:', 'href')[0]?.textContent || '';
    const isDir = r.getElementsByTagNameNS('DAV:', 'collection').length > 0;
    let p = new URL(href, location.href).pathname.replace(/\/$/, '');
    if (!isDir || p === self || p === '/dav') continue;
    p = p.replace(/^\/dav\//, '').split('/').map(decodeURIComponent).join('/');
    out.push(p);
  }
  return out;
}

// upload PUTs a File straight into the share. XMLHttpRequest sends the
// File from disk in pieces (fetch cannot report upload progress), so a
// multi-GB image never sits in the page's memory. onProgress gets the bytes
// sent; the returned promise resolves on success and rejects with APIError.
export function upload(path, file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', abs(davURL(path)));
    xhr.upload.onprogress = e => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let msg = (xhr.responseText || '').trim() || `${xhr.status} ${xhr.statusText}`;
      try { msg = JSON.parse(msg).error || msg; } catch (_) { /* plain text */ }
      reject(new APIError(xhr.status, msg));
    };
    xhr.onerror = () => reject(new APIError(0, 'the connection broke; nothing was stored'));
    xhr.onabort = () => reject(new APIError(-1, 'canceled; nothing was stored'));
    signal.addEventListener('abort', () => xhr.abort());
    xhr.send(file);
  });
}
