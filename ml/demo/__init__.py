"""The bundled demo world: checkable instruction tasks and their oracle (`tasks`), a simulated
annotator (`annotator`), the demo tokenizer (`tokenizer`), the teacher/student Llama configs
(`configs`) and the CPU build that trains them (`training`, `build`). Importing the package imports
nothing heavy; `tasks` and `annotator` need only the standard library."""
