"""Model-grading stages that run INSIDE a box (capture, verified evaluation, training)."""
