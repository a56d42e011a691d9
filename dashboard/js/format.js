/**
 * How numbers from the server are written on the page: durations, round
 * trips, clock times, rates. Pure functions, unit-tested with node --test.
 */

/**
 * A duration in seconds as short text: "0.4 s", "12 s", "3 min 5 s",
 * "2 h 4 min", "3 d 1 h". Under 10 s one decimal is kept, since "0 s" says
 * nothing about a frame seen 0.4 s ago; null or a negative value is "—".
 */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 10) return `${(Math.floor(seconds * 10) / 10).toFixed(1)} s`;
  const total = Math.floor(seconds);
  if (total < 60) return `${total} s`;
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (days > 0) return hours ? `${days} d ${hours} h` : `${days} d`;
  if (hours > 0) return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  return secs ? `${minutes} min ${secs} s` : `${minutes} min`;
}

/** "0.3 s ago" for an idle time in seconds. */
export function formatAgo(seconds) {
  const text = formatDuration(seconds);
  return text === '—' ? text : `${text} ago`;
}

/** A round trip given in seconds, written in milliseconds: "0.42 ms", "12.3 ms", "250 ms". */
export function formatRtt(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '—';
  const ms = seconds * 1000;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

const pad = (n) => String(n).padStart(2, '0');

/** A Unix time in seconds as the local wall-clock time "HH:MM:SS". */
export function formatClock(epochSeconds) {
  if (!Number.isFinite(epochSeconds)) return '—';
  const d = new Date(epochSeconds * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A Unix time in seconds as a local "YYYY-MM-DD HH:MM:SS" (for tooltips). */
export function formatDateTime(epochSeconds) {
  if (!Number.isFinite(epochSeconds)) return '';
  const d = new Date(epochSeconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${formatClock(epochSeconds)}`;
}

/** A per-second rate: one decimal, two below 10 ("0.25", "3.40", "12.5"). */
export function formatRate(value) {
  if (!Number.isFinite(value)) return '—';
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

/** A count with thousands separators ("12,345"); non-numbers are "—". */
export function formatCount(value) {
  if (!Number.isFinite(value)) return '—';
  return Math.round(value).toLocaleString('en-US');
}

/** An axis label: whole numbers as they are, others with one or two decimals ("25", "2.5", "0.25"). */
export function formatAxis(value) {
  if (!Number.isFinite(value)) return '';
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  return value < 1 ? String(Number(value.toFixed(2))) : String(Number(value.toFixed(1)));
}

// Order matters: Edge and Opera also say Chrome, Chrome also says Safari.
const BROWSERS = [
  [/\bEdg(?:e|A|iOS)?\/(\d+)/, 'Edge'],
  [/\bOPR\/(\d+)/, 'Opera'],
  [/\b(?:Firefox|FxiOS)\/(\d+)/, 'Firefox'],
  [/\b(?:Chrome|CriOS)\/(\d+)/, 'Chrome'],
  [/\bVersion\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari\//, 'Safari'],
];
// Android says Linux, iPadOS says Mac OS X.
const SYSTEMS = [
  [/Android/, 'Android'],
  [/iPhone|iPad|iPod/, 'iOS'],
  [/CrOS/, 'ChromeOS'],
  [/Windows/, 'Windows'],
  [/Macintosh|Mac OS X/, 'macOS'],
  [/Linux/, 'Linux'],
];

/**
 * A short name for a browser's User-Agent: "Firefox 133 · Linux". Anything
 * not recognised as a browser (a bot, a script's library) is returned as it is.
 */
export function describeUserAgent(ua) {
  const text = String(ua || '');
  const browser = BROWSERS.find(([re]) => re.test(text));
  if (!browser) return text;
  const version = text.match(browser[0])[1];
  const system = SYSTEMS.find(([re]) => re.test(text));
  return system ? `${browser[1]} ${version} · ${system[1]}` : `${browser[1]} ${version}`;
}
