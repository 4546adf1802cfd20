// Formatting for people: sizes, dates, durations, kinds.

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function size(n) {
  if (n == null || isNaN(n)) return '?';
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 || v >= 100 ? Math.round(v) : v.toFixed(1)) + ' ' + units[i];
}

export function date(s) {
  if (!s) return '';
  const d = new Date(s);
  if (isNaN(d)) return '';
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function duration(sec) {
  if (!isFinite(sec) || sec < 0) return '…';
  if (sec < 9.95) return sec.toFixed(1) + ' s';
  sec = Math.round(sec);
  if (sec < 60) return sec + ' s';
  if (sec < 3600) return Math.floor(sec / 60) + ' min ' + (sec % 60) + ' s';
  return Math.floor(sec / 3600) + ' h ' + Math.floor((sec % 3600) / 60) + ' min';
}

export function rate(bytesPerSec) {
  return size(bytesPerSec) + '/s';
}

const kinds = {
  iso9660: 'ISO 9660',
  udf: 'UDF',
  hybrid: 'hybrid ISO (boots as CD or flash)',
  disk: 'disk image',
  fat: 'FAT image',
  unknown: 'unknown kind',
};

export function kind(k) { return kinds[k] || k || ''; }

const media = { cd: 'CD', dvd: 'DVD', flash: 'Flash', none: 'Empty' };
export function mediaName(m) { return media[m] || m || 'Empty'; }

export function base(p) { return p.slice(p.lastIndexOf('/') + 1); }
export function dir(p) { const i = p.lastIndexOf('/'); return i < 0 ? '' : p.slice(0, i); }
export function join(a, b) { return a ? a + '/' + b : b; }
