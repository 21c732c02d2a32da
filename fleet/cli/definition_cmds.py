"""`fleet validate`, `fleet targets`, `fleet schema`: the fleet definition and targeting."""
