"""Images from and to registries: the Docker Registry HTTP API v2 and the OCI distribution spec.

- `auth`: credentials as the docker CLI sends them (X-Registry-Auth), WWW-Authenticate challenges, the
  basic and bearer-token flows;
- `endpoints`: which URL a registry name reaches, with which TLS (certs.d, insecure-registries) and
  which mirrors (registry-mirrors, for Docker Hub only), as dockerd decides;
- `client`: HTTP to one registry (aiohttp): authentication, redirects, size limits, Docker's error texts;
- `manifests`: manifests, manifest lists and OCI indexes, checked, and this platform picked;
- `pull`, `push`: the two transfers, reporting progress as events the API turns into Docker's JSON.

The registry is hostile until its answers are checked: every document and blob is hashed and compared
with the digest that names it, sizes are enforced while bytes arrive, redirects are bounded, and layers
are applied by `tarsafe` into the layer store's staging, so nothing is written outside the image store.
"""
