// Moved to /js/lib/util.js (shared by /mod, /admin and plugin pages). This path stays for plugin modules that
// import it (docs/plugin-pages.md); it is the same module instance, not a copy.
export * from "../lib/util.js";
