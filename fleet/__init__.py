"""fleet: a multi-cluster GitOps fleet manager.

One Git repository describes a fleet of Kubernetes clusters and the bundles that run on
them; fleet works out what every cluster should run and applies it.
"""

__version__ = "0.1.0"
