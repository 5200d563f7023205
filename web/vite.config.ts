import { defineConfig } from "vitest/config";

/** `npm run dev` proxies to a server started with `place serve --listen 127.0.0.1:8080`. */
const SERVER = "127.0.0.1:8080";

// The server refuses a POST or WebSocket whose Origin names another host than
// its Host header (docs/PROTOCOL.md, HTTP API), so the proxy passes the
// browser's Host on instead of naming the server.
interface HeaderSetter {
  setHeader(name: string, value: string): void;
}
interface Proxy {
  on(event: "proxyReq" | "proxyReqWs", f: (proxyReq: HeaderSetter, req: { headers: { host?: string } }) => void): void;
}
function keepHost(proxy: unknown): void {
  for (const event of ["proxyReq", "proxyReqWs"] as const) {
    (proxy as Proxy).on(event, (proxyReq, req) => {
      if (req.headers.host) proxyReq.setHeader("host", req.headers.host);
    });
  }
}

// The build output goes to dist/ by default; crates/web/build.rs passes
// `--outDir $OUT_DIR/web` so cargo builds never write into the source tree.
export default defineConfig({
  base: "/",
  build: {
    target: "es2022",
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    proxy: {
      "/api": { target: `http://${SERVER}`, configure: keepHost },
      "/ws": { target: `ws://${SERVER}`, ws: true, configure: keepHost },
    },
  },
  test: {
    include: ["tests/unit/**/*.test.ts"],
    environment: "node",
  },
});
