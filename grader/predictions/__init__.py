"""Predictions files: read and validate (``read``), the answer key (``solution``), scoring
(``scoring``) and the academic-integrity flags across a batch (``flags``)."""
