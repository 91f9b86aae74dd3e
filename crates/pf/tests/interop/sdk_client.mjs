// A real MCP client (the official TypeScript SDK's Client over its stdio transport) driving
// `pf guard` in front of the reference filesystem server. Used by tests/guard_interop_cli.rs.
//
// argv: <servers dir> <pf binary> <spec> <decision log> <filesystem root>
// Prints one JSON object with what the client saw.
import path from "node:path";
import { sdk, callTool } from "./sdk.mjs";

const [serversDir, pf, spec, log, root] = process.argv.slice(2);
const { Client } = await sdk(serversDir, "client/index.js");
const { StdioClientTransport } = await sdk(serversDir, "client/stdio.js");

const server = path.join(serversDir, "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
const transport = new StdioClientTransport({
  command: pf,
  args: ["guard", "--spec", spec, "--log", log, "--", process.execPath, server, root],
  stderr: "ignore",
});
const client = new Client({ name: "pf-interop-sdk-client", version: "1.0.0" });
await client.connect(transport);

const call = (name, args) => callTool(client, name, args);

const out = {
  server: client.getServerVersion(),
  tools: (await client.listTools()).tools.map((t) => t.name).sort(),
  allowed: await call("read_text_file", { path: path.join(root, "public", "notes.txt") }),
  outsidePrefix: await call("read_text_file", { path: path.join(root, "secret", "keys.txt") }),
  hiddenTool: await call("write_file", { path: path.join(root, "public", "pwned.txt"), content: "x" }),
};
await client.close();
console.log(JSON.stringify(out));
