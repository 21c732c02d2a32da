"""Render: a deployment unit's manifests, by a renderer plugin, cached by input hash.

In: a `RenderRequest` (bundle dir, merged options, cluster context). Out: the ordered list
of manifests (plain dicts) to apply, or a one-line error naming the bundle and file.

- `pipeline`: choose the renderer, post-render, namespaces, ordering, cache key
- `manifests`: safe manifest parsing, scope, stable order, dumping
- `patching`: JSON / merge / strategic merge patches for `yaml.overlays`
"""
