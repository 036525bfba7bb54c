// The comparison server for bench/sdk_compare.sh: the official A2A
// JavaScript SDK (@a2a-js/sdk, as pinned in tests/js) serving one agent.
//   node bench/a2a_sdk_server.mjs PORT MODEL_URL    (prints "ready PORT")
// Its request handling is the SDK's own: JsonRpcTransportHandler over a
// DefaultRequestHandler with the SDK's InMemoryTaskStore (nothing persisted).
// The agent does what agentd's direct turn does: one OpenAI-compatible chat
// completion call to MODEL_URL (bench/nginx_model.sh), and the reply
// published as a completed task. The HTTP glue is node:http, not express
// (the SDK's express adapter needs express, which nothing else here uses);
// it is lighter than express, so it flatters the SDK, never agentd.
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';
import path from 'node:path';

const [port, modelUrl] = [Number(process.argv[2] || 0), process.argv[3]];
if (!modelUrl) {
  console.error('usage: a2a_sdk_server.mjs PORT MODEL_URL');
  process.exit(2);
}
const sdkDir = path.resolve(path.dirname(new URL(import.meta.url).pathname),
  '../tests/js/node_modules/@a2a-js/sdk/dist');
const sdk = await import(pathToFileURL(path.join(sdkDir, 'index.js')).href);
const srv = await import(pathToFileURL(path.join(sdkDir, 'server/index.js')).href);
const { TaskState, Role } = sdk;

const card = {
  name: 'bench agent',
  description: 'one model call a message',
  version: '1.0.0',
  supportedInterfaces: [{ url: `http://127.0.0.1:${port}/`, protocolBinding: 'JSONRPC',
                          tenant: '', protocolVersion: '1.0' }],
  capabilities: { streaming: false, pushNotifications: false, extensions: [] },
  defaultInputModes: ['text/plain'],
  defaultOutputModes: ['text/plain'],
  skills: [{ id: 'chat', name: 'chat', description: 'chat', tags: ['chat'], examples: [],
             inputModes: [], outputModes: [], securityRequirements: [] }],
  securitySchemes: {},
  securityRequirements: [],
  signatures: [],
};

class ModelAgent {
  async execute(ctx, bus) {
    const text = ctx.userMessage.parts.map((p) => p.text ?? '').join('');
    const res = await fetch(`${modelUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'fake', messages: [{ role: 'user', content: text }] }),
    });
    const reply = (await res.json()).choices[0].message.content ?? '';
    bus.publish(srv.AgentEvent.task({
      id: ctx.taskId,
      contextId: ctx.contextId,
      status: {
        state: TaskState.TASK_STATE_COMPLETED,
        message: { messageId: randomUUID(), contextId: ctx.contextId, taskId: ctx.taskId,
                   role: Role.ROLE_AGENT, parts: [{ text: reply }],
                   metadata: undefined, extensions: [], referenceTaskIds: [] },
        timestamp: new Date().toISOString(),
      },
      artifacts: [],
      history: [ctx.userMessage],
      metadata: undefined,
    }));
    bus.finished();
  }
  async cancelTask() {}
}

const handler = new srv.DefaultRequestHandler(card, new srv.InMemoryTaskStore(), new ModelAgent());
const rpc = new srv.JsonRpcTransportHandler(handler);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    let out;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const context = srv.defaultServerCallContextBuilder({
        extensions: undefined,
        user: new srv.UnauthenticatedUser(),
        headers: req.headers,
        requestedVersion: req.headers['a2a-version'] || undefined,
      });
      srv.validateVersion(context.requestedVersion, card, 'JSONRPC');
      out = await rpc.handle(body, context);
    } catch (err) {
      out = { jsonrpc: '2.0', id: null, error: srv.JsonRpcTransportHandler.mapToJSONRPCError(err) };
    }
    const text = JSON.stringify(out);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => console.log(`ready ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
