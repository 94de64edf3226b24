"""Model versions (teacher/student, with lineage) and prompt sets with their prompts."""
