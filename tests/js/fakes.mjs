/**
 * Test doubles for the browser client: a WebSocket whose server side the
 * test drives, a clock with timers the test advances (and can make late, as
 * a background tab does), a sessionStorage, window/document stand-ins, and
 * a fetch that answers from a list.
 */

/**
 * A fake clock: now() plus setTimeout/clearTimeout driven by the test.
 * Timers run on a monotonic time, now() is the wall clock; they move together
 * unless the test sets the wall clock with shiftWallClock().
 */
export function createFakeTime(start = 1_700_000_000_000) {
  let mono = 0;
  let offset = start;
  let nextId = 1;
  const timers = new Map(); // id -> {due, fn}

  function nextDue(limit) {
    let best = null;
    for (const [id, t] of timers) {
      if (t.due <= limit && (best === null || t.due < best.due || (t.due === best.due && id < best.id))) {
        best = { id, ...t };
      }
    }
    return best;
  }

  return {
    now: () => mono + offset,
    setTimeout(fn, ms = 0) {
      const id = nextId++;
      timers.set(id, { due: mono + Math.max(0, Number(ms) || 0), fn });
      return id;
    },
    clearTimeout(id) {
      timers.delete(id);
    },
    /** Moves time forward by ms, firing each timer at its due time. */
    advance(ms) {
      const end = mono + ms;
      for (;;) {
        const t = nextDue(end);
        if (t === null) break;
        timers.delete(t.id);
        mono = Math.max(mono, t.due);
        t.fn();
      }
      mono = end;
    },
    /**
     * Moves time forward WITHOUT firing timers (a throttled or frozen tab);
     * call runDue() afterwards to fire them late.
     */
    skew(ms) {
      mono += ms;
    },
    /** Fires every timer that is due by now (late, after a skew). */
    runDue() {
      for (;;) {
        const t = nextDue(mono);
        if (t === null) break;
        timers.delete(t.id);
        t.fn();
      }
    },
    /** Sets the wall clock (now()) by ms without moving timers, like NTP. */
    shiftWallClock(ms) {
      offset += ms;
    },
    /** The number of scheduled timers. */
    get pendingTimers() {
      return timers.size;
    },
  };
}

/** The `server_time` (epoch seconds) of the fake welcome. */
export const SERVER_TIME = 1764140000.123;

/**
 * A WebSocket class whose instances record what the client sends and let
 * the test play the server. Each call returns a fresh class with its own
 * `instances` list.
 */
export function createFakeWebSocket() {
  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    static instances = [];

    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closeCalls = [];
      this.onopen = null;
      this.onmessage = null;
      this.onerror = null;
      this.onclose = null;
      FakeWebSocket.instances.push(this);
    }

    static get last() {
      return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    }

    /** Sockets the client has not closed and the server has not closed. */
    static get live() {
      return FakeWebSocket.instances.filter((ws) => ws.readyState < 2);
    }

    send(data) {
      if (this.readyState !== 1) throw new Error(`send() in readyState ${this.readyState}`);
      this.sent.push(data);
    }

    close(code, reason) {
      this.closeCalls.push({ code, reason });
      if (this.readyState < 2) this.readyState = 2;
    }

    get query() {
      return new URL(this.url).searchParams;
    }

    /** The JSON frames sent so far, parsed. */
    get frames() {
      return this.sent.filter((d) => d !== 'ping' && d !== 'pong').map((d) => JSON.parse(d));
    }

    get pings() {
      return this.sent.filter((d) => d === 'ping').length;
    }

    // -- the server's side --

    serverOpen() {
      this.readyState = 1;
      this.onopen?.({ type: 'open' });
    }

    serverSend(frame) {
      this.onmessage?.({ type: 'message', data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
    }

    /** Opens and sends a welcome with the given heartbeat (seconds), and any other fields (`expires`). */
    welcome({ interval = 10, timeout = 20, user = 'alice', ...fields } = {}) {
      this.serverOpen();
      this.serverSend({
        type: 'welcome',
        conn: `c${FakeWebSocket.instances.indexOf(this)}`,
        user: { id: user, name: user },
        heartbeat: { interval, timeout },
        server_time: SERVER_TIME,
        ...fields,
      });
    }

    serverClose(code = 1006, reason = '') {
      this.readyState = 3;
      this.onclose?.({ type: 'close', code, reason, wasClean: code !== 1006 });
    }

    /** A failed connection or a broken socket: error, then close 1006. */
    fail() {
      this.readyState = 3;
      this.onerror?.({ type: 'error' });
      this.onclose?.({ type: 'close', code: 1006, reason: '', wasClean: false });
    }
  }
  return FakeWebSocket;
}

/** A sessionStorage stand-in. */
export function createFakeStorage(initial = {}) {
  const data = new Map(Object.entries(initial));
  return {
    getItem: (k) => (data.has(k) ? data.get(k) : null),
    setItem: (k, v) => data.set(k, String(v)),
    removeItem: (k) => data.delete(k),
    clear: () => data.clear(),
    get length() {
      return data.size;
    },
  };
}

/** window and document stand-ins for online/offline/visibility events. */
export function createFakeBrowser() {
  const window = new EventTarget();
  const document = new EventTarget();
  document.hidden = false;
  return {
    window,
    document,
    goOffline: () => window.dispatchEvent(new Event('offline')),
    goOnline: () => window.dispatchEvent(new Event('online')),
    hide() {
      document.hidden = true;
      document.dispatchEvent(new Event('visibilitychange'));
    },
    show() {
      document.hidden = false;
      document.dispatchEvent(new Event('visibilitychange'));
    },
  };
}

/** A seeded PRNG (mulberry32), so that failures with random jitter are reproducible. */
export function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A fetch that answers from a list of [status, body] and records each request
 * (`json`: its parsed body). A body of undefined fails to parse, as an empty one does.
 */
export function fakeFetch(answers) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, ...init, json: init.body === undefined ? undefined : JSON.parse(init.body) });
    const [status, body] = answers.shift();
    return {
      status,
      ok: status >= 200 && status < 300,
      json: async () => {
        if (body === undefined) throw new SyntaxError('no body');
        return body;
      },
    };
  };
  return { fetch, calls };
}
