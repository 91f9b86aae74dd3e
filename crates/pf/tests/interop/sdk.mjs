// What the interop clients share: the official MCP TypeScript SDK, loaded from the npm install
// in <servers dir>, and a tool call reduced to what the tests check.
import { pathToFileURL } from "node:url";
import path from "node:path";

// Imports `p` (a path under the SDK's dist/esm) from the SDK installed in `serversDir`.
export const sdk = (serversDir, p) =>
  import(pathToFileURL(path.join(serversDir, "node_modules/@modelcontextprotocol/sdk/dist/esm", p)).href);

const text = (r) => (r.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("");

// Calls tool `name` with `args`: whether it is an error, its text, and the guard's reason codes.
export const callTool = async (client, name, args) => {
  const r = await client.callTool({ name, arguments: args });
  return { isError: r.isError === true, text: text(r), reasons: r._meta?.["provability-fabric/reasons"] ?? [] };
};
