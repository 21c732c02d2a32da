"""Render: a deployment unit's manifests, by a renderer plugin, cached by input hash.

In: a `RenderRequest` (bundle dir, merged options, cluster context). Out: the ordered list
of manifests (plain dicts) to apply, or a one-line error naming the bundle and file.

- `api`: the renderer contract plugins implement (`RenderRequest`, `Renderer`, the
  registry) and `RendererSource`, all the pipeline asks of the plugins
- `pipeline`: choose the renderer and post-renderer, namespaces, ordering, cache key
- `cache`: rendered manifests by input hash, in memory and on disk
- `manifests`: safe manifest parsing, scope, stable order, dumping
- `patching`: JSON / merge / strategic merge patches for `yaml.overlays`
- `tools`: where the helm / kustomize binaries are found (variable, `PATH`, interpreter dir)
"""
