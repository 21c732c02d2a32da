"""Image automation: image policies scanned once for the whole fleet, markers in bundle
files rewritten to the tags the policies pick, and the change committed back to Git.

What enters: the definition's `imagePolicies` and `imageUpdates`, the registries' tags
(through `fleet.registry`), the bundle files of a commit. What leaves: the tag (and digest)
each policy picks now (`model.ImageChoice`), the marker lines that change
(`model.MarkerChange`) and, when something changed, a commit pushed to the Git server.
Git stays the only source of truth: a new image reaches a cluster only through a commit.
"""
