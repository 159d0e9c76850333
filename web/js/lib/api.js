// HTTP access to the engine: one error shape, credentials on every call, uploads with progress,
// and which plugin APIs this engine has (so sections never request routes that would 404).

/** A failed call. `status` 0 means the network failed (offline, engine down). */
export class ApiError extends Error {
  constructor(status, code, message, details = {}, headers = null) {
    super(message || code || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = code || (status === 0 ? "network" : `http_${status}`);
    this.details = details;
    this.headers = headers;
  }

  get network() {
    return this.status === 0;
  }

  /** Seconds from Retry-After (429), or null. */
  get retryAfter() {
    const value = this.headers && this.headers.get ? this.headers.get("retry-after") : null;
    const seconds = Number(value);
    return Number.isFinite(seconds) && seconds > 0 ? seconds : null;
  }
}

/** What the panel shows for an error: the server's own message, or a plain explanation. */
export function describeError(err) {
  if (!err) return "Something went wrong";
  if (err instanceof ApiError) {
    if (err.network) return "Cannot reach the engine (offline?)";
    if (err.status === 429) {
      const wait = err.retryAfter;
      return `Too many attempts${wait ? `; try again in ${wait < 120 ? `${wait} s` : `${Math.ceil(wait / 60)} min`}` : " — wait a moment"}`;
    }
    return err.message || `Error ${err.status}`;
  }
  return err.message || String(err);
}

/**
 * A client bound to one credential.
 * @param {object} options
 * @param {() => Record<string,string>} options.headers  credential headers for each call
 * @param {(err: ApiError) => void} [options.onUnauthorized]  called on 401 (not for calls marked `public`)
 * @param {(online: boolean) => void} [options.onNetwork]  network reachability changes seen by calls
 */
export function createApi({ headers = () => ({}), onUnauthorized = () => {}, onNetwork = () => {} } = {}) {
  async function request(method, path, { json, form, query, public: isPublic = false, signal, keepalive } = {}) {
    let url = path;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, String(v));
      const text = params.toString();
      if (text) url += (url.includes("?") ? "&" : "?") + text;
    }
    const init = { method, headers: { accept: "application/json", ...headers() }, signal, keepalive };
    if (json !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form !== undefined) {
      init.headers["content-type"] = "application/x-www-form-urlencoded";
      init.body = new URLSearchParams(form).toString();
    }
    let response;
    try {
      // window.fetch is looked up per call (tests wrap it to count saves).
      response = await window.fetch(url, init);
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      onNetwork(false);
      throw new ApiError(0, "network", "Cannot reach the engine");
    }
    onNetwork(true);
    const text = await response.text().catch(() => "");
    let body = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = { text };
      }
    }
    if (!response.ok) {
      const error = body && body.error && typeof body.error === "object" ? body.error : {};
      const { code, message, ...details } = error;
      const failure = new ApiError(response.status, code, message || (body && body.text) || response.statusText, details, response.headers);
      if (response.status === 401 && !isPublic) onUnauthorized(failure);
      throw failure;
    }
    return body ?? {};
  }

  /**
   * Uploads one file as multipart field `file` with progress.
   * @returns {{promise: Promise<object>, abort: () => void}}
   */
  function upload(path, file, onProgress = () => {}) {
    const xhr = new XMLHttpRequest();
    const promise = new Promise((resolve, reject) => {
      xhr.open("POST", path);
      for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
      xhr.setRequestHeader("accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total, event.loaded, event.total);
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try {
          body = xhr.responseText ? JSON.parse(xhr.responseText) : {};
        } catch {
          body = { text: xhr.responseText };
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          onNetwork(true);
          onProgress(1, file.size, file.size);
          resolve(body);
          return;
        }
        const error = body && body.error && typeof body.error === "object" ? body.error : {};
        const { code, message, ...details } = error;
        let fallback = xhr.statusText || `HTTP ${xhr.status}`;
        if (xhr.status === 413) fallback = "The file is too large for this engine";
        if (xhr.status === 415) fallback = "This file type is not supported";
        const failure = new ApiError(xhr.status, code, message || fallback, details, { get: (n) => xhr.getResponseHeader(n) });
        if (xhr.status === 401) onUnauthorized(failure);
        reject(failure);
      });
      xhr.addEventListener("error", () => {
        onNetwork(false);
        reject(new ApiError(0, "network", "The upload failed: cannot reach the engine"));
      });
      xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "Upload cancelled")));
      const body = new FormData();
      body.append("file", file, file.name);
      xhr.send(body);
    });
    return { promise, abort: () => xhr.abort() };
  }

  return {
    request,
    upload,
    get: (path, options) => request("GET", path, options),
    post: (path, options) => request("POST", path, options),
    put: (path, options) => request("PUT", path, options),
    patch: (path, options) => request("PATCH", path, options),
    del: (path, options) => request("DELETE", path, options),
  };
}

/**
 * What this engine serves, read once from the public `/api/plugins`: the listing, `has(method, path)` for its
 * routes (a plugin module checks the routes it calls, so one that is loaded but not finished is never called),
 * and the events plugins declare.
 */
export async function loadCapabilities(api) {
  let listing = { plugins: [] };
  try {
    listing = await api.get("/api/plugins", { public: true });
  } catch {
    /* treated as "nothing optional available" */
  }
  const routes = new Set();
  const events = new Set();
  for (const plugin of Array.isArray(listing.plugins) ? listing.plugins : []) {
    for (const route of Array.isArray(plugin.routes) ? plugin.routes : []) {
      if (route && route.method && route.path) routes.add(`${String(route.method).toUpperCase()} ${route.path}`);
    }
    for (const event of Array.isArray(plugin.events) ? plugin.events : []) {
      events.add(typeof event === "string" ? event : event && (event.type || event.name));
    }
  }
  const has = (method, path) => routes.has(`${method} ${path}`);
  return { listing, has, events };
}

