"""Evaluations of student versions against the teacher, and the rounds of the closed loop."""
