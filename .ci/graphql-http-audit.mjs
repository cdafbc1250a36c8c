// The GraphQL over HTTP conformance audit (the `graphql-http` package's `auditServer`) against a
// running Switchboard: prints every result and exits 1 if any MUST requirement fails.
//
// Usage: node .ci/graphql-http-audit.mjs <url> <token>
//   url    the GraphQL endpoint, e.g. http://127.0.0.1:8080/graphql
//   token  a JWT (from `switchboard init` or `switchboard token`); sent as a bearer token,
//          since every field of the schema needs a signed-in viewer
// The package is resolved from NODE_PATH (see `.ci/graphql-http-audit`).
import { createRequire } from 'node:module';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node .ci/graphql-http-audit.mjs <url> <token>');
  process.exit(2);
}

// NODE_PATH applies to require(), not to ES module imports.
const require = createRequire(import.meta.url);
const { auditServer } = require('graphql-http');

// Every audit request carries the token; the audits set their own content type and accept headers.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn });
let mustFailures = 0;
for (const result of results) {
  const line = `${result.status.padEnd(6)} ${result.id} ${result.name}`;
  if (result.status === 'ok') {
    console.log(line);
    continue;
  }
  let body = '';
  try {
    body = await result.response.text();
  } catch {
    body = '(body already read)';
  }
  console.log(`${line}\n         ${result.reason}\n         ${result.response.status} ${body.slice(0, 300)}`);
  if (result.name.startsWith('MUST')) {
    mustFailures += 1;
  }
}
const counts = results.reduce((acc, r) => ({ ...acc, [r.status]: (acc[r.status] ?? 0) + 1 }), {});
console.log(`\n${results.length} audits: ${JSON.stringify(counts)}; MUST failures: ${mustFailures}`);
process.exit(mustFailures === 0 ? 0 : 1);
