/// <reference types="vitest/config" />
// The task pane builds into the Python package (server/static/taskpane/), which the server serves at
// /taskpane/. Paths are relative (base "./") so the same build works under any mount point.
import { cpSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(here, "..", "server", "static", "taskpane");

/**
 * Office.js from @microsoft/office-js, copied unmodified next to the pane (its licence allows
 * redistribution in original form only) so the pane works offline and never loads code from a CDN.
 * office.js loads its host files (outlook-*.js, word-*.js) and strings relative to its own URL; we keep
 * only what Outlook and Word need: no debug builds, no Excel/PowerPoint/OneNote/Visio/Project/Access
 * (86 MB in the package, about 13 MB kept).
 */
function officeJs(): Plugin {
  const source = resolve(here, "node_modules", "@microsoft", "office-js", "dist");
  const otherHosts = /^(excel|powerpoint|onenote|access|project|visio|office-vsdoc|office\.d\.ts)/i;
  return {
    name: "deskpilot-office-js",
    apply: "build",
    writeBundle() {
      const target = join(outDir, "office-js");
      mkdirSync(target, { recursive: true });
      cpSync(source, target, {
        recursive: true,
        filter: (path) => {
          const name = relative(source, path).split(sep).pop() ?? "";
          return !name.includes(".debug.") && !otherHosts.test(name);
        },
      });
      const licence = resolve(source, "..", "LICENSE.md");
      if (existsSync(licence)) cpSync(licence, join(target, "LICENSE.md"));
    },
  };
}

/**
 * The compliance and IT dashboard (dashboard.html, src/dashboard/) is a second build, `vite build --mode
 * dashboard`, into server/static/dashboard/ (served at /dashboard/). One script and no code splitting, so
 * `deskpilot audit report` can inline the built page into one self-contained file for an auditor.
 */
const dashboardDir = resolve(here, "..", "server", "static", "dashboard");

function dashboardIndex(): Plugin {
  // The entry is taskpane/dashboard.html (beside the pane's index.html); the server serves it as index.html.
  return {
    name: "deskpilot-dashboard-index",
    enforce: "post",
    generateBundle(_options, bundle) {
      const page = bundle["dashboard.html"];
      if (page) page.fileName = "index.html";
    },
  };
}

const dashboard = defineConfig({
  base: "./",
  plugins: [react(), dashboardIndex()],
  build: {
    outDir: dashboardDir,
    emptyOutDir: true,
    assetsDir: "app",
    target: "es2022",
    chunkSizeWarningLimit: 1500,
    modulePreload: { polyfill: false },
    rollupOptions: { input: resolve(here, "dashboard.html") },
  },
});

export default defineConfig(({ mode }) => (mode === "dashboard" ? dashboard : {
  base: "./",
  plugins: [react(), officeJs()],
  build: {
    outDir,
    emptyOutDir: true,
    // Not "assets": /taskpane/assets/ holds the add-in icons, served from addin_manifest/assets.
    assetsDir: "app",
    target: "es2022",
    chunkSizeWarningLimit: 1500,
  },
  test: {
    include: ["test/unit/**/*.test.ts"],
    environment: "node",
  },
}));
