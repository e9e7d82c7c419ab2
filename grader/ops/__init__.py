"""Hand-written operations (``ops.py``): the student's autograd Functions checked against torch.

:mod:`grader.ops.references` holds the reference ops and their test inputs,
:mod:`grader.ops.inside` the task that runs in the sandbox (it only evaluates),
:mod:`grader.ops.grade` the host side that prepares the inputs and makes every comparison.
"""
