"""Grading a class folder: intake of the submissions, the parallel run with its cache, the records
(grades.csv, results.json), the instructor's report and each student's feedback page."""
