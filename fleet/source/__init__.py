"""Source: where a fleet's files come from.

In: a repository URL or directory, a ref (branch, tag, semver tag range, commit), push
webhooks. Out: a `Revision` (commit sha) and a read-only checkout of it.

- `git`: one cached bare mirror per URL, refs resolved to commits, read-only checkouts
- `auth`: Git credentials from the environment, never stored or logged
- `semver`: semver ranges for tag refs
- `poll`: polling with backoff; the last good revision stays in force
- `webhooks`: GitHub/GitLab push webhooks, authenticated (HMAC) before parsing
- `local`: a local directory as it is, or a commit of a Git URL, as files to work on
"""
