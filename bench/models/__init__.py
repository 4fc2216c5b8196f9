"""Models for the bench: QC demo models and builders of small test models."""
