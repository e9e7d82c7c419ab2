"""Model grading: capture -> verified evaluation -> rules on the graph -> fingerprints.

:func:`grader.models.pipeline.grade_model` is the one entry point that ``grader sanity``,
``grader check`` and the leaderboard worker use. Code under :mod:`grader.models.inside` runs
INSIDE a box.
"""
