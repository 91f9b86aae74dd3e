// A real MCP client (the official TypeScript SDK's Client over its Streamable HTTP transport)
// talking to `pf guard --upstream`, which fronts the reference "everything" server over
// Streamable HTTP (its answers come as SSE streams). The client offers sampling, so a tool can
// ask it for a completion in the middle of a call (a server-to-client request through the
// guard). Used by tests/guard_interop_cli.rs.
//
// argv: <servers dir> <guard MCP URL>
// Prints one JSON object with what the client saw.
import { sdk, callTool } from "./sdk.mjs";

const [serversDir, url] = process.argv.slice(2);
const { Client } = await sdk(serversDir, "client/index.js");
const { StreamableHTTPClientTransport } = await sdk(serversDir, "client/streamableHttp.js");
const { CreateMessageRequestSchema } = await sdk(serversDir, "types.js");

const transport = new StreamableHTTPClientTransport(new URL(url));
const client = new Client(
  { name: "pf-interop-sdk-http-client", version: "1.0.0" },
  { capabilities: { sampling: {} } },
);
const sampled = [];
client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  sampled.push(req.params.messages.map((m) => m.content.text).join(""));
  return { role: "assistant", content: { type: "text", text: "a sampled answer" }, model: "test-model", stopReason: "endTurn" };
});
await client.connect(transport);

const call = (name, args) => callTool(client, name, args);

const out = {
  session: typeof transport.sessionId === "string" && transport.sessionId.length > 0,
  server: client.getServerVersion(),
  tools: (await client.listTools()).tools.map((t) => t.name).sort(),
  echo: await call("echo", { message: "hello through the guard" }),
  redacted: await call("echo", { message: "write to ops@example.com today" }),
  tooLong: await call("echo", { message: "x".repeat(300) }),
  sum: await call("get-sum", { a: 2, b: 40 }),
  hiddenTool: await call("get-env", {}),
  sampling: await call("trigger-sampling-request", { prompt: "say hi", maxTokens: 5 }),
};
out.sampled = sampled;
// Several calls at once on one session: each answer must come back to its own request.
const many = await Promise.all(
  Array.from({ length: 8 }, (_, i) => call("echo", { message: `call ${i}` })),
);
out.concurrent = many.map((r) => r.text);
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
