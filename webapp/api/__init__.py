"""The public REST API (/api/v1/, django-ninja) and the personal API tokens that authenticate it."""
