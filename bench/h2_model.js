// An HTTP/2-over-TLS fake model for bench/llm_fds.sh (MODEL=node): node's
// built-in http2 only, so 10 000 waiting streams cost a timer each, not a proxy hop.
//   node bench/h2_model.js --port 0 --delay-ms 2000 --cert C --key K [--streams 1000]
// prints the chosen port on the first stdout line. POST .../chat/completions
// answers "echo: <last user text>" in the OpenAI chat shape after the delay
// (the body is read to its end first: answering early resets the stream,
// which curl 7.88 reports as a framing error). GET /admin/stats (over h2) or
// SIGUSR2 (to stderr): sessions (connections) accepted and open, streams
// served and the peak waiting at once. ALPN offers h2 and http/1.1 (an
// HTTP/1.1 client still works: one request per connection at a time);
// --h1 offers http/1.1 only (a provider that refuses HTTP/2; tests/e2e).
'use strict';
const http2 = require('http2');
const https = require('https');
const fs = require('fs');

const arg = (name, def) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : def;
};
const delay = Number(arg('delay-ms', '2000'));
const stats = { sessions: 0, open: 0, peak_open: 0, requests: 0, pending: 0, peak_pending: 0, h1: 0 };

function lastUserText(body) {
  try {
    const msgs = JSON.parse(body).messages || [];
    for (let i = msgs.length - 1; i >= 0; i--)
      if (msgs[i].role === 'user') return typeof msgs[i].content === 'string' ? msgs[i].content : '';
  } catch (e) { /* a bad body still gets an answer */ }
  return '';
}

function reply(text) {
  return JSON.stringify({
    id: 'chatcmpl-h2', object: 'chat.completion', created: 0, model: 'fake',
    choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'echo: ' + text } }],
    usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
  });
}

const tls = { cert: fs.readFileSync(arg('cert')), key: fs.readFileSync(arg('key')) };
const h1only = process.argv.includes('--h1');
const server = h1only ? https.createServer(tls) : http2.createSecureServer({
  ...tls, allowHTTP1: true,
  settings: { maxConcurrentStreams: Number(arg('streams', '1000')) },
  maxSessionMemory: 1000, // MB: node's default (10) refuses streams long before 10 000
});
const counted = (s) => {
  stats.sessions++;
  stats.peak_open = Math.max(stats.peak_open, ++stats.open);
  s.on('close', () => stats.open--);
};
server.on(h1only ? 'secureConnection' : 'session', counted);
server.on('request', (req, res) => {
  if (req.httpVersionMajor < 2) stats.h1++;
  if (req.method === 'GET' && req.url === '/admin/stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    stats.requests++;
    stats.peak_pending = Math.max(stats.peak_pending, ++stats.pending);
    const text = lastUserText(Buffer.concat(chunks).toString());
    setTimeout(() => {
      stats.pending--;
      if (res.destroyed) return;
      res.setHeader('content-type', 'application/json');
      res.end(reply(text));
    }, delay);
  });
});
server.on('sessionError', () => {});
process.on('SIGUSR2', () => process.stderr.write(JSON.stringify(stats) + '\n'));
server.listen(Number(arg('port', '0')), '127.0.0.1', () => {
  process.stdout.write(server.address().port + '\n');
});
