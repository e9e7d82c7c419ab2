"""Jailed boxes for untrusted code: the jail, the box workers and their pool, the boundary.

Host side: :mod:`~grader.sandbox.jail` (the bubblewrap command), :mod:`~grader.sandbox.pool`
(boxes and a warm pool), :mod:`~grader.sandbox.uids` (uids no two graders share),
:mod:`~grader.sandbox.staging` (copying a submission in), :mod:`~grader.sandbox.protocol`
(every record and file that crosses the boundary, parsed strictly), :mod:`~grader.sandbox.tasks`
(running a trusted task on a submission). Code under :mod:`grader.sandbox.inside` runs INSIDE a
box.
"""
