"""Distillery's machine-learning core: models, the demo world, generation, losses, recipes, judges
and metrics. Pure torch/transformers/trl/peft; it never imports Django, Celery, Channels or Gradio,
so it runs alone (`python -m ml ...`) and is tested without a database."""
