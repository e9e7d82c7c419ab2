"""The grading boundary: what every door (``sanity``, ``check``, the server, the workers) shares."""
