"""Code that runs INSIDE a box: the supervisor, confinement, student imports, task protocol."""
