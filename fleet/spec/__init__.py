"""Spec: the fleet definition and its bundles, loaded strictly from a checkout.

In: the files of one checkout. Out: a `FleetRepo` (the root `kind: Fleet` definition plus
every `Bundle` with its options, content hash and external inputs), or `Problem`s with
file and line.

- `loader`: the root definition and every bundle it names
- `definition`, `bundle_options`, `cluster`: the pydantic models (Rancher Fleet's bundle format)
- `bundles`: one bundle directory: options, content hash, renderer detection
- `yamlload`, `validation`: safe YAML with positions; errors as `file:line: message`
- `pathsafety`, `kustomize_refs`: nothing outside the repository is read
- `hashing`, `merge`: content hashes and deployment ids; Helm's deep-merge rule
"""
