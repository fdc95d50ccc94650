// An independent OpenID Provider for the tests: the OpenID-Certified `oidc-provider` package,
// on 127.0.0.1 (port from argv[2], 0: a free one), with the client-credentials grant and
// resource indicators issuing JWT access tokens for the audience "xtremehub" (ES256 or RS256
// per resource), with a Keycloak-style realm_access.roles claim. Prints one JSON line
// {"issuer": ...} when it listens.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

function jwk(type, options, alg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg, use: 'sig' };
}

const keys = [
  jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
  jwk('rsa', { modulusLength: 2048 }, 'RS256'),
];

const server = http.createServer();
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'xhub-test',
        client_secret: 'xhub-test-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys },
    cookies: { keys: [randomUUID()] },
    scopes: ['openid', 'streams:read'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => 'urn:xtremehub:es256',
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => ({
          scope: 'streams:read',
          audience: 'xtremehub',
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: resource.endsWith(':rs256') ? 'RS256' : 'ES256' } },
        }),
      },
    },
    extraTokenClaims: () => ({ realm_access: { roles: ['research'] } }),
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
