"""Comparisons, judgements (human or teacher-judge), and frozen preference snapshots."""
