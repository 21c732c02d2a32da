"""`fleet render`, `fleet plugins`: renderers and the plugin manager."""
