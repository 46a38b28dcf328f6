import { defineConfig } from "vite";

// Built into the Python package; the server answers `/` with index.html and `/ui/assets/*`.
export default defineConfig({
  base: "/ui/",
  // Vite 8 transforms TS/JSX with oxc: Preact's automatic JSX runtime, not React's.
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "../src/ember/ui/static",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
    cssTarget: "es2022",
    modulePreload: { polyfill: false },
    rolldownOptions: {
      output: {
        entryFileNames: "assets/[name]-[hash].js",
        chunkFileNames: "assets/[name]-[hash].js",
        assetFileNames: "assets/[name]-[hash][extname]",
      },
    },
  },
});
