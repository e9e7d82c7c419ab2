"""Thin click commands, one module each; the logic lives in the grader package."""
