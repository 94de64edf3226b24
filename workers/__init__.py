"""The only bridge between webapp/ and ml/: Celery tasks (and the Gradio playground). A task takes
ids, loads rows, turns them into plain data, calls ml/, stores results through webapp services and
publishes progress. No business rules live here."""
